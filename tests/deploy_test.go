package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/deployer"
)

// newSysroot makes an empty ostree sysroot with `ostree admin init-fs`,
// removed at the end of the test even though ostree makes deployments
// immutable.
func newSysroot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sys := filepath.Join(dir, "sysroot")
	if err := os.Mkdir(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "ostree", "admin", "init-fs", "--modern", sys)
	t.Cleanup(func() { exec.Command(hackScript("rm-sysroot.sh"), sys).Run() })
	return sys
}

// status is `ostree admin status` and the refs of the sysroot, for
// before/after comparisons.
func status(t *testing.T, sys string) string {
	t.Helper()
	out := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys)
	out += sh(t, nil, "ostree", "refs", "--repo="+filepath.Join(sys, "ostree/repo"))
	entries, _ := os.ReadDir(filepath.Join(sys, "ostree/deploy"))
	for _, e := range entries {
		out += "stateroot " + e.Name() + "\n"
	}
	return out
}

// deployment returns the single deployment folder of a stateroot.
func deploymentDir(t *testing.T, sys, stateroot string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy", stateroot, "deploy", "*.[0-9]"))
	if len(dirs) == 0 {
		t.Fatalf("no deployment in stateroot %s", stateroot)
	}
	return dirs[len(dirs)-1]
}

// checkSeedOrigin checks that the new deployment of stateroot has the
// seed node's origin, the fixture root's booted deployment's, byte for
// byte: every deploy route gives it, as the upstream agent does.
func checkSeedOrigin(t *testing.T, root, sys, stateroot string) {
	t.Helper()
	origins, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/*/deploy/*.origin"))
	if len(origins) != 1 {
		t.Fatalf("the seed's root has origins %q, want one", origins)
	}
	want := readFile(t, origins[0])
	if got := readFile(t, deploymentDir(t, sys, stateroot)+".origin"); got != want {
		t.Errorf("the new deployment's origin = %q, want the seed node's %q", got, want)
	}
}

func bootEntry(t *testing.T, sys, stateroot string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(sys, "boot/loader/entries/*.conf"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "/"+stateroot+"/") {
			return string(data)
		}
	}
	t.Fatalf("no boot entry for %s in %v", stateroot, files)
	return ""
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// checkNodeEtc checks that an /etc holds the sample node's changes.
func checkNodeEtc(t *testing.T, root, etc string) {
	t.Helper()
	if got := readFile(t, filepath.Join(etc, "chrony.conf")); got != "server 10.0.0.1 iburst\n" {
		t.Errorf("%s/chrony.conf = %q, want the node's", etc, got)
	}
	if got, want := readFile(t, filepath.Join(etc, "kubernetes/kubelet.conf")), readFile(t, filepath.Join(root, "etc/kubernetes/kubelet.conf")); got != want {
		t.Errorf("%s/kubernetes/kubelet.conf differs from the node's", etc)
	}
	for _, gone := range []string{"to-be-deleted.conf", "sysconfig/also-deleted"} {
		if _, err := os.Lstat(filepath.Join(etc, gone)); err == nil {
			t.Errorf("%s/%s exists, but the node deleted it", etc, gone)
		}
	}
}

var sampleKargs = []string{"systemd.unified_cgroup_hierarchy=1", `cgroup_no_v1="all"`, "psi=0", "rcupdate.rcu_normal_after_boot=0"}

func TestDeployOstreeEachLayout(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	info := writeTemp(t, `{"seed_cluster_ocp_version":"4.20.0","cluster_name":"sno","has_fips":false,"has_proxy":false}`)
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--cluster-info", info, "--tag", "seed:native")...)
	tests := []struct {
		name, image, kind string
	}{
		{"native", "localhost/seed:native", "native"},
		{"bootc-tarball", "oci-archive:" + f.bootc, "bootc-tarball"},
		{"classic", "oci-archive:" + f.classic, "classic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := newSysroot(t)
			args := st.flags("deploy", tt.image, "--stateroot", "seed", "--sysroot", sys, "--json", "--karg", "extra=1")
			if tt.kind != "classic" {
				args = append(args, "--method", "ostree")
			}
			r := mustSeedbuild(t, args...)
			var res struct {
				Kind       string `json:"kind"`
				Deployment string `json:"deployment"`
				Checksum   string `json:"checksum"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("deploy --json: %v\n%s", err, r.stdout)
			}
			if res.Kind != tt.kind || len(res.Checksum) != 64 {
				t.Errorf("deploy result = %+v, want kind %s and a checksum", res, tt.kind)
			}
			dep := deploymentDir(t, sys, "seed")
			if res.Deployment != dep {
				t.Errorf("deploy reported %s, the sysroot has %s", res.Deployment, dep)
			}
			entry := bootEntry(t, sys, "seed")
			for _, k := range append(sampleKargs, "extra=1") {
				if !strings.Contains(entry, k) {
					t.Errorf("boot entry lacks karg %s:\n%s", k, entry)
				}
			}
			if tt.kind != "classic" && !strings.Contains(entry, "ibu=4.20.0") {
				t.Errorf("boot entry lacks ibu=4.20.0:\n%s", entry)
			}
			checkNodeEtc(t, f.root, filepath.Join(dep, "etc"))
			checkSeedOrigin(t, f.root, sys, "seed")
			// /usr/etc stays the OS image's defaults.
			if got := readFile(t, filepath.Join(dep, "usr/etc/chrony.conf")); got != readFile(t, filepath.Join(f.root, "usr/etc/chrony.conf")) {
				t.Errorf("usr/etc/chrony.conf = %q, want the OS default", got)
			}
			if _, err := os.Stat(filepath.Join(dep, "usr/etc/to-be-deleted.conf")); err != nil {
				t.Errorf("usr/etc lost a default: %v", err)
			}
			varDir := filepath.Join(sys, "ostree/deploy/seed/var")
			for _, p := range []string{"lib/etcd/member/snap/db", "lib/kubelet/config.json", "home/core/notes.txt"} {
				if got, want := readFile(t, filepath.Join(varDir, p)), readFile(t, filepath.Join(f.root, "var", p)); got != want {
					t.Errorf("var/%s differs from the seed node's", p)
				}
			}
			if _, err := os.Lstat(filepath.Join(varDir, "home/core/.bash_history")); err == nil {
				t.Errorf("var holds .bash_history, which a seed never carries")
			}
			if tt.kind == "native" {
				if _, err := os.Stat(filepath.Join(dep, "etc/.seedbuild-etc-applied")); err != nil {
					t.Errorf("the first-boot stamp is missing: %v", err)
				}
				nextOSKeepsEtc(t, f.root, sys)
			}
			sh(t, nil, "ostree", "fsck", "--repo="+filepath.Join(sys, "ostree/repo"))
		})
	}
}

// nextOSKeepsEtc commits the base image's tree alone as the next OS
// version and deploys it into the same stateroot: ostree's /etc merge must
// keep the node's changes.
func nextOSKeepsEtc(t *testing.T, root, sys string) {
	t.Helper()
	tree := t.TempDir()
	sh(t, nil, "cp", "-a", filepath.Join(root, "usr"), filepath.Join(tree, "usr"))
	if err := os.WriteFile(filepath.Join(tree, "usr/lib/next-os"), []byte("421.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(sh(t, nil, "ostree", "commit", "--repo="+filepath.Join(sys, "ostree/repo"), "--branch=next-os", "--tree=dir="+tree))
	sh(t, nil, "ostree", "admin", "deploy", "--sysroot="+sys, "--os=seed", "--no-prune", commit)
	var next string
	dirs, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/seed/deploy", commit+".*"))
	for _, d := range dirs {
		if !strings.HasSuffix(d, ".origin") {
			next = d
		}
	}
	if next == "" {
		t.Fatalf("the next OS deployment is missing")
	}
	checkNodeEtc(t, root, filepath.Join(next, "etc"))
}

// inOrderAgain is what deploy says when it does the deploy again with the
// layers applied in order (the /var layer could not be applied aside).
const inOrderAgain = "Deploying again, with the layers applied in order"

// TestDeployVarLayerAside deploys create's native seed, whose /var layer
// is unpacked beside the others, and the same seed with a Containerfile
// layer on top that writes into /var, which has the layers applied in
// order: both give every layer's files.
func TestDeployVarLayerAside(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	archive := filepath.Join(t.TempDir(), "native.tar")
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:native", "-o", "oci-archive:"+archive)...)
	sneaky := filepath.Join(t.TempDir(), "sneaky.tar")
	addToVarLayer(t, archive, sneaky, "usr/share/sneaky", "outside /var\n")
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{
		"Containerfile": "FROM localhost/seed:native\nCOPY extra /var/lib/extra/file\nCOPY extra /var/lib/kubelet/config.json\nCOPY tool /usr/share/tool\n",
		"extra":         "from a later layer\n",
		"tool":          "a tool\n",
	})
	mustSeedbuild(t, st.flags("build", "-t", "seed:plusvar", ctx)...)
	for _, tt := range []struct {
		image string
		again bool
		later bool
	}{
		{"localhost/seed:native", false, false},
		{"localhost/seed:plusvar", true, true},
		// Found when the aside unpack reaches the file: before the plan,
		// or, if later, at the move of the /var layer, after which the
		// run is undone first.
		{"oci-archive:" + sneaky, true, false},
	} {
		t.Run(tt.image, func(t *testing.T) {
			sys := newSysroot(t)
			r := mustSeedbuild(t, st.flags("deploy", tt.image, "--stateroot", "seed", "--sysroot", sys, "--method", "ostree")...)
			if got := strings.Contains(r.stdout+r.stderr, "beside the others"); !got {
				t.Errorf("deploy did not unpack the /var layer aside:\n%s", r)
			}
			if got := strings.Contains(r.stdout+r.stderr, inOrderAgain); got != tt.again {
				t.Errorf("deployed again in order: %v, want %v:\n%s", got, tt.again, r)
			}
			dep := deploymentDir(t, sys, "seed")
			varDir := filepath.Join(sys, "ostree/deploy/seed/var")
			for _, p := range []string{"lib/etcd/member/snap/db", "lib/kubelet/config.json", "home/core/notes.txt"} {
				if tt.later && p == "lib/kubelet/config.json" {
					continue // the later layer's
				}
				if got, want := readFile(t, filepath.Join(varDir, p)), readFile(t, filepath.Join(f.root, "var", p)); got != want {
					t.Errorf("var/%s differs from the seed node's", p)
				}
			}
			checkNodeEtc(t, f.root, filepath.Join(dep, "etc"))
			if tt.later {
				for _, p := range []string{"lib/extra/file", "lib/kubelet/config.json"} {
					if got := readFile(t, filepath.Join(varDir, p)); got != "from a later layer\n" {
						t.Errorf("var/%s = %q, want the later layer's", p, got)
					}
				}
				if got := readFile(t, filepath.Join(dep, "usr/share/tool")); got != "a tool\n" {
					t.Errorf("usr/share/tool = %q", got)
				}
			}
			if strings.HasPrefix(tt.image, "oci-archive:") {
				if got := readFile(t, filepath.Join(dep, "usr/share/sneaky")); got != "outside /var\n" {
					t.Errorf("usr/share/sneaky = %q", got)
				}
			}
			if n := strings.Count(sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys), "seed "); n != 1 {
				t.Errorf("the stateroot has %d deployments, want 1", n)
			}
			if left, _ := filepath.Glob(filepath.Join(sys, "ostree", "*deploy-seed*")); len(left) > 0 {
				t.Errorf("deploy left its staging folders: %v", left)
			}
			sh(t, nil, "ostree", "fsck", "--repo="+filepath.Join(sys, "ostree/repo"))
		})
	}
}

func TestDeployRefusals(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:native")...)
	sys := newSysroot(t)
	mustSeedbuild(t, st.flags("deploy", "localhost/seed:native", "--stateroot", "first", "--sysroot", sys, "--method", "ostree", "-q")...)
	notSysroot := t.TempDir()
	badFormat := filepath.Join(t.TempDir(), "bad.tar")
	ctr := strings.TrimSpace(st.buildah(t, "from", "scratch"))
	st.buildah(t, "config", "--label", "com.openshift.lifecycle-agent.seed_format_version=9", ctr)
	st.buildah(t, "commit", "-q", ctr, "oci-archive:"+badFormat)
	st.buildah(t, "rm", ctr)
	badInfo := filepath.Join(t.TempDir(), "bad-info.tar")
	ctr = strings.TrimSpace(st.buildah(t, "from", "scratch"))
	st.buildah(t, "config", "--label", "com.openshift.lifecycle-agent.seed_format_version=5",
		"--label", `com.openshift.lifecycle-agent.seed_cluster_info={"cluster_name": sno`, ctr)
	st.buildah(t, "commit", "-q", ctr, "oci-archive:"+badInfo)
	st.buildah(t, "rm", ctr)
	if r := seedbuild(t, nil, "inspect", "oci-archive:"+badInfo); r.code != 1 || !strings.Contains(r.stderr, "cluster info at byte") {
		t.Errorf("inspect of garbage cluster info: %s", r)
	}

	// A seed whose OS carries an SELinux policy: the ostree method's
	// second deploy (a merge deploy on an ostree without admin
	// set-default) runs its semodule through /usr/bin/bwrap, which ostree
	// compiles in (ostree-sysroot-deploy.c, run_in_deployment).
	ctr = strings.TrimSpace(st.buildah(t, "from", "localhost/seed:native"))
	st.buildah(t, "copy", ctr, writeTemp(t, "SELINUX=permissive\nSELINUXTYPE=default\n"), "/etc/selinux/config")
	st.buildah(t, "commit", "-q", ctr, "localhost/seed:policy")
	st.buildah(t, "rm", ctr)

	before := status(t, sys)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"existing stateroot", []string{"localhost/seed:native", "--stateroot", "first"}, 1, "exists"},
		{"slash in name", []string{"localhost/seed:native", "--stateroot", "a/b"}, 2, "a/b"},
		{"dotdot", []string{"localhost/seed:native", "--stateroot", ".."}, 2, ".."},
		{"long name", []string{"localhost/seed:native", "--stateroot", strings.Repeat("x", 300)}, 2, "invalid stateroot"},
		{"no stateroot", []string{"localhost/seed:native"}, 2, "--stateroot"},
		{"unknown method", []string{"localhost/seed:native", "--stateroot", "x", "--method", "magic"}, 2, "magic"},
		{"not a seed", []string{"oci-archive:" + f.base, "--stateroot", "x"}, 1, "not a seed"},
		{"unknown format", []string{"oci-archive:" + badFormat, "--stateroot", "x"}, 1, `unknown seed format version "9"`},
		{"garbage cluster info", []string{"oci-archive:" + badInfo, "--stateroot", "x"}, 1, "cluster info at byte"},
		{"bootc without bootc", []string{"localhost/seed:native", "--stateroot", "x", "--method", "bootc"}, 1, "no /usr/bin/bootc"},
		{"a policy without semodule", []string{"localhost/seed:policy", "--stateroot", "x", "--method", "ostree"}, 1, "no semodule"},
	}
	if _, err := os.Stat("/usr/bin/bwrap"); err != nil {
		tests = append(tests, struct {
			name     string
			args     []string
			code     int
			contains string
		}{"a merge deploy without bubblewrap", []string{"localhost/seed:policy", "--stateroot", "x", "--method", "ostree"}, 1, "lacks /usr/bin/bwrap"})
	} else {
		t.Log("this host has /usr/bin/bwrap: the refusal of a merge deploy without it is not tried")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seedbuild(t, nil, st.flags(append([]string{"deploy", "--sysroot", sys}, tt.args...)...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.contains) {
				t.Errorf("deploy %v: %s\nwant exit %d naming %q", tt.args, r, tt.code, tt.contains)
			}
		})
	}
	t.Run("not a sysroot", func(t *testing.T) {
		r := seedbuild(t, nil, st.flags("deploy", "localhost/seed:native", "--stateroot", "x", "--sysroot", notSysroot)...)
		if r.code != 1 || !strings.Contains(r.stderr, "not an ostree sysroot") {
			t.Errorf("deploy into a plain folder: %s", r)
		}
		if entries, _ := os.ReadDir(notSysroot); len(entries) != 0 {
			t.Errorf("deploy wrote into a plain folder: %v", entries)
		}
	})
	t.Run("refused before the pull", func(t *testing.T) {
		// The labels are enough to refuse a wrong sysroot: the archive is
		// not pulled into storage first.
		images := st.buildah(t, "images", "-a", "-q", "--no-trunc")
		seed := filepath.Join(t.TempDir(), "seed.tar")
		mustSeedbuild(t, st.flags("push", "-q", "localhost/seed:native", "oci-archive:"+seed)...)
		r := seedbuild(t, nil, st.flags("deploy", "oci-archive:"+seed, "--stateroot", "x", "--sysroot", notSysroot)...)
		if r.code != 1 || !strings.Contains(r.stderr, "not an ostree sysroot") || strings.Contains(r.stderr, "Pulling") || strings.Contains(r.stderr, "space") {
			t.Errorf("deploy of an archive into a plain folder: %s\nwant exit 1 with only the sysroot problem, before any pull", r)
		}
		if got := st.buildah(t, "images", "-a", "-q", "--no-trunc"); got != images {
			t.Errorf("a refused deploy pulled the seed into storage")
		}
	})
	if after := status(t, sys); after != before {
		t.Errorf("refused deploys changed the sysroot:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	t.Run("injected failure is undone", func(t *testing.T) {
		firstEntry := bootable(bootEntry(t, sys, "first"))
		for _, step := range []string{"5", "8", "11"} {
			r := seedbuild(t, []string{"SEEDBUILD_INJECT_FAILURE=" + step}, st.flags("deploy", "localhost/seed:native", "--stateroot", "second", "--sysroot", sys, "--method", "ostree")...)
			if r.code != 1 || !strings.Contains(r.stderr, "undone") {
				t.Errorf("deploy failing at step %s: %s\nwant exit 1 saying it was undone", step, r)
			}
			if after := status(t, sys); after != before {
				t.Errorf("failure at step %s left the sysroot changed:\nbefore:\n%s\nafter:\n%s", step, before, after)
			}
		}
		if got := bootable(bootEntry(t, sys, "first")); got != firstEntry {
			t.Errorf("the first deployment's boot entry changed:\n%s\nwant:\n%s", got, firstEntry)
		}
	})

	t.Run("force replaces", func(t *testing.T) {
		mustSeedbuild(t, st.flags("deploy", "localhost/seed:native", "--stateroot", "first", "--sysroot", sys, "--method", "ostree", "--force", "-q")...)
		if n := strings.Count(sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys), " first "); n != 1 {
			t.Errorf("stateroot first has %d deployments after --force, want 1", n)
		}
	})
}

func TestDeployDryRunChangesNothing(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:dry", "-o", "oci-archive:"+filepath.Join(t.TempDir(), "native.tar"))...)
	for _, c := range []struct {
		name, image string
		want        []string
	}{
		{"classic", "oci-archive:" + f.classic, []string{"Method: classic", "ostree pull-local", "unpack-archive file={mount}/var.tgz", "ostree admin deploy"}},
		{"native from storage", "localhost/seed:dry", []string{"Method: ostree", "action commit-tree", "ostree admin deploy"}},
		{"bootc-tarball", "oci-archive:" + f.bootc, []string{"Method: ostree", "var.tgz", "ostree admin deploy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := newSysroot(t)
			tmp := t.TempDir()
			before := status(t, sys) + treeListing(t, sys) + treeListing(t, st.root) + treeListing(t, tmp)
			r := seedbuild(t, []string{"TMPDIR=" + tmp}, st.flags("deploy", c.image, "--stateroot", "x", "--sysroot", sys, "--dry-run", "--method", "auto")...)
			if r.code != 0 {
				t.Fatalf("deploy --dry-run: %s", r)
			}
			for _, want := range c.want {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
				}
			}
			after := status(t, sys) + treeListing(t, sys) + treeListing(t, st.root) + treeListing(t, tmp)
			if after != before {
				t.Errorf("--dry-run changed the sysroot, the store or TMPDIR:\n%s", lineDiff(before, after))
			}
		})
	}
}

// treeListing lists every path under dir with its type, mode, size and
// mtime, lock files apart (taking a read lock may touch them).
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, "/lock") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %v %d %d\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

// lineDiff lists the lines only in a and only in b.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l := range ma {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range mb {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... and %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

// TestDeployOstreeExt runs the ostree-ext method: with `ostree container`
// where it exists, and elsewhere (Debian's ostree has none) with the
// ostree-ext stand-in first on PATH, whose record it also checks.
func TestDeployOstreeExt(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:ext")...)
	sys := newSysroot(t)
	env := ostreeExtEnv(t)
	// auto must choose ostree-ext where it exists and bootc does not.
	dry := seedbuild(t, env, st.flags("deploy", "localhost/seed:ext", "--stateroot", "ext", "--sysroot", sys, "--dry-run", "--json")...)
	var res struct {
		Plan struct {
			Method deployer.Method `json:"method"`
			Kargs  []string        `json:"kargs"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(dry.stdout), &res); err != nil || res.Plan.Method != deployer.OstreeExt {
		t.Fatalf("deploy --dry-run with ostree-ext on PATH chose %q (%v), want ostree-ext:\n%s", res.Plan.Method, err, dry)
	}
	if r := seedbuild(t, env, st.flags("deploy", "-q", "localhost/seed:ext", "--stateroot", "ext", "--sysroot", sys, "--method", "ostree-ext")...); r.code != 0 {
		t.Fatalf("deploy --method ostree-ext: %s", r)
	}
	checkNodeEtc(t, f.root, filepath.Join(deploymentDir(t, sys, "ext"), "etc"))
	checkSeedOrigin(t, f.root, sys, "ext")
	if got := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys); !strings.HasPrefix(strings.TrimSpace(got), "ext ") {
		t.Errorf("after the ostree-ext deploy, status is\n%s\nwant the ext deployment first (the default)", got)
	}
	if len(env) == 0 {
		return
	}
	// What the stand-in was asked: the image in the test's own store (not
	// the default one), and every karg, for ostree-ext ignores kargs.d.
	var rec struct {
		Imgref string   `json:"imgref"`
		Kargs  []string `json:"kargs"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(sys, "ostree-ext-standin.json"))), &rec); err != nil {
		t.Fatal(err)
	}
	if want := "ostree-unverified-image:containers-storage:[overlay@" + st.root + "+"; !strings.HasPrefix(rec.Imgref, want) {
		t.Errorf("ostree-ext was asked for %q, want the image in the test's store (%s...)", rec.Imgref, want)
	}
	if !slices.Equal(rec.Kargs, res.Plan.Kargs) {
		t.Errorf("ostree-ext got the kargs %q, want the plan's %q", rec.Kargs, res.Plan.Kargs)
	}
	if refs := sh(t, nil, "ostree", "refs", "--repo="+filepath.Join(sys, "ostree/repo"), "ostree/container/image"); refs == "" {
		t.Errorf("no ostree/container/image ref after the ostree-ext deploy")
	}
	checkPulledSeedTakenOut(t, st, "localhost/seed:ext", env, "--method", "ostree-ext")
}

// checkPulledSeedTakenOut deploys image, in st, from an oci-archive that
// st does not hold, with the extra flags: the deploy pulls it into st, and
// takes it out again after; with --keep-image the pulled image stays.
func checkPulledSeedTakenOut(t *testing.T, st store, image string, env []string, extra ...string) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "seed.tar")
	mustSeedbuild(t, st.flags("push", "-q", image, "oci-archive:"+archive)...)
	st.buildah(t, "rmi", image)
	images := func() string {
		return st.buildah(t, "images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Name}}:{{.Tag}}")
	}
	before := images()
	deploy := func(stateroot string, more ...string) result {
		args := append([]string{"deploy", "oci-archive:" + archive, "--stateroot", stateroot, "--sysroot", newSysroot(t)}, extra...)
		r := seedbuild(t, env, st.flags(append(args, more...)...)...)
		if r.code != 0 {
			t.Fatalf("deploy of the seed from an oci-archive: %s", r)
		}
		return r
	}
	r := deploy("pulled", "--json")
	var res struct {
		Seed struct {
			ImageID string `json:"image_id"`
		} `json:"seed"`
		RemovedImage string `json:"removed_image"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("deploy --json: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "Pulling oci-archive:") || !strings.Contains(r.stderr, "out of local storage again: this deploy pulled it") || res.RemovedImage == "" {
		t.Errorf("the deploy from an oci-archive did not say it pulled the seed and took it out again (removed_image %q): %s", res.RemovedImage, r)
	}
	if after := images(); after != before {
		t.Errorf("images after the deploy:\n%s\nwant them as before it:\n%s", after, before)
	}
	r = deploy("kept", "--keep-image")
	if strings.Contains(r.stderr, "out of local storage again") {
		t.Errorf("deploy --keep-image said it took the seed out: %s", r)
	}
	if after := images(); after == before || !strings.Contains(after, res.Seed.ImageID) {
		t.Errorf("images after deploy --keep-image:\n%s\nwant the pulled seed %s added to:\n%s", after, res.Seed.ImageID, before)
	}
}

// ostreeExtEnv is the environment for runs of the ostree-ext method: none
// where `ostree container` (ostree-ext) exists; elsewhere, as on Debian 12,
// a PATH that finds the ostree-ext stand-in (tests/ostreeextstandin) as
// ostree first. It hands every other ostree command to the real one.
func ostreeExtEnv(t *testing.T) []string {
	t.Helper()
	// Plain ostree prints its usage and exits 0 for unknown commands.
	if out, _ := exec.Command("ostree", "container", "image", "deploy", "--help").CombinedOutput(); strings.Contains(string(out), "--imgref") {
		return nil
	}
	dir := t.TempDir()
	buildStandin(t, "ostreeextstandin", filepath.Join(dir, "ostree"))
	return []string{"PATH=" + dir + ":" + os.Getenv("PATH")}
}

// TestDeployInterrupted sends SIGINT in the middle of a deploy: the step
// that runs finishes, the rest is skipped, what was done is undone, and
// the exit code is not 0.
func TestDeployInterrupted(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:int")...)
	sys := newSysroot(t)
	before := status(t, sys)
	cmd := exec.Command(bin, st.flags("deploy", "localhost/seed:int", "--stateroot", "int", "--sysroot", sys, "--method", "ostree")...)
	out, sent, waitErr := runUntil(t, cmd, "[5/", func() {
		cmd.Process.Signal(syscall.SIGINT)
	})
	if !sent || waitErr == nil {
		t.Fatalf("deploy after SIGINT at step 5: %v\n%s", waitErr, out)
	}
	if !strings.Contains(out, "undo") || !strings.Contains(out, "canceled") {
		t.Errorf("deploy output does not show the undo of a cancelled run:\n%s", out)
	}
	if after := status(t, sys); after != before {
		t.Errorf("an interrupted deploy left the sysroot changed:\n%s\nwant:\n%s", after, before)
	}
}

// TestDeployKilledIsRecovered kills a deploy with SIGKILL half-way; the
// next run finds what it left (the stateroot, its deployment, the mount
// container, the staging folder), removes it and says so.
func TestDeployKilledIsRecovered(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:kill")...)
	sys := newSysroot(t)
	tmp := t.TempDir()
	before := status(t, sys)
	containersBefore := st.buildah(t, "containers", "-a", "-q")
	_ = before
	cmd := exec.Command(bin, st.flags("deploy", "localhost/seed:kill", "--stateroot", "killed", "--sysroot", sys, "--method", "ostree")...)
	// The deploy waits at step 6 until it is killed, so the kill lands
	// half-way however fast the machine is.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "SEEDBUILD_INJECT_HANG=6")
	out, killed, _ := runUntil(t, cmd, "[6/", func() {
		cmd.Process.Kill()
	})
	if !killed {
		t.Fatalf("the deploy ended before it could be killed:\n%s", out)
	}
	if status(t, sys) == before {
		t.Fatalf("the killed deploy left nothing to recover; the test proves nothing")
	}
	dry := status(t, sys)
	if r := seedbuild(t, []string{"TMPDIR=" + tmp}, st.flags("deploy", "localhost/seed:kill", "--stateroot", "next", "--sysroot", sys, "--dry-run")...); r.code != 0 || status(t, sys) != dry {
		t.Errorf("a dry run changed the sysroot or failed: %s", r)
	}
	r := seedbuild(t, []string{"TMPDIR=" + tmp}, st.flags("deploy", "localhost/seed:kill", "--stateroot", "next", "--sysroot", sys, "--method", "ostree")...)
	if r.code != 0 || !strings.Contains(r.stderr, "Undid an interrupted deploy into stateroot killed") {
		t.Errorf("the next run did not recover: %s", r)
	}
	after := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys)
	if strings.Contains(after, "killed") || strings.Count(after, " next ") != 1 {
		t.Errorf("after recovery the sysroot holds:\n%s\nwant only the new stateroot next", after)
	}
	if entries, _ := os.ReadDir(filepath.Join(sys, "ostree/deploy")); len(entries) != 1 {
		t.Errorf("stateroots after recovery: %v, want only next", entries)
	}
	if refs := sh(t, nil, "ostree", "refs", "--repo="+filepath.Join(sys, "ostree/repo")); strings.Contains(refs, "seedbuild/killed") {
		t.Errorf("the killed run's branch is still there after recovery:\n%s", refs)
	}
	if got := st.buildah(t, "containers", "-a", "-q"); got != containersBefore {
		t.Errorf("storage containers after recovery = %q, want %q", got, containersBefore)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary folders left after recovery: %v", left)
	}
}

// repoObjects counts the objects in a sysroot's repo, so a test sees a
// commit left behind without a ref.
func repoObjects(t *testing.T, sys string) string {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(sys, "ostree/repo/objects"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return fmt.Sprintf("objects %d\n", n)
}

// TestDeployInterruptedAtEveryStep holds a deploy before each step of its
// plan in turn (a test-build failpoint) and interrupts it there:
//   - SIGINT: the run undoes itself, and the sysroot's deployments, refs,
//     stateroots and objects are exactly as before, with no journal left;
//   - SIGKILL: the run leaves its journal, and the next run undoes what it
//     left, says so, and finishes the deploy.
//
// For the ostree method with a native seed, for a classic seed and for the
// ostree-ext method (with its stand-in where ostree-ext is missing). The
// bootc method installs only into the running system's root, never into
// a sysroot in a folder (TestDeployBootcNotIntoAFolder).
func TestDeployInterruptedAtEveryStep(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:every")...)
	for _, c := range []struct {
		name, image string
		extra       []string
		env         []string
	}{
		{"ostree", "localhost/seed:every", []string{"--method", "ostree"}, nil},
		{"classic", "oci-archive:" + f.classic, nil, nil},
		// ostree-ext, or its stand-in, on the host.
		{"ostree-ext", "localhost/seed:every", []string{"--method", "ostree-ext"}, ostreeExtEnv(t)},
	} {
		t.Run(c.name, func(t *testing.T) {
			deploy := func(sys, stateroot string, more ...string) []string {
				args := append([]string{"deploy", c.image, "--stateroot", stateroot, "--sysroot", sys}, c.extra...)
				return st.flags(append(args, more...)...)
			}
			r := seedbuild(t, c.env, deploy(newSysroot(t), "new", "--dry-run", "--json")...)
			if r.code != 0 {
				t.Fatalf("deploy --dry-run: %s", r)
			}
			var dry struct {
				Plan struct {
					Steps []json.RawMessage `json:"steps"`
				} `json:"plan"`
			}
			err := json.Unmarshal([]byte(r.stdout), &dry)
			plan := dry.Plan
			if err != nil || len(plan.Steps) < 5 {
				t.Fatalf("deploy --dry-run --json: %v, %d steps\n%s", err, len(plan.Steps), r.stdout)
			}
			// A sysroot that already holds a stateroot, as a node does.
			sys := newSysroot(t)
			mustSeedbuild(t, st.flags("deploy", "oci-archive:"+f.bootc, "--stateroot", "base", "--sysroot", sys, "--method", "ostree", "-q")...)
			before := status(t, sys) + repoObjects(t, sys)
			for i := 1; i <= len(plan.Steps); i++ {
				cmd := exec.Command(bin, deploy(sys, "new")...)
				cmd.Env = append(append(os.Environ(), c.env...), fmt.Sprintf("SEEDBUILD_INJECT_HANG=%d", i))
				out, sent, err := runUntil(t, cmd, fmt.Sprintf("[%d/", i), func() { cmd.Process.Signal(syscall.SIGINT) })
				if !sent || err == nil || !strings.Contains(out, "was undone") {
					t.Errorf("SIGINT before step %d: sent %v, exit %v; want a failed run that says it was undone:\n%s", i, sent, err, tail(out, 15))
				}
				if after := status(t, sys) + repoObjects(t, sys); after != before {
					t.Errorf("SIGINT before step %d left the sysroot changed:\n%s\nwant:\n%s", i, after, before)
				}
				if left, _ := filepath.Glob(filepath.Join(sys, "ostree/.seedbuild-journal-*")); len(left) != 0 {
					t.Errorf("SIGINT before step %d left a journal: %v", i, left)
				}
			}
			// SIGKILL before each step in turn, on one sysroot: each run
			// undoes what the run killed before it left, and is killed in
			// turn before the next step; the last run is not held and
			// must finish, with one deployment of the stateroot.
			sys = newSysroot(t)
			undid := func(out string) bool { return strings.Contains(out, "Undid an interrupted deploy into stateroot new") }
			for i := 1; i <= len(plan.Steps); i++ {
				cmd := exec.Command(bin, deploy(sys, "new")...)
				cmd.Env = append(append(os.Environ(), c.env...), fmt.Sprintf("SEEDBUILD_INJECT_HANG=%d", i))
				out, killed, _ := runUntil(t, cmd, fmt.Sprintf("[%d/", i), func() { cmd.Process.Kill() })
				if !killed {
					t.Fatalf("the deploy held before step %d ended before it was killed:\n%s", i, tail(out, 10))
				}
				// A kill before step 1 leaves nothing to undo.
				if i > 2 && !undid(out) {
					t.Errorf("the run after a SIGKILL before step %d did not undo it:\n%s", i-1, tail(out, 15))
				}
			}
			r = seedbuild(t, c.env, deploy(sys, "new")...)
			if r.code != 0 || !undid(r.stderr) {
				t.Errorf("the run after a SIGKILL before step %d: %s", len(plan.Steps), r)
			}
			if got := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys); strings.Count(got, " new ") != 1 {
				t.Errorf("after SIGKILLs before every step and a last run, status is:\n%s\nwant one deployment of new", got)
			}
			if left, _ := filepath.Glob(filepath.Join(sys, "ostree/.seedbuild-journal-*")); len(left) != 0 {
				t.Errorf("the finished run left a journal: %v", left)
			}
		})
	}
}

// addToVarLayer writes to out the seed in the oci-archive in, with a file
// name (outside /var) added to the layer its history names create's /var
// layer.
func addToVarLayer(t *testing.T, in, out, name, data string) {
	t.Helper()
	img := readArchive(t, in)
	i := -1
	for j, h := range nonEmptyHistory(img.config.History) {
		if h.CreatedBy == "seedbuild create: var" {
			i = j
		}
	}
	if i < 0 {
		t.Fatalf("%s has no /var layer in its history", in)
	}
	f, err := os.Open(img.blob(img.manifest.Layers[i].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	diffID := sha256.New()
	zw := gzip.NewWriter(&blob)
	tw := tar.NewWriter(io.MultiWriter(zw, diffID))
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)})
	tw.Write([]byte(data))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	writeBlob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := os.WriteFile(img.blob(d.String()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	img.manifest.Layers[i].Digest = writeBlob(blob.Bytes())
	img.manifest.Layers[i].Size = int64(blob.Len())
	img.config.RootFS.DiffIDs[i] = digest.NewDigestFromBytes(digest.SHA256, diffID.Sum(nil))
	cfg, _ := json.Marshal(img.config)
	img.manifest.Config.Digest, img.manifest.Config.Size = writeBlob(cfg), int64(len(cfg))
	mf, _ := json.Marshal(img.manifest)
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageManifest, Digest: writeBlob(mf), Size: int64(len(mf))}}}
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(img.dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "tar", "-cf", out, "-C", img.dir, ".")
}

// nonEmptyHistory is the history entries of the layers, in order.
func nonEmptyHistory(h []imgspecv1.History) []imgspecv1.History {
	var out []imgspecv1.History
	for _, e := range h {
		if !e.EmptyLayer {
			out = append(out, e)
		}
	}
	return out
}
