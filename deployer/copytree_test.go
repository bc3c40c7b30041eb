package deployer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/progress"
	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sys/unix"
)

// TestCopyTreeCounts: the copy counts each file's bytes once, and the
// size walk that gives progress its total agrees with it.
func TestCopyTreeCounts(t *testing.T) {
	src := t.TempDir()
	files := map[string]int{"lib/a": 4000, "lib/b/c": 100, "log/empty": 0}
	for rel, size := range files {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "lib/a"), filepath.Join(src, "lib/a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(src, "lib/sym")); err != nil {
		t.Fatal(err)
	}
	size, err := treeSize(src, make(chan struct{}))
	if err != nil || size != 4100 {
		t.Errorf("treeSize = %d, %v; want 4100 (the linked file once, no symlink)", size, err)
	}
	var done progress.Counter
	if err := copyTree(src, filepath.Join(t.TempDir(), "dst"), &done, copyOptions{}); err != nil {
		t.Fatal(err)
	}
	if files, bytes, _ := done.Snapshot(); files != 3 || bytes != size {
		t.Errorf("copyTree counted %d files, %d bytes; want 3 files, %d bytes", files, bytes, size)
	}
	stopped := make(chan struct{})
	close(stopped)
	if _, err := treeSize(src, stopped); !errors.Is(err, progress.ErrStopped) {
		t.Errorf("treeSize after stop: %v, want progress.ErrStopped", err)
	}
}

// TestCopyTreeXattrLoss copies a file with an xattr onto ramfs, which
// keeps no xattrs: the copy fails and names the path, unless told to go on,
// when it counts what it lost.
func TestCopyTreeXattrLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting ramfs needs root (make test runs as root)")
	}
	src := t.TempDir()
	f := filepath.Join(src, "labelled")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(f, "user.seed.label", []byte("kept"), 0); err != nil {
		t.Skipf("skipped: %s keeps no user xattrs: %v", src, err)
	}
	ram := t.TempDir()
	if err := unix.Mount("ramfs", ram, "ramfs", 0, ""); err != nil {
		t.Fatalf("mounting ramfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ram, unix.MNT_DETACH) })
	var done progress.Counter
	err := copyTree(src, filepath.Join(ram, "strict"), &done, copyOptions{})
	if err == nil || !strings.Contains(err.Error(), "user.seed.label") || !strings.Contains(err.Error(), "labelled") || !strings.Contains(err.Error(), "--allow-xattr-loss") {
		t.Errorf("copyTree onto ramfs = %v, want an error naming the xattr, the path and --allow-xattr-loss", err)
	}
	lost := &xattrLoss{}
	if err := copyTree(src, filepath.Join(ram, "lenient"), &done, copyOptions{lost: lost}); err != nil || lost.count != 1 {
		t.Errorf("copyTree onto ramfs, going on = %v, %d lost; want nil and 1 lost", err, lost.count)
	}
}

// TestCopyTreeLabels: with a label map, each copied path gets its label
// from the map, and one the map does not name gets none of the source's.
func TestCopyTreeLabels(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: setting security.selinux needs root (make test runs as root)")
	}
	const usr, etc, bin = "system_u:object_r:usr_t:s0", "system_u:object_r:etc_t:s0", "system_u:object_r:bin_t:s0"
	src := t.TempDir()
	for _, rel := range []string{"kubernetes/kubelet.conf", "kubernetes/standin/kubelet", "unlabelled.conf"} {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The source, as the commit labelled it where it lies: all usr_t.
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		if err := unix.Lsetxattr(p, selinuxXattr, []byte(usr), 0); err != nil {
			t.Fatalf("labelling %s: %v", p, err)
		}
		return nil
	})
	labels := map[string]string{".": etc, "kubernetes": etc, "kubernetes/kubelet.conf": etc, "kubernetes/standin": etc, "kubernetes/standin/kubelet": bin}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
	}{
		{"from the map", labels, map[string]string{"": etc, "kubernetes/kubelet.conf": etc, "kubernetes/standin/kubelet": bin, "unlabelled.conf": ""}},
		{"without a map, the source's", nil, map[string]string{"": usr, "kubernetes/kubelet.conf": usr, "unlabelled.conf": usr}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "etc")
			var done progress.Counter
			if err := copyTree(src, dst, &done, copyOptions{labels: c.labels}); err != nil {
				t.Fatal(err)
			}
			for rel, want := range c.want {
				buf := make([]byte, 256)
				n, err := unix.Lgetxattr(filepath.Join(dst, rel), selinuxXattr, buf)
				got := ""
				if err == nil {
					got = string(buf[:n])
				} else if !errors.Is(err, unix.ENODATA) {
					t.Fatalf("reading the label of %s: %v", rel, err)
				}
				if got != want {
					t.Errorf("%q: label %q, want %q", rel, got, want)
				}
			}
		})
	}
}

// TestCopyTreeLinks: files sharing an inode are linked in the copy, over
// what dst holds, unless the copy is unlinked (an ostree checkout).
func TestCopyTreeLinks(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("same"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		unlinked bool
	}{{"linked", false}, {"unlinked", true}} {
		t.Run(c.name, func(t *testing.T) {
			dst := t.TempDir()
			// dst already has both, as a deployment's /etc has its defaults.
			for _, n := range []string{"a", "b"} {
				if err := os.WriteFile(filepath.Join(dst, n), []byte("default"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var done progress.Counter
			if err := copyTree(src, dst, &done, copyOptions{unlinked: c.unlinked}); err != nil {
				t.Fatal(err)
			}
			var a, b unix.Stat_t
			unix.Lstat(filepath.Join(dst, "a"), &a)
			unix.Lstat(filepath.Join(dst, "b"), &b)
			if linked := a.Ino == b.Ino; linked == c.unlinked {
				t.Errorf("a and b share an inode: %v, want %v", linked, !c.unlinked)
			}
			for _, n := range []string{"a", "b"} {
				if data, _ := os.ReadFile(filepath.Join(dst, n)); string(data) != "same" {
					t.Errorf("%s reads %q, want the source's", n, data)
				}
			}
		})
	}
}

// TestMoveIntoTakesTheFolder: moving the image's /var into the stateroot's,
// which os-init made, keeps what os-init made inside, and the folders take
// the image's mode and SELinux label.
func TestMoveIntoTakesTheFolder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: setting security.selinux needs root (make test runs as root)")
	}
	const tmp, unlabelled = "system_u:object_r:tmp_t:s0", "system_u:object_r:unlabeled_t:s0"
	src, dst := filepath.Join(t.TempDir(), "tmp"), filepath.Join(t.TempDir(), "tmp")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "from-image"), nil, 0o644)
	os.WriteFile(filepath.Join(dst, "from-os-init"), nil, 0o644)
	if err := unix.Chmod(src, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(src, selinuxXattr, []byte(tmp), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(dst, selinuxXattr, []byte(unlabelled), 0); err != nil {
		t.Fatal(err)
	}
	if err := moveInto(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"from-image", "from-os-init"} {
		if _, err := os.Stat(filepath.Join(dst, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	var st unix.Stat_t
	unix.Lstat(dst, &st)
	buf := make([]byte, 128)
	n, _ := unix.Lgetxattr(dst, selinuxXattr, buf)
	if st.Mode&0o7777 != 0o1777 || string(buf[:max(n, 0)]) != tmp {
		t.Errorf("the folder has mode %o and label %q, want the image's 1777 and %q", st.Mode&0o7777, buf[:max(n, 0)], tmp)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("the image's folder is still there: %v", err)
	}
}

// TestCopyTreeKeepExisting: with keepExisting the copy adds only what the
// destination lacks (a var that ostree before 2024.3 left with os-init's
// folders only), and leaves what is there (one ostree filled) untouched.
func TestCopyTreeKeepExisting(t *testing.T) {
	tests := []struct {
		name  string
		keep  bool
		want  map[string]string // path: content ("" for a folder)
		modes map[string]os.FileMode
	}{
		{"keep existing", true,
			map[string]string{"lib/kept": "dst\n", "lib/new": "src\n", "log/x": "src\n", "tmp": "", "run": "->../run"},
			map[string]os.FileMode{"lib": 0o700}},
		{"replace", false,
			map[string]string{"lib/kept": "src\n", "lib/new": "src\n", "log/x": "src\n", "tmp": "", "run": "->../run"},
			map[string]os.FileMode{"lib": 0o755}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			for rel, content := range map[string]string{"lib/kept": "src\n", "lib/new": "src\n", "log/x": "src\n"} {
				os.MkdirAll(filepath.Join(src, filepath.Dir(rel)), 0o755)
				os.WriteFile(filepath.Join(src, rel), []byte(content), 0o644)
			}
			os.Mkdir(filepath.Join(src, "tmp"), 0o1777)
			os.Symlink("../run", filepath.Join(src, "run"))
			// What os-init or the tool left: a folder of another mode, a
			// file, and the run link.
			os.Mkdir(filepath.Join(dst, "lib"), 0o700)
			os.WriteFile(filepath.Join(dst, "lib/kept"), []byte("dst\n"), 0o644)
			os.Symlink("../run", filepath.Join(dst, "run"))
			// The seed node's label of a file ostree put there is put back.
			labels := map[string]string{"lib/kept": "system_u:object_r:user_home_t:s0"}
			var done progress.Counter
			if err := copyTree(src, dst, &done, copyOptions{keepExisting: tt.keep, labels: labels}); err != nil {
				t.Fatal(err)
			}
			if got, err := xattrs.Get(filepath.Join(dst, "lib/kept"), selinuxXattr); err != nil || strings.TrimRight(string(got), "\x00") != labels["lib/kept"] {
				t.Errorf("lib/kept's label = %q (%v), want the labels map's %q", got, err, labels["lib/kept"])
			}
			for rel, want := range tt.want {
				p := filepath.Join(dst, rel)
				var got string
				if target, err := os.Readlink(p); err == nil {
					got = "->" + target
				} else if fi, err := os.Stat(p); err != nil {
					got = "missing"
				} else if !fi.IsDir() {
					data, _ := os.ReadFile(p)
					got = string(data)
				}
				if got != want {
					t.Errorf("%s = %q, want %q", rel, got, want)
				}
			}
			for rel, want := range tt.modes {
				if fi, err := os.Stat(filepath.Join(dst, rel)); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v (%v), want %v", rel, fi.Mode().Perm(), err, want)
				}
			}
		})
	}
}
