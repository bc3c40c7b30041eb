package tests

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/seedbuild/seedbuild/internal/scratch"
)

// maxReleaseSize is the size the release binary must stay under.
const maxReleaseSize = 60 << 20

// TestReleaseBinaryIsStatic reads the release binary's ELF headers: no
// program interpreter and no shared library, so it runs on a node whose
// libc is not the build machine's.
func TestReleaseBinaryIsStatic(t *testing.T) {
	for _, path := range []string{releaseBin, bin} {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s has a %s program header: it is dynamically linked", path, p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", path, libs)
		}
	}
	st, err := os.Stat(releaseBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes (%.1f MiB)", releaseBin, st.Size(), float64(st.Size())/(1<<20))
	if st.Size() >= maxReleaseSize {
		t.Errorf("%s is %d bytes, over the %d limit", releaseBin, st.Size(), maxReleaseSize)
	}
}

// TestReleaseBinaryWithoutLibc runs the release binary in a root that has
// no libc at all, only busybox-static: version, inspect, and a create both
// to an archive and into an overlay store.
func TestReleaseBinaryWithoutLibc(t *testing.T) {
	f := getFixtures(t)
	root := t.TempDir()
	t.Cleanup(func() {
		scratch.UnmountAll(root)
		syscall.Unmount(root, syscall.MNT_DETACH)
	})
	for _, d := range []string{"bin", "usr/bin", "proc", "dev", "tmp", "var/tmp", "sample", "in", "etc/containers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, nil, "cp", "/usr/bin/busybox", filepath.Join(root, "bin/busybox"))
	sh(t, nil, "cp", releaseBin, filepath.Join(root, "usr/bin/seedbuild"))
	policy := `{"default":[{"type":"insecureAcceptAnything"}]}`
	if err := os.WriteFile(filepath.Join(root, "etc/containers/policy.json"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	mount := func(src, dst, fstype string, flags uintptr) {
		t.Helper()
		if err := syscall.Mount(src, filepath.Join(root, dst), fstype, flags, ""); err != nil {
			t.Fatalf("mounting %s on %s: %v", src, dst, err)
		}
	}
	// A container's root is a mount point; storage's untar remounts it.
	mount(root, "", "", syscall.MS_BIND)
	mount("proc", "proc", "proc", 0)
	mount("/dev", "dev", "", syscall.MS_BIND)
	mount(f.root, "sample", "", syscall.MS_BIND)
	mount(filepath.Dir(f.base), "in", "", syscall.MS_BIND)
	// Nothing of libc is there to be found.
	if libs, _ := filepath.Glob(filepath.Join(root, "lib*")); len(libs) > 0 {
		t.Fatalf("the root has %v", libs)
	}

	inRoot := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("chroot", append([]string{root, "/usr/bin/seedbuild", "--root", "/store", "--runroot", "/run/store"}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=/var/tmp"}
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("seedbuild %s in a root without libc: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	if v := inRoot("version", "--format", "{{.Platform}}"); v != "linux/amd64" {
		t.Errorf("version printed %q", v)
	}
	base := "oci-archive:/in/" + filepath.Base(f.base)
	inRoot("create", "-q", "--rootfs", "/sample", "--base", base, "--tag", "localhost/seed:static", "-o", "oci-archive:/var/tmp/seed.tar")
	if kind := inRoot("inspect", "--format", "{{.Kind}} {{.FormatVersion}}", "oci-archive:/var/tmp/seed.tar"); kind != "native 5" {
		t.Errorf("the seed made without libc inspects as %q, want native 5", kind)
	}
	if kind := inRoot("inspect", "--format", "{{.Kind}}", "containers-storage:localhost/seed:static"); kind != "native" {
		t.Errorf("the seed committed to the overlay store without libc inspects as %q", kind)
	}
	// The archive is read the same from outside the root.
	if d := inspect(t, "oci-archive:"+filepath.Join(root, "var/tmp/seed.tar")); d.Kind != "native" {
		t.Errorf("outside, the seed inspects as %q", d.Kind)
	}
}
