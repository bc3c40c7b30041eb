package tests

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// TestReleaseBinaryLoadsNothing runs the release binary's create and a
// deploy that is done again with the layers applied in order (the path a
// Debian 13 node was reported to crash on, exit 139), under strace: no
// process of seedbuild's (its re-exec for storage's untar too) may open a
// shared library (glibc's NSS modules, libnss_*.so, among them) or an
// iconv (gconv) module. A static glibc binary that loads one runs the
// node's libc code against its own, built in: what the linker's warnings
// about dlopen and getpwnam_r in a static binary (from ocicrypt's PKCS#11
// support and libselinux's seusers.c, neither called) are about. Go's own
// resolver and user lookup (netgo, osusergo) read nsswitch.conf, passwd
// and hosts themselves, which loads nothing. The programs deploy runs
// (ostree) are dynamic, and left out.
func TestReleaseBinaryLoadsNothing(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatalf("this test needs strace (make deps installs it): %v", err)
	}
	f := getFixtures(t)
	st := newStore(t)
	dir := t.TempDir()
	traced := func(name string, args ...string) ([]string, string) {
		t.Helper()
		log := filepath.Join(dir, name+".strace")
		argv := append([]string{"-f", "-qq", "-s", "512", "-o", log,
			"-e", "trace=open,openat,openat2,execve,execveat,clone,clone3,fork,vfork", releaseBin}, st.flags(args...)...)
		out, err := exec.Command("strace", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("seedbuild %s under strace: %v\n%s", strings.Join(args, " "), err, out)
		}
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		loaded, opens, err := seedbuildLoads(string(data))
		if err != nil {
			t.Fatalf("reading strace's log of seedbuild %s: %v", strings.Join(args, " "), err)
		}
		// A positive control: the log was read as seedbuild's.
		if opens < 10 {
			t.Fatalf("strace's log of seedbuild %s credits seedbuild with %d opens: it was not read right", strings.Join(args, " "), opens)
		}
		return loaded, string(out)
	}
	archive := filepath.Join(dir, "native.tar")
	loaded, _ := traced("create", "create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:native", "-o", "oci-archive:"+archive)
	// A layer on top that writes into /var: the deploy is done again with
	// the layers applied in order (TestDeployVarLayerAside).
	ctx := t.TempDir()
	writeFiles(t, ctx, map[string]string{"Containerfile": "FROM localhost/seed:native\nCOPY extra /var/lib/extra/file\n", "extra": "later\n"})
	mustSeedbuild(t, st.flags("build", "-t", "seed:plusvar", ctx)...)
	sys := newSysroot(t)
	more, out := traced("deploy", "deploy", "localhost/seed:plusvar", "--stateroot", "seed", "--sysroot", sys, "--method", "ostree")
	if !strings.Contains(out, inOrderAgain) {
		t.Errorf("the deploy did not apply the layers in order:\n%s", out)
	}
	loaded = append(loaded, more...)
	if len(loaded) > 0 {
		t.Errorf("seedbuild opened what a static binary must not load:\n%s", strings.Join(loaded, "\n"))
	}
}

// straceCall is one system call of an strace -f log.
type straceCall struct {
	pid, call, path, ret string
}

// straceCalls reads an strace -f log: each call with its pid, its first
// quoted argument and its return value. A call that strace splits, as
// another thread's line comes between, is joined; signal lines are left
// out.
func straceCalls(log string) []straceCall {
	var (
		whole      = regexp.MustCompile(`^(\d+) +(\w+)\((.*)\) += (-?\d+|\?)`)
		unfinished = regexp.MustCompile(`^(\d+) +(\w+)\((.*) <unfinished \.\.\.>$`)
		resumed    = regexp.MustCompile(`^(\d+) +<\.\.\. (\w+) resumed>(.*)\) += (-?\d+|\?)`)
		quoted     = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	)
	pending := map[string]string{} // pid: the arguments of its unfinished call
	var calls []straceCall
	for _, l := range strings.Split(log, "\n") {
		var c straceCall
		var args string
		if m := unfinished.FindStringSubmatch(l); m != nil {
			pending[m[1]] = m[3]
			continue
		}
		if m := whole.FindStringSubmatch(l); m != nil {
			c.pid, c.call, args, c.ret = m[1], m[2], m[3], m[4]
		} else if m := resumed.FindStringSubmatch(l); m != nil {
			c.pid, c.call, args, c.ret = m[1], m[2], pending[m[1]]+m[3], m[4]
			delete(pending, c.pid)
		} else {
			continue
		}
		if q := quoted.FindStringSubmatch(args); q != nil {
			c.path = q[1]
		}
		calls = append(calls, c)
	}
	return calls
}

// seedbuildLoads reads an strace -f log of seedbuild and returns the
// successful opens, by a process of seedbuild's, of a shared library or a
// gconv module, and how many opens of any file it credited to seedbuild.
// The first process's first execve is seedbuild. A process runs what its
// parent ran, until an execve of its own succeeds (of /proc/self/exe: the
// same program). Parents are read from the clones' return values, in a
// first pass: a vfork-like spawn (Go's os/exec) returns in the parent only
// after the child's execve, and the child, re-executed, may open files and
// make threads before strace logs that return.
func seedbuildLoads(log string) (loads []string, opens int, err error) {
	loadable := regexp.MustCompile(`(\.so(\.[0-9.]+)?|/gconv/.*)$`)
	calls := straceCalls(log)
	if len(calls) == 0 {
		return nil, 0, errors.New("no system call in it")
	}
	ok := func(ret string) bool { return ret != "?" && !strings.HasPrefix(ret, "-") }
	parent := map[string]string{}
	for _, c := range calls {
		if (c.call == "clone" || c.call == "clone3" || c.call == "fork" || c.call == "vfork") && ok(c.ret) {
			parent[c.ret] = c.pid
		}
	}
	first := calls[0].pid
	own := map[string]string{} // pid: the program of its own last execve
	exe := ""
	var runs func(pid string, depth int) string
	runs = func(pid string, depth int) string {
		if p, found := own[pid]; found {
			return p
		}
		if pp, found := parent[pid]; found && depth < 64 {
			return runs(pp, depth+1)
		}
		return ""
	}
	for _, c := range calls {
		switch {
		case strings.HasPrefix(c.call, "execve"):
			if c.ret != "0" || c.path == "/proc/self/exe" {
				continue
			}
			if exe == "" && c.pid == first {
				exe = c.path
			}
			own[c.pid] = c.path
		case strings.HasPrefix(c.call, "open"):
			if exe == "" || !ok(c.ret) || runs(c.pid, 0) != exe {
				continue
			}
			opens++
			if loadable.MatchString(c.path) {
				loads = append(loads, c.pid+" "+c.call+" "+c.path)
			}
		}
	}
	if exe == "" {
		return nil, 0, errors.New("its first process ran no execve")
	}
	return loads, opens, nil
}

func TestSeedbuildLoads(t *testing.T) {
	tests := []struct {
		name, log string
		want      []string
		opens     int
	}{
		{"static: nothing loaded", `10 execve("/b/seedbuild", ["seedbuild"], 0x1 /* 3 vars */) = 0
10 openat(AT_FDCWD, "/proc/filesystems", O_RDONLY|O_CLOEXEC) = 3
10 +++ exited with 0 +++`, nil, 1},
		{"a library opened by a thread, the call split", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_THREAD) = 11
11 openat(AT_FDCWD, "/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2", O_RDONLY|O_CLOEXEC <unfinished ...>
10 openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 4
11 <... openat resumed>) = 5`, []string{"11 openat /usr/lib/x86_64-linux-gnu/libnss_systemd.so.2"}, 2},
		{"nsswitch.conf read (as Go's resolver does), a gconv module loaded", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 openat(AT_FDCWD, "/etc/nsswitch.conf", O_RDONLY|O_CLOEXEC) = 3
10 openat(AT_FDCWD, "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", O_RDONLY) = 3
10 openat(AT_FDCWD, "/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so", O_RDONLY) = 3`,
			[]string{"10 openat /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", "10 openat /usr/lib/x86_64-linux-gnu/gconv/UTF-16.so"}, 3},
		{"a failed or unfinished open loads nothing", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 openat(AT_FDCWD, "/lib/libc.so.6", O_RDONLY) = -1 ENOENT (No such file or directory)
10 openat(AT_FDCWD, "/lib/libm.so.6", O_RDONLY) = ?`, nil, 0},
		{"the programs it runs are theirs", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}, 88) = 12
12 execve("/usr/bin/ostree", ["ostree", "admin"], 0x1) = 0
12 openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libostree-1.so.1", O_RDONLY|O_CLOEXEC) = 3`, nil, 0},
		{"a vfork-like spawn: the clone returns after the child's execve", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
14 execve("/usr/bin/ostree", ["ostree", "admin", "deploy"], 0x1) = 0
10 <... clone resumed>) = 14
14 openat(AT_FDCWD, "/etc/nsswitch.conf", O_RDONLY|O_CLOEXEC) = 3`, nil, 0},
		{"its re-exec is itself", `10 execve("/b/seedbuild", ["seedbuild"], 0x1) = 0
10 clone(child_stack=NULL, flags=SIGCHLD) = 13
13 execve("/proc/self/exe", ["storage-untar"], 0x1) = 0
13 openat(AT_FDCWD, "/lib/libz.so.1", O_RDONLY) = 3`, []string{"13 openat /lib/libz.so.1"}, 1},
		{"its re-exec and a thread of it, before the clone's return is logged", `10 execve("seedbuild", ["seedbuild"], 0x1) = 0
10 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
15 execve("/proc/self/exe", ["storage-untar"], 0x1) = 0
15 openat(AT_FDCWD, "/lib/libz.so.1", O_RDONLY) = 3
15 clone3({flags=CLONE_VM|CLONE_THREAD}, 88) = 16
16 openat(AT_FDCWD, "/lib/libnss_files.so.2", O_RDONLY) = 4
10 <... clone resumed>) = 15`, []string{"15 openat /lib/libz.so.1", "16 openat /lib/libnss_files.so.2"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, opens, err := seedbuildLoads(tt.log)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") || opens != tt.opens {
				t.Errorf("got %q and %d opens, want %q and %d", got, opens, tt.want, tt.opens)
			}
		})
	}
	for _, log := range []string{"", "10 openat(AT_FDCWD, \"/x\", O_RDONLY) = 3"} {
		if _, _, err := seedbuildLoads(log); err == nil {
			t.Errorf("a log without seedbuild's execve (%q): no error", log)
		}
	}
}
