package tests

// Parity with what the upstream agent does on a node: the MachineConfig
// daemon's files, lean classic seeds, target facts, and deploys that keep
// the repo's shared history.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/deployer"
)

// TestCreateKeepsMachineConfigFiles: files the MachineConfig daemon
// manages are captured even where an exclusion would drop them.
func TestCreateKeepsMachineConfigFiles(t *testing.T) {
	f := getFixtures(t)
	cfg := `{"spec":{"config":{"storage":{"files":[{"path":"/var/log/mcd-managed.log"},{"path":"/var/lib/kubelet/pods/keep/pod.conf"},{"path":"/etc/not-var"}]}}}}`
	root := smallRoot(t, map[string]string{
		"etc/machine-config-daemon/currentconfig": cfg,
		"var/log/mcd-managed.log":                 "managed\n",
		"var/log/other.log":                       "not managed\n",
		"var/lib/kubelet/pods/keep/pod.conf":      "managed\n",
		"var/lib/kubelet/pods/keep/other":         "not managed\n",
		"var/lib/kubelet/pods/gone/x":             "not managed\n",
	})
	out := filepath.Join(t.TempDir(), "seed.tar")
	create(t, "--rootfs", root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+out)
	img := readArchive(t, out)
	layer := img.layer(t, len(img.manifest.Layers)-3)
	for _, want := range []string{"var/log/mcd-managed.log", "var/lib/kubelet/pods/keep/pod.conf"} {
		if _, ok := layer[want]; !ok {
			t.Errorf("var layer lacks %s, which the MachineConfig daemon manages", want)
		}
	}
	for _, gone := range []string{"var/log/other.log", "var/lib/kubelet/pods/keep/other", "var/lib/kubelet/pods/gone/x"} {
		if _, ok := layer[gone]; ok {
			t.Errorf("var layer holds %s, which is excluded and not managed", gone)
		}
	}
}

// TestLeanClassicSeed: a classic seed carries only the commit the node
// runs, and the upstream deploy replay still deploys it.
func TestLeanClassicSeed(t *testing.T) {
	f := getFixtures(t)
	root := filepath.Join(t.TempDir(), "root")
	sh(t, nil, "cp", "-a", f.root, root)
	repo := filepath.Join(root, "ostree/repo")
	dir := t.TempDir()
	before := filepath.Join(dir, "before.tar")
	rep := create(t, "--rootfs", root, "--layout", "classic", "--output", "oci-archive:"+before)
	commit := strings.TrimSpace(sh(t, nil, "ostree", "rev-parse", "--repo="+repo, "rhcos/seed"))
	checkLeanRepo(t, before, "rhcos/seed", commit)
	// What the capture counts (its progress, and the report) is every
	// entry of the seed's tarballs, ostree.tgz's too.
	img := readArchive(t, before)
	files := img.layer(t, len(img.manifest.Layers)-1)
	entries := 0
	for _, n := range []string{"var.tgz", "etc.tgz", "ostree.tgz"} {
		entries += len(readTgz(t, files[n].data))
	}
	if int64(entries) != rep.Files {
		t.Errorf("classic create --json counted %d files, want %d: the entries of var.tgz, etc.tgz and ostree.tgz", rep.Files, entries)
	}

	// An unrelated commit with 4 MiB of noise.
	tree := t.TempDir()
	noise := make([]byte, 4<<20)
	for i := range noise {
		noise[i] = byte(i*7919 + i/3)
	}
	writeFiles(t, tree, map[string]string{"usr/share/noise.bin": string(noise)})
	sh(t, nil, "ostree", "commit", "--repo="+repo, "--branch=unrelated/history", "--tree=dir="+tree)

	// The root's only deployment names the commit the node runs; without
	// it, two refs and no rpm-ostree.json leave the choice to the user.
	withDeployment := filepath.Join(dir, "deployment.tar")
	create(t, "--rootfs", root, "--layout", "classic", "--output", "oci-archive:"+withDeployment)
	checkLeanRepo(t, withDeployment, "rhcos/seed", commit)
	sh(t, nil, "mv", filepath.Join(root, "ostree/deploy"), filepath.Join(dir, "deploy"))
	r := seedbuild(t, nil, "create", "--rootfs", root, "--layout", "classic", "--output", "oci-archive:"+filepath.Join(dir, "x.tar"))
	if r.code != 1 || !strings.Contains(r.stderr, "--ostree-ref") {
		t.Errorf("classic seed of a repo with two refs, no deployment and no rpm-ostree.json: %s\nwant exit 1 asking for --ostree-ref", r)
	}
	after := filepath.Join(dir, "after.tar")
	create(t, "--rootfs", root, "--layout", "classic", "--ostree-ref", "rhcos/seed", "--output", "oci-archive:"+after)
	sizeOf := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if b, a := sizeOf(before), sizeOf(after); a > b+64<<10 {
		t.Errorf("classic seed grew from %d to %d bytes with an unrelated commit in the repo", b, a)
	}
	checkLeanRepo(t, after, "rhcos/seed", commit)
	// rpm-ostree.json names the booted commit: no --ostree-ref needed. Its
	// id is what the agent's prep reads: one it cannot read is refused.
	writeFiles(t, root, map[string]string{"rpm-ostree.json": `{"deployments":[{"checksum":"` + commit + `","booted":true}]}`})
	if r := seedbuild(t, nil, "create", "--rootfs", root, "--layout", "classic", "--output", "oci-archive:"+filepath.Join(dir, "y.tar")); r.code != 1 || !strings.Contains(r.stderr, "rpm-ostree.json") {
		t.Errorf("classic seed of a root whose rpm-ostree.json has no id: %s\nwant exit 1 naming rpm-ostree.json", r)
	}
	writeFiles(t, root, map[string]string{"rpm-ostree.json": `{"deployments":[{"id":"rhcos-` + commit + `.0","checksum":"` + commit + `","booted":true}]}`})
	fromStatus := filepath.Join(dir, "status.tar")
	create(t, "--rootfs", root, "--layout", "classic", "--output", "oci-archive:"+fromStatus)
	checkLeanRepo(t, fromStatus, "rhcos/seed", commit)

	sys := newSysroot(t)
	st := newStore(t)
	out := sh(t, st.buildahEnv(), hackScript("lca-deploy-reference.sh"), after, sys, "upstream")
	if !strings.Contains(out, commit) {
		t.Errorf("the upstream deploy replay deployed %q, want commit %s", out, commit)
	}
}

// checkLeanRepo opens the ostree.tgz of the classic seed archive and checks
// that the repo in it holds one commit, the node's, on the one ref wantRef.
func checkLeanRepo(t *testing.T, archive, wantRef, commit string) {
	t.Helper()
	img := readArchive(t, archive)
	tgz := img.layer(t, len(img.manifest.Layers)-1)["ostree.tgz"]
	if tgz.data == nil {
		t.Fatalf("%s holds no ostree.tgz", archive)
	}
	// The commit objects the repo carries, whatever its refs say.
	var commits []string
	for name := range readTgz(t, tgz.data) {
		if rest, ok := strings.CutPrefix(name, "objects/"); ok && strings.HasSuffix(rest, ".commit") {
			commits = append(commits, strings.Replace(strings.TrimSuffix(rest, ".commit"), "/", "", 1))
		}
	}
	if len(commits) != 1 || commits[0] != commit {
		t.Errorf("%s: ostree.tgz holds commits %q, want only the node's %s", archive, commits, commit)
	}
	repo := t.TempDir()
	file := filepath.Join(t.TempDir(), "ostree.tgz")
	if err := os.WriteFile(file, tgz.data, 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "tar", "-xzf", file, "-C", repo)
	if refs := strings.Fields(sh(t, nil, "ostree", "refs", "--repo="+repo)); len(refs) != 1 || refs[0] != wantRef {
		t.Errorf("%s: ostree.tgz has refs %q, want only %s", archive, refs, wantRef)
	}
	if got := strings.TrimSpace(sh(t, nil, "ostree", "rev-parse", "--repo="+repo, wantRef)); got != commit {
		t.Errorf("%s: ostree.tgz's %s is %s, want %s", archive, wantRef, got, commit)
	}
	var history []string
	for _, line := range strings.Split(sh(t, nil, "ostree", "log", "--repo="+repo, wantRef), "\n") {
		if c, ok := strings.CutPrefix(line, "commit "); ok {
			history = append(history, strings.TrimSpace(c))
		}
	}
	if len(history) != 1 || history[0] != commit {
		t.Errorf("%s: ostree log of %s in ostree.tgz = %q, want only %s", archive, wantRef, history, commit)
	}
}

// TestAgentPrepAcceptsTarballSeeds: the upstream agent's prep, replayed
// strictly (hack/lca-prep-reference.sh), sets a stateroot up from
// seedbuild's classic and bootc-tarball seeds, and from the upstream
// replay's own (a check of the oracle), and the new deployment's origin is
// the seed node's, byte for byte. The prep fails on a seed that lacks a
// file it reads (the origin, containers.list), on a version it was not
// asked for, and on an etc.deletions it cannot apply in order.
func TestAgentPrepAcceptsTarballSeeds(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	origins, _ := filepath.Glob(filepath.Join(f.root, "ostree/deploy/*/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("the fixture root has origins %q, want one", origins)
	}
	wantOrigin, err := os.ReadFile(origins[0])
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]string{"upstream classic": f.classic, "upstream bootc-tarball": f.bootc}
	for _, layout := range []string{"classic", "bootc-tarball"} {
		out := filepath.Join(dir, layout+".tar")
		args := []string{"--rootfs", f.root, "--layout", layout, "--output", "oci-archive:" + out}
		if layout != "classic" {
			args = append(args, "--base", "oci-archive:"+f.base)
		}
		create(t, args...)
		seeds[layout] = out
	}
	st := newStore(t)
	for name, seed := range seeds {
		t.Run(name, func(t *testing.T) {
			sys := newSysroot(t)
			env := st.buildahEnv()
			if strings.HasSuffix(name, "bootc-tarball") {
				env = append(env, "LCA_PREP_BOOTC=1")
			}
			out := sh(t, env, hackScript("lca-prep-reference.sh"), seed, sys, "4.20.0")
			deployment, ok := strings.CutPrefix(strings.TrimSpace(out), "prepared ")
			if !ok {
				t.Fatalf("lca-prep-reference.sh said %q, want prepared DEPLOYMENT", out)
			}
			got, err := os.ReadFile(deployment + ".origin")
			if err != nil || string(got) != string(wantOrigin) {
				t.Errorf("the new deployment's origin = %q (%v), want the seed node's %q", got, err, wantOrigin)
			}
			for _, f := range []string{"containers.list", "manifest.json"} {
				if _, err := os.Stat(filepath.Join(sys, "var/tmp", f)); err != nil {
					t.Errorf("the prep copied no %s: %v", f, err)
				}
			}
			// What the seed node deleted from /etc is gone.
			if _, err := os.Lstat(filepath.Join(deployment, "etc/to-be-deleted.conf")); !os.IsNotExist(err) {
				t.Errorf("etc/to-be-deleted.conf is still in the new deployment (%v)", err)
			}
			r := runEnv(t, env, hackScript("lca-prep-reference.sh"), seed, newSysroot(t), "4.21.0")
			if r.code != 1 || !strings.Contains(r.stderr, "differs from version in spec") {
				t.Errorf("prep of the 4.20.0 seed asked for 4.21.0: %s\nwant exit 1, the version refused", r)
			}
		})
	}
}

func TestFactsAndAgainst(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	sys := newSysroot(t)
	info := writeTemp(t, `{"seed_cluster_ocp_version":"4.20.0","has_fips":false,"has_proxy":false,"container_storage_mountpoint_target":""}`)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--cluster-info", info, "--tag", "seed:facts")...)

	target := smallRoot(t, map[string]string{
		"etc/machine-config-daemon/currentconfig":     `{"metadata":{"annotations":{"machineconfiguration.openshift.io/release-image-version":"4.20.0"}},"spec":{"fips":true}}`,
		"etc/mco/proxy.env":                           "HTTPS_PROXY=http://proxy.example.com:3128\n",
		"etc/systemd/system/var-lib-containers.mount": "[Mount]\nWhat=/dev/disk/by-partlabel/var-lib-containers\nWhere=/var/lib/containers\n",
		"etc/containers/registries.conf":              "[[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"mirror.example.com\"\n",
	})
	facts := mustSeedbuild(t, "facts", "--rootfs", target, "--json").stdout
	factsFile := writeTemp(t, facts)
	r := seedbuild(t, nil, st.flags("inspect", "localhost/seed:facts", "--against", factsFile)...)
	if r.code != 3 {
		t.Fatalf("inspect --against mismatching facts: %s\nwant exit 3", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	// Every mismatch at once: the seed is not newer than what the target
	// runs, and a mirror registry is configured on the target only.
	for _, field := range []string{"seed_cluster_ocp_version", "mirror_registry_configured", "has_proxy", "has_fips", "container_storage_mountpoint_target"} {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, field+":") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("inspect --against lists %s %d times, want once:\n%s", field, n, r.stdout)
		}
	}

	// facts --against checks the seed itself, with the same list.
	fr := seedbuild(t, nil, st.flags("facts", "--rootfs", target, "--against", "localhost/seed:facts")...)
	if fr.code != 3 || fr.stdout != r.stdout {
		t.Errorf("facts --against the seed: %s\nwant exit 3 and inspect --against's list:\n%s", fr, r.stdout)
	}
	if fr := seedbuild(t, nil, st.flags("facts", "--rootfs", target, "--ocp-version", "4.21.0", "--against", "localhost/seed:facts")...); fr.code != 3 || strings.Count(fr.stdout, "seed_cluster_ocp_version:") != 2 {
		t.Errorf("facts --ocp-version 4.21.0 --against a 4.20.0 seed: %s\nwant exit 3, the version listed twice (not the one asked, not newer)", fr)
	}

	good := smallRoot(t, map[string]string{"etc/machine-config-daemon/currentconfig": `{"spec":{"fips":false}}`})
	goodFacts := writeTemp(t, mustSeedbuild(t, "facts", "--rootfs", good, "--json").stdout)
	if r := seedbuild(t, nil, st.flags("inspect", "localhost/seed:facts", "--against", goodFacts)...); r.code != 0 {
		t.Errorf("inspect --against matching facts: %s", r)
	}

	before := status(t, sys)
	r = seedbuild(t, nil, st.flags("deploy", "localhost/seed:facts", "--stateroot", "x", "--sysroot", sys, "--facts", factsFile)...)
	if r.code != 1 || strings.Count(r.stderr, "compatibility:") != 5 {
		t.Errorf("deploy --facts mismatching: %s\nwant exit 1 listing 5 compatibility problems", r)
	}
	r = seedbuild(t, nil, st.flags("deploy", "localhost/seed:facts", "--stateroot", "x", "--sysroot", sys, "--facts", factsFile, "--json")...)
	var refused struct{ Problems []deployer.Problem }
	if err := json.Unmarshal([]byte(r.stdout), &refused); r.code != 1 || err != nil || len(refused.Problems) != 5 || refused.Problems[0].Check != "compatibility" {
		t.Errorf("deploy --facts mismatching --json: %s\nwant exit 1 and the 5 problems as JSON on stdout", r)
	}
	if after := status(t, sys); after != before {
		t.Errorf("a refused deploy changed the sysroot")
	}
	misspelt := writeTemp(t, `{"ocp-version":"4.19.0"}`)
	if r := seedbuild(t, nil, st.flags("inspect", "localhost/seed:facts", "--against", misspelt)...); r.code != 1 || !strings.Contains(r.stderr, `unknown key "ocp-version"`) {
		t.Errorf("inspect --against with a misspelt key: %s\nwant exit 1 naming the key", r)
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(facts), &parsed); err != nil || parsed["fips"] != true || parsed["proxy"] != true {
		t.Errorf("facts --json = %s", facts)
	}
	// The version the node runs is read from its MachineConfig; the
	// version it is to run is given by hand.
	var fromRoot map[string]any
	rootFacts := mustSeedbuild(t, "facts", "--rootfs", f.root, "--json").stdout
	if err := json.Unmarshal([]byte(rootFacts), &fromRoot); err != nil || fromRoot["running_ocp_version"] != "4.20.0" || fromRoot["ocp_version"] != nil {
		t.Errorf("facts --json of the sample root = %s, want running_ocp_version 4.20.0 and no ocp_version", rootFacts)
	}
}

// TestDeployKeepsSharedHistory: a second stateroot whose commit shares its
// base with the first prunes nothing and leaves the first bootable.
func TestDeployKeepsSharedHistory(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	sys := newSysroot(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:one")...)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--karg", "two=2", "--tag", "seed:two")...)
	mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:one", "--stateroot", "first", "--sysroot", sys, "--method", "ostree")...)
	firstEntry := bootable(bootEntry(t, sys, "first"))
	firstDep := deploymentDir(t, sys, "first")
	mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:two", "--stateroot", "second", "--sysroot", sys, "--method", "ostree")...)
	sh(t, nil, "ostree", "fsck", "--repo="+filepath.Join(sys, "ostree/repo"))
	if got := bootable(bootEntry(t, sys, "first")); got != firstEntry {
		t.Errorf("the first stateroot's boot entry changed:\n%s\nwant:\n%s", got, firstEntry)
	}
	if _, err := os.Stat(filepath.Join(firstDep, "usr/lib/modules")); err != nil {
		t.Errorf("the first deployment lost its kernel: %v", err)
	}
	if e := bootable(bootEntry(t, sys, "second")); e == firstEntry || !strings.Contains(e, "two=2") {
		t.Errorf("the second boot entry = %q, want its own with two=2", e)
	}
}

var bootVersion = regexp.MustCompile(`ostree=/ostree/boot\.\d/(\S+)/\d+`)

// bootable is what makes a BLS entry boot: its kernel, initrd and options,
// without what ostree renumbers whenever another deployment is added (the
// title, the boot version and the serial in the ostree= argument).
func bootable(entry string) string {
	var keep []string
	for _, l := range strings.Split(entry, "\n") {
		if strings.HasPrefix(l, "linux ") || strings.HasPrefix(l, "initrd ") || strings.HasPrefix(l, "options ") {
			keep = append(keep, bootVersion.ReplaceAllString(l, "ostree=/ostree/boot.N/$1/N"))
		}
	}
	return strings.Join(keep, "\n")
}
