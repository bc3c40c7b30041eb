package tests

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const seedPrefix = "usr/lib/openshift/seed/"

// wantCaptured says whether the capture rules keep a /var path of the
// sample root. It is written apart from the builder's matcher on purpose.
func wantCaptured(rel string) bool {
	if strings.HasSuffix(rel, "/.bash_history") {
		return false
	}
	if rel == "var/lib/lca" || strings.HasPrefix(rel, "var/lib/lca/") {
		return false
	}
	for _, d := range []string{"var/tmp/", "var/log/", "var/lib/log/", "var/lib/cni/bin/", "var/lib/containers/", "var/lib/kubelet/pods/", "var/lib/ovn-ic/etc/"} {
		if strings.HasPrefix(rel, d) {
			return false
		}
	}
	return true
}

type createReport struct {
	ManifestDigest string `json:"manifest_digest"`
	Files          int64  `json:"files"`
	Skipped        []struct {
		Path, Reason string
	} `json:"skipped"`
	Layers []struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	} `json:"layers"`
}

func create(t *testing.T, args ...string) createReport {
	t.Helper()
	r := mustSeedbuild(t, append([]string{"create", "--json"}, args...)...)
	var rep createReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("create --json: %v\n%s", err, r.stdout)
	}
	return rep
}

func TestCreateNative(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "seed.tar")
	rep := create(t, "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+out,
		"--timestamp", "1700000000", "--karg", "ibu=test")
	img := readArchive(t, out)
	base := readArchive(t, f.base)
	nBase := len(base.manifest.Layers)

	t.Run("base layers untouched", func(t *testing.T) {
		if len(img.manifest.Layers) != nBase+3 {
			t.Fatalf("seed has %d layers, want base's %d + 3", len(img.manifest.Layers), nBase)
		}
		for i, l := range base.manifest.Layers {
			if img.manifest.Layers[i].Digest != l.Digest {
				t.Errorf("layer %d = %s, want the base's %s", i, img.manifest.Layers[i].Digest, l.Digest)
			}
		}
		// The image's /etc (the node's /usr/etc) stays the base's: no new
		// layer writes under /etc.
		for i := nBase; i < len(img.manifest.Layers); i++ {
			for name := range img.layer(t, i) {
				if name == "etc" || strings.HasPrefix(name, "etc/") {
					t.Errorf("seed layer %d writes %s into the image's /etc", i, name)
				}
			}
		}
	})

	t.Run("var matches the root", func(t *testing.T) {
		layer := img.layer(t, nBase)
		compareTree(t, f.root, "var", layer, wantCaptured)
		for _, gone := range []string{"var/home/core/.bash_history", "var/lib/lca", "var/lib/awkward/a-fifo"} {
			if _, ok := layer[gone]; ok {
				t.Errorf("layer holds %s, which must be left out", gone)
			}
		}
		var fifo bool
		for _, s := range rep.Skipped {
			fifo = fifo || strings.HasSuffix(s.Path, "a-fifo") && strings.Contains(s.Reason, "fifo")
		}
		if !fifo {
			t.Errorf("report skipped = %+v, want the FIFO listed", rep.Skipped)
		}
	})

	t.Run("etc changes", func(t *testing.T) {
		layer := img.layer(t, nBase+1)
		if got := string(layer[seedPrefix+"etc/chrony.conf"].data); got != "server 10.0.0.1 iburst\n" {
			t.Errorf("seed/etc/chrony.conf = %q, want the node's", got)
		}
		for _, want := range []string{"etc/kubernetes/kubelet.conf", "etc/kubernetes/static-pod-resources/secret.key", "etc/machine-config-daemon/currentconfig"} {
			e, ok := layer[seedPrefix+want]
			if !ok {
				t.Errorf("seed lacks %s", want)
				continue
			}
			checkEntry(t, filepath.Join(f.root, want), e)
		}
		for name := range layer {
			rel, ok := strings.CutPrefix(name, seedPrefix+"etc/")
			if !ok {
				continue
			}
			for _, never := range []string{"hostname", "NetworkManager/system-connections/", "openvswitch/conf.db", "machine-config-daemon/orig/var/lib/kubelet/", "chrony.conf.unchanged"} {
				if rel == strings.TrimSuffix(never, "/") || strings.HasPrefix(rel, never) {
					t.Errorf("seed/etc holds %s, which is never captured", rel)
				}
			}
			if e := layer[name]; e.hdr.Typeflag == tar.TypeReg {
				if same, _ := sameFile(filepath.Join(f.root, "etc", rel), filepath.Join(f.root, "usr/etc", rel)); same {
					t.Errorf("seed/etc holds %s, which the node did not change", rel)
				}
			}
		}
		got := string(layer[seedPrefix+"etc.deletions"].data)
		// In reverse order: a folder's entries before the folder, for the
		// agent's plain remove of each line.
		if want := "/etc/to-be-deleted.conf\n/etc/sysconfig/also-deleted\n"; got != want {
			t.Errorf("etc.deletions = %q, want %q", got, want)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		layer := img.layer(t, nBase+2)
		toml := string(layer["usr/lib/bootc/kargs.d/50-seed.toml"].data)
		_, list, _ := strings.Cut(toml, "kargs = ")
		var kargs []string
		if err := json.Unmarshal([]byte(strings.TrimSpace(list)), &kargs); err != nil {
			t.Fatalf("kargs.d file %q: %v", toml, err)
		}
		want := []string{"systemd.unified_cgroup_hierarchy=1", `cgroup_no_v1="all"`, "psi=0", "rcupdate.rcu_normal_after_boot=0", "ibu=test"}
		if diff := cmp.Diff(want, kargs); diff != "" {
			t.Errorf("kargs mismatch (-want +got):\n%s", diff)
		}
		unit := string(layer["usr/lib/systemd/system/seedbuild-apply-etc.service"].data)
		for _, w := range []string{"Type=oneshot", "Before=crio.service kubelet.service", "ConditionPathExists=!/etc/.seedbuild-etc-applied"} {
			if !strings.Contains(unit, w) {
				t.Errorf("unit lacks %q:\n%s", w, unit)
			}
		}
		link := layer["usr/lib/systemd/system/multi-user.target.wants/seedbuild-apply-etc.service"]
		if link.hdr == nil || link.hdr.Linkname != "../seedbuild-apply-etc.service" {
			t.Errorf("unit is not enabled by a wants symlink: %+v", link.hdr)
		}
		for _, f := range []string{"manifest.json", "mco-currentconfig.json", "apply-etc"} {
			if _, ok := layer[seedPrefix+f]; !ok {
				t.Errorf("seed lacks %s", seedPrefix+f)
			}
		}
	})

	t.Run("labels and kind", func(t *testing.T) {
		l := img.config.Config.Labels
		if l["com.openshift.lifecycle-agent.seed_format_version"] != "5" || l["containers.bootc"] != "1" || l["ostree.bootable"] != "1" || l["com.openshift.lifecycle-agent.bootc_seed"] != "true" {
			t.Errorf("labels = %v", l)
		}
		if d := inspect(t, "oci-archive:"+out); d.Kind != "native" || d.Digest != rep.ManifestDigest {
			t.Errorf("inspect = %+v, want native with digest %s", d, rep.ManifestDigest)
		}
	})

	t.Run("cluster info read from the root", func(t *testing.T) {
		// No --cluster-info: the OpenShift version comes from the
		// rendered MachineConfig's annotation, the hostname from etc/hostname.
		d := inspect(t, "oci-archive:"+out)
		if d.OCPVersion != "4.20.0" || d.ClusterInfo == nil || d.ClusterInfo.SNOHostname != "sno-seed.example.com" {
			t.Errorf("inspect = version %q, cluster info %+v; want 4.20.0 and sno-seed.example.com", d.OCPVersion, d.ClusterInfo)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again := create(t, "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+filepath.Join(dir, "again.tar"),
			"--timestamp", "1700000000", "--karg", "ibu=test")
		if again.ManifestDigest != rep.ManifestDigest {
			t.Errorf("second build digest = %s, want %s", again.ManifestDigest, rep.ManifestDigest)
		}
	})

	t.Run("zstd", func(t *testing.T) {
		z := filepath.Join(dir, "z.tar")
		create(t, "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+z, "--compression", "zstd")
		zi := readArchive(t, z)
		if mt := zi.manifest.Layers[nBase].MediaType; !strings.HasSuffix(mt, "+zstd") {
			t.Errorf("zstd layer media type = %s", mt)
		}
		compareTree(t, f.root, "var", zi.layer(t, nBase), wantCaptured)
	})
}

// compareTree checks every path under root/top that want keeps against
// the layer: type, mode, owner, mtime, content, link target and xattrs.
func compareTree(t *testing.T, root, top string, layer map[string]entry, want func(string) bool) {
	t.Helper()
	n := 0
	filepath.Walk(filepath.Join(root, top), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !want(rel) {
			if _, ok := layer[rel]; ok {
				t.Errorf("layer holds excluded %s", rel)
			}
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if fi.Mode()&os.ModeNamedPipe != 0 {
			return nil
		}
		e, ok := layer[rel]
		if !ok {
			t.Errorf("layer lacks %s", rel)
			return nil
		}
		n++
		checkEntry(t, p, resolveLink(layer, e))
		return nil
	})
	if n < 100 {
		t.Errorf("compared only %d entries under %s", n, top)
	}
}

// resolveLink turns a hard link member into its target's content.
func resolveLink(layer map[string]entry, e entry) entry {
	if e.hdr.Typeflag != tar.TypeLink {
		return e
	}
	target := layer[strings.TrimPrefix(e.hdr.Linkname, "./")]
	out := target
	h := *e.hdr
	h.Typeflag, h.Size, h.Linkname = tar.TypeReg, target.hdr.Size, ""
	out.hdr = &h
	return out
}

func checkEntry(t *testing.T, hostPath string, e entry) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(hostPath, &st); err != nil {
		t.Fatal(err)
	}
	h := e.hdr
	name := h.Name
	if got, want := h.Mode&0o7777, int64(st.Mode&0o7777); got != want {
		t.Errorf("%s mode = %o, want %o", name, got, want)
	}
	if h.Uid != int(st.Uid) || h.Gid != int(st.Gid) {
		t.Errorf("%s owner = %d:%d, want %d:%d", name, h.Uid, h.Gid, st.Uid, st.Gid)
	}
	if h.ModTime.Unix() != st.Mtim.Sec {
		t.Errorf("%s mtime = %d, want %d", name, h.ModTime.Unix(), st.Mtim.Sec)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if h.Typeflag != tar.TypeReg {
			t.Errorf("%s type = %c, want a regular file", name, h.Typeflag)
		} else if got := fileSHA(t, hostPath); got != e.sha256 {
			t.Errorf("%s content differs", name)
		}
	case unix.S_IFDIR:
		if h.Typeflag != tar.TypeDir {
			t.Errorf("%s type = %c, want a folder", name, h.Typeflag)
		}
	case unix.S_IFLNK:
		target, _ := os.Readlink(hostPath)
		if h.Typeflag != tar.TypeSymlink || h.Linkname != target {
			t.Errorf("%s = %c -> %q, want a symlink to %q", name, h.Typeflag, h.Linkname, target)
		}
	}
	if v, err := getXattr(hostPath, "user.seed.test"); err == nil {
		if got := h.PAXRecords["SCHILY.xattr.user.seed.test"]; got != string(v) {
			t.Errorf("%s xattr user.seed.test = %q, want %q", name, got, v)
		}
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func modeString(m int64) string { return strconv.FormatInt(m&0o7777, 8) }

func itoa(n int) string { return strconv.Itoa(n) }

// cmd wraps exec.Cmd for tests.
type cmd struct{ *exec.Cmd }

func command(name string, args ...string) cmd { return cmd{exec.Command(name, args...)} }

// CombinedOutputEnv runs with extra environment.
func (c cmd) CombinedOutputEnv(env []string) ([]byte, error) {
	c.Env = append(os.Environ(), env...)
	return c.CombinedOutput()
}

func sameFile(a, b string) (bool, error) {
	da, err := os.ReadFile(a)
	if err != nil {
		return false, err
	}
	db, err := os.ReadFile(b)
	if err != nil {
		return false, err
	}
	return string(da) == string(db), nil
}

// tarballMembers normalises a tarball's members for comparison: hard links
// become their targets, and the mode keeps the permission bits.
func tarballMembers(t *testing.T, members map[string]entry) map[string]string {
	out := map[string]string{}
	for name, e := range members {
		e = resolveLink(members, e)
		h := e.hdr
		sha := ""
		if h.Typeflag == tar.TypeReg {
			sha = e.sha256
		}
		out[name] = strings.Join([]string{string(rune(h.Typeflag)), modeString(h.Mode), itoa(h.Uid), itoa(h.Gid), h.Linkname, sha, itoa(int(h.ModTime.Unix()))}, " ")
	}
	return out
}

func TestCreateTarballLayoutsMatchUpstream(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	tests := []struct {
		layout, upstream, kind, prefix string
		tarballs                       []string
	}{
		{"bootc-tarball", f.bootc, "bootc-tarball", seedPrefix, []string{"var.tgz", "etc.tgz"}},
		{"classic", f.classic, "classic", "", []string{"var.tgz", "etc.tgz", "ostree.tgz"}},
	}
	for _, tt := range tests {
		t.Run(tt.layout, func(t *testing.T) {
			out := filepath.Join(dir, tt.layout+".tar")
			args := []string{"--rootfs", f.root, "--layout", tt.layout, "--output", "oci-archive:" + out}
			if tt.layout != "classic" {
				args = append(args, "--base", "oci-archive:"+f.base)
			}
			create(t, args...)
			if d := inspect(t, "oci-archive:"+out); d.Kind != tt.kind {
				t.Errorf("inspect kind = %s, want %s", d.Kind, tt.kind)
			}
			ours, theirs := readArchive(t, out), readArchive(t, tt.upstream)
			ourLayer := ours.layer(t, len(ours.manifest.Layers)-1)
			theirLayer := theirs.layer(t, len(theirs.manifest.Layers)-1)
			for _, tgz := range tt.tarballs {
				a, b := ourLayer[tt.prefix+tgz], theirLayer[tt.prefix+tgz]
				if a.data == nil || b.data == nil {
					t.Fatalf("%s missing: ours %v, upstream %v", tgz, a.data != nil, b.data != nil)
				}
				got, want := tarballMembers(t, readTgz(t, a.data)), tarballMembers(t, readTgz(t, b.data))
				// The upstream tar recurses into what it is given, and its
				// --exclude drops an excluded folder with its entries, as
				// seedbuild does.
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s members differ from the upstream replay (-upstream +seedbuild):\n%s", tgz, diff)
				}
			}
			// ostree admin config-diff names a removed folder, not its
			// entries, and the agent removes each line with a plain
			// remove: seedbuild lists the entries too, before the folder.
			if a, b := string(ourLayer[tt.prefix+"etc.deletions"].data), string(theirLayer[tt.prefix+"etc.deletions"].data); a != expandDeletions(b, f.root) {
				t.Errorf("etc.deletions = %q, want %q: upstream's %q with each folder's entries before it", a, expandDeletions(b, f.root), b)
			}
		})
	}
}

// smallRoot makes a minimal host root with the given extra files.
func smallRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/etc", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFilesMode(t, root, files, 0o600)
	return root
}

const canary = "SEEDBUILD-CANARY-7f3a"

func TestCreateRefusals(t *testing.T) {
	f := getFixtures(t)
	realAuth := `{"auths":{"registry.example.com":{"auth":"dXNlcjpTRUVEQlVJTEQtQ0FOQVJZLTdmM2E=","password":"` + canary + `"}}}`
	dummy := `{"auths":{"cloud.openshift.com":{"username":"empty","password":"empty","auth":"ZW1wdHk6ZW1wdHk=","email":""}}}`
	tests := []struct {
		name     string
		files    map[string]string
		extra    []string
		code     int
		contains []string
	}{
		{"kubelet pull secret", map[string]string{"var/lib/kubelet/config.json": realAuth}, nil, 1, []string{"/var/lib/kubelet/config.json", "--allow-credentials"}},
		{"auth.json anywhere", map[string]string{"var/home/core/.config/containers/auth.json": realAuth}, nil, 1, []string{"/var/home/core/.config/containers/auth.json"}},
		{"auth in etc", map[string]string{"etc/containers/auth.json": realAuth}, nil, 1, []string{"/etc/containers/auth.json"}},
		{"allowed", map[string]string{"var/lib/kubelet/config.json": realAuth}, []string{"--allow-credentials"}, 0, nil},
		{"dummy secret", map[string]string{"var/lib/kubelet/config.json": dummy}, nil, 0, nil},
		{"non-UTF-8 names", map[string]string{"var/lib/bad-\xff-name": "x", "var/lib/ok": "y"}, nil, 1, []string{"non-UTF-8", "bad-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := smallRoot(t, tt.files)
			out := filepath.Join(t.TempDir(), "seed.tar")
			args := append([]string{"create", "--rootfs", root, "--base", "oci-archive:" + f.base, "--output", "oci-archive:" + out, "--json"}, tt.extra...)
			r := seedbuild(t, nil, args...)
			if r.code != tt.code {
				t.Fatalf("create: %s\nwant exit %d", r, tt.code)
			}
			for _, w := range tt.contains {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, canary) {
				t.Errorf("output leaks the planted secret:\n%s", r)
			}
			if _, err := os.Stat(out); (err == nil) != (tt.code == 0) {
				t.Errorf("output exists = %v after exit %d", err == nil, r.code)
			}
		})
	}
}

func TestCreateUsage(t *testing.T) {
	f := getFixtures(t)
	// Refused runs write nothing; were one let through, it would write here.
	dir := t.TempDir()
	x, xTar := filepath.Join(dir, "x"), filepath.Join(dir, "x.tar")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no destination", []string{"--rootfs", f.root}, 2, "--tag or --output"},
		{"bad layout", []string{"--layout", "zip", "-o", "oci:" + x}, 2, "zip"},
		{"bad compression", []string{"--compression", "lz4", "-o", "oci:" + x}, 2, "lz4"},
		{"output without transport", []string{"-o", xTar}, 2, xTar},
		{"rootfs without var", []string{"--rootfs", "/usr/share", "--base", "oci-archive:" + f.base, "-o", "oci:" + x}, 1, "/usr/share"},
		{"no base", []string{"--rootfs", smallRoot(t, nil), "-o", "oci:" + x}, 1, "--base"},
		{"bad cluster info", []string{"--rootfs", f.root, "--cluster-info", writeTemp(t, `{"cluster_name": }`), "-o", "oci:" + x}, 1, "byte 18"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seedbuild(t, nil, append([]string{"create"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.contains) {
				t.Errorf("create %v: %s\nwant exit %d naming %q", tt.args, r, tt.code, tt.contains)
			}
			for _, p := range []string{x, xTar} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("create %v wrote %s", tt.args, p)
				}
			}
		})
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCreateSparseAndInterrupt checks that a large sparse file does not
// bloat the layer, and that Ctrl-C during a build leaves storage and the
// temporary folder as they were.
func TestCreateSparseAndInterrupt(t *testing.T) {
	f := getFixtures(t)
	root := smallRoot(t, map[string]string{"var/lib/data/middle": "x"})
	big := filepath.Join(root, "var/lib/data/sparse.img")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	fh.Truncate(1 << 30)
	fh.WriteAt([]byte("data in the middle"), 512<<20)
	fh.Close()

	t.Run("sparse", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "seed.tar")
		rep := create(t, "--rootfs", root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+out)
		if rep.Layers[0].Name != "var" || rep.Layers[0].Size > 8<<20 {
			t.Errorf("var layer of a 1 GiB sparse file = %+v, want well under 8 MiB", rep.Layers[0])
		}
	})

	// The interrupts need a capture that is still going when its first
	// progress line comes (after 2 s): 16 GiB of holes take far longer.
	slow := smallRoot(t, nil)
	fh, err = os.Create(filepath.Join(slow, "var/lib/huge-sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	fh.Truncate(16 << 30)
	fh.Close()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("interrupt/"+sig.String(), func(t *testing.T) { interruptCreate(t, f, slow, sig) })
	}
}

// interruptCreate sends sig to a create that is capturing a large file and
// checks that storage and the temporary folder are as they were.
func interruptCreate(t *testing.T, f *fixtureSet, root string, sig syscall.Signal) {
	st := newStore(t)
	tmp := t.TempDir()
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "before")...)
	images := st.buildah(t, "images", "-a", "-q", "--no-trunc")
	// Only the seed is left: no image of the base beside it.
	if n := len(strings.Fields(images)); n != 1 {
		t.Errorf("the store holds %d images after create --tag, want only the seed:\n%s", n, images)
	}
	containers := st.buildah(t, "containers", "-a", "-q")
	cmd := exec.Command(bin, st.flags("create", "--rootfs", root, "--base", "oci-archive:"+f.base, "--tag", "interrupted",
		"--output", "oci-archive:"+filepath.Join(tmp, "out.tar"))...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, sent, err := runUntil(t, cmd, "Capturing:", func() { cmd.Process.Signal(sig) })
	if !sent || err == nil {
		t.Fatalf("create after %s during the capture: %v\n%s", sig, err, out)
	}
	if got := st.buildah(t, "images", "-a", "-q", "--no-trunc"); got != images {
		t.Errorf("images after interrupt = %q, want %q", got, images)
	}
	if got := st.buildah(t, "containers", "-a", "-q"); got != containers {
		t.Errorf("containers after interrupt = %q, want %q", got, containers)
	}
	left, _ := os.ReadDir(tmp)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 0 {
		t.Errorf("temporary folder holds %v after interrupt, want nothing", names)
	}
}

// TestCreateRemovesStaleLeftovers: a run that was killed leaves its
// temporary folder; the next run removes it and says so, and leaves the
// folders of live runs alone.
func TestCreateRemovesStaleLeftovers(t *testing.T) {
	f := getFixtures(t)
	tmp := t.TempDir()
	dead := filepath.Join(tmp, "seedbuild-create-123")
	live := filepath.Join(tmp, "seedbuild-create-456")
	for dir, pid := range map[string]int{dead: unusedPID(t), live: os.Getpid()} {
		if err := os.MkdirAll(filepath.Join(dir, "image"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(pid)), 0o644)
	}
	r := seedbuild(t, []string{"TMPDIR=" + tmp}, "create", "--rootfs", smallRoot(t, nil), "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+filepath.Join(t.TempDir(), "s.tar"))
	if r.code != 0 || !strings.Contains(r.stderr, "Removed "+dead) {
		t.Errorf("create after a killed run: %s\nwant it to say it removed %s", r, dead)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Errorf("%s is still there", dead)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the folder of a live run was removed: %v", err)
	}
}

// TestCreateRefusesLiveNode: capturing a live / while kubelet runs is
// refused unless --allow-running. A copy of sleep named kubelet stands for
// the kubelet process. The run can never capture the CI host, even with the
// guard broken: its temporary folder lies under a regular file, so the
// staging folder every capture writes into cannot be made, and the output
// is under t.TempDir(). The guard refuses before it would make that folder,
// so a refusal with the guard's message proves the check ran before any
// capture. The refusal on a real node is in TestBootedIBU, and which
// processes count is unit-tested (builder's TestRunningServices).
func TestCreateRefusesLiveNode(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "kubelet")
	sh(t, nil, "cp", "/bin/sleep", fake)
	kubelet := exec.Command(fake, "60")
	if err := kubelet.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { kubelet.Process.Kill(); kubelet.Wait() }()
	blocker := filepath.Join(dir, "not-a-folder")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "s.tar")
	r := seedbuild(t, []string{"TMPDIR=" + filepath.Join(blocker, "tmp")}, "create", "--rootfs", "/", "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+out)
	if r.code != 1 || !strings.Contains(r.stderr, "kubelet or crio is running") || !strings.Contains(r.stderr, "--allow-running") {
		t.Errorf("create --rootfs / with kubelet running: %s\nwant exit 1 naming --allow-running", r)
	}
	// Anything past the guard would have tried the temporary folder or
	// started the capture.
	for _, past := range []string{"temporary folder", "Capturing"} {
		if strings.Contains(r.stderr, past) {
			t.Errorf("create --rootfs / with kubelet running got past the guard (%q): %s", past, r)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the refused create wrote %s", out)
	}
}

// unusedPID is a pid no process can have: pid_max itself (pids go up to
// pid_max - 1).
func unusedPID(t *testing.T) int {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCreateOnPulledBase builds on a base pulled into local storage, which
// serves its layers uncompressed, under other digests than its manifest's:
// the seed must still carry the base's layers whole, in every destination.
func TestCreateOnPulledBase(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+f.base, "containers-storage:[overlay@"+st.root+"+"+st.runroot+"]localhost/pulled-base:latest")
	out := filepath.Join(t.TempDir(), "seed.tar")
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "localhost/pulled-base:latest", "-o", "oci-archive:"+out, "--tag", "seed:pulled")...)
	d := inspect(t, "oci-archive:"+out)
	if d.Kind != "native" || d.LayerCount < 4 {
		t.Errorf("the seed on a pulled base inspects as %q with %d layers", d.Kind, d.LayerCount)
	}
	// A full copy reads every blob and checks it against its digest.
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+out, "dir:"+filepath.Join(t.TempDir(), "copy"))
	sys := newSysroot(t)
	mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:pulled", "--stateroot", "pulled", "--sysroot", sys, "--method", "ostree")...)
}

// TestCreateTagIntoStore: with the base in local storage and only --tag
// destinations, create commits the seed straight into the store, its new
// layers uncompressed. The image must be the one an oci-archive run of the
// same root and --timestamp makes (the same ID, which is its config's
// digest), read back whole by a copy out of the store, and deployable. The
// same seed again only adds a name; a run that fails after its layers
// were stored leaves none behind.
func TestCreateTagIntoStore(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	storeRef := func(name string) string {
		return "containers-storage:[overlay@" + st.root + "+" + st.runroot + "]" + name
	}
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+f.base, storeRef("localhost/stored-base:latest"))
	type report struct {
		ImageID string `json:"image_id"`
		Layers  []struct {
			Name      string `json:"name"`
			MediaType string `json:"media_type"`
		} `json:"layers"`
	}
	create := func(root string, dest ...string) (report, result) {
		t.Helper()
		args := append([]string{"create", "--json", "--rootfs", root, "--base", "localhost/stored-base:latest", "--timestamp", "1700000000"}, dest...)
		r := seedbuild(t, nil, st.flags(args...)...)
		var rep report
		if r.code == 0 {
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("create --json: %v\n%s", err, r.stdout)
			}
		}
		return rep, r
	}

	direct, r := create(f.root, "--tag", "seed:direct")
	if r.code != 0 {
		t.Fatalf("create --tag: %s", r)
	}
	for _, l := range direct.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar" {
			t.Errorf("layer %s was committed as %s, want uncompressed (straight into the store)", l.Name, l.MediaType)
		}
	}
	archive, r := create(f.root, "--output", "oci-archive:"+filepath.Join(t.TempDir(), "seed.tar"))
	if r.code != 0 {
		t.Fatalf("create --output: %s", r)
	}
	if direct.ImageID != archive.ImageID {
		t.Errorf("image ID straight into the store = %s, through an oci-archive = %s: want the same config", direct.ImageID, archive.ImageID)
	}
	if got := strings.TrimSpace(st.buildah(t, "images", "-q", "--no-trunc", "localhost/seed:direct")); got != direct.ImageID {
		t.Errorf("buildah sees localhost/seed:direct as %q, want %s", got, direct.ImageID)
	}
	// A copy out of the store reads every layer and checks it against the
	// config's diff IDs.
	back := filepath.Join(t.TempDir(), "back.tar")
	sh(t, nil, "skopeo", "copy", "-q", storeRef("localhost/seed:direct"), "oci-archive:"+back)
	if d := inspect(t, "oci-archive:"+back); d.Kind != "native" {
		t.Errorf("the seed copied out of the store inspects as %q, want native", d.Kind)
	}
	mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:direct", "--stateroot", "direct", "--sysroot", newSysroot(t), "--method", "ostree")...)

	before := len(storeLayers(t, st))
	again, r := create(f.root, "--tag", "seed:again")
	if r.code != 0 || again.ImageID != direct.ImageID {
		t.Fatalf("the same seed again: %s\nimage %s, want %s", r, again.ImageID, direct.ImageID)
	}
	if got := len(storeLayers(t, st)); got != before {
		t.Errorf("the same seed again left %d layers, want %d", got, before)
	}
	if got := strings.TrimSpace(st.buildah(t, "images", "-q", "--no-trunc", "localhost/seed:again")); got != direct.ImageID {
		t.Errorf("localhost/seed:again is %q, want %s", got, direct.ImageID)
	}

	// Credentials are refused once the capture is done: its layers are
	// in the store by then.
	refused := smallRoot(t, map[string]string{"var/lib/kubelet/config.json": `{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}`})
	if _, r := create(refused, "--tag", "seed:refused"); r.code != 1 {
		t.Fatalf("create of a root with credentials: %s\nwant exit 1", r)
	}
	if got := len(storeLayers(t, st)); got != before {
		t.Errorf("a refused create left %d layers, want %d", got, before)
	}
	if out := st.buildah(t, "images", "--format", "{{.Name}}:{{.Tag}}"); strings.Contains(out, "refused") {
		t.Errorf("a refused create left an image:\n%s", out)
	}
}

// TestCreateTagBaseFromArchive: with only --tag destinations and a base
// read from an oci-archive that is not in local storage, create stores the
// base's layers straight from the archive (under the IDs a pull gives
// them, so a later pull of the base stores nothing), then the seed's on
// top. A run refused after that leaves no layer behind, the base's
// included.
func TestCreateTagBaseFromArchive(t *testing.T) {
	f := getFixtures(t)
	for _, c := range []struct {
		name   string
		root   func(t *testing.T) string
		code   int
		layers bool // the run leaves layers: the seed's and the base's
	}{
		{"stored", func(t *testing.T) string { return f.root }, 0, true},
		{"refused", func(t *testing.T) string {
			return smallRoot(t, map[string]string{"var/lib/kubelet/config.json": `{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}`})
		}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t)
			r := seedbuild(t, nil, st.flags("create", "--rootfs", c.root(t), "--base", "oci-archive:"+f.base, "--tag", "seed:"+c.name)...)
			if r.code != c.code {
				t.Fatalf("create --tag on an oci-archive base: %s\nwant exit %d", r, c.code)
			}
			if !strings.Contains(r.stderr, "Storing base layer 1 of") {
				t.Errorf("create --tag did not store the base's layers itself:\n%s", r.stderr)
			}
			if got := len(storeLayers(t, st)) > 0; got != c.layers {
				t.Errorf("the store holds layers %v, want layers: %v", storeLayers(t, st), c.layers)
			}
			if c.code != 0 {
				return
			}
			before := storeLayers(t, st)
			out := sh(t, nil, "skopeo", "copy", "oci-archive:"+f.base, "containers-storage:[overlay@"+st.root+"+"+st.runroot+"]localhost/base-pulled:latest")
			if after := storeLayers(t, st); len(after) != len(before) {
				t.Errorf("a pull of the base after create stored layers %v, want none more than %v:\n%s", after, before, out)
			}
			mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:"+c.name, "--stateroot", "stored", "--sysroot", newSysroot(t), "--method", "ostree")...)
		})
	}
}

// storeLayers lists the IDs of the layers in the store.
func storeLayers(t *testing.T, st store) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(st.root, "overlay-layers", "layers.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var layers []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &layers); err != nil {
		t.Fatalf("reading the store's layers: %v", err)
	}
	var ids []string
	for _, l := range layers {
		ids = append(ids, l.ID)
	}
	return ids
}

// expandDeletions is what seedbuild's etc.deletions should be for the
// upstream one, list: every removed default of root, a folder's entries
// (read from the root's usr/etc) before the folder.
func expandDeletions(list, root string) string {
	var all []string
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if line == "" {
			continue
		}
		all = append(all, line)
		filepath.WalkDir(filepath.Join(root, "usr", line), func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != filepath.Join(root, "usr", line) {
				rel, _ := filepath.Rel(filepath.Join(root, "usr"), p)
				all = append(all, "/"+rel)
			}
			return nil
		})
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all)))
	if len(all) == 0 {
		return ""
	}
	return strings.Join(all, "\n") + "\n"
}
