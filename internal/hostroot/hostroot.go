// Package hostroot lets seedbuild work on the node it runs on from inside a
// container, as the upstream agent does: the node's / is mounted at a
// folder (podman run --privileged --pid=host -v /:/host), its files are
// read under that folder, and its own tools (ostree, rpm-ostree, bootc,
// podman) run in its mount namespace, never the image's copies.
//
// The zero Host is seedbuild running on the node itself: root "/", tools
// run directly.
package hostroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/internal/command"
	"golang.org/x/sys/unix"
)

// Host is the node seedbuild works on, as seen from where it runs. Every
// fact seedbuild reads of the running host goes through it: its files
// (Path), its tools (Runner) and its kernel (KernelCmdline, FIPSEnabled).
type Host struct {
	root string
	// proc is where the kernel's /proc is read; "" is /proc. The kernel is
	// the host's whatever the mount namespace: a container shares it.
	proc string
	// runner, when set, runs the host's tools (Fake).
	runner command.Runner
}

// Fake is a host for tests: root is its / (and a live root, IsRoot, when
// a sysroot is root itself), proc stands in for the kernel's /proc (the
// files cmdline and sys/crypto/fips_enabled), and r runs its tools.
func Fake(root, proc string, r command.Runner) Host {
	return Host{root: filepath.Clean(root), proc: proc, runner: r}
}

// KernelCmdline is the running kernel's command line, "" when it cannot be
// read.
func (h Host) KernelCmdline() string {
	data, _ := os.ReadFile(h.procPath("cmdline"))
	return strings.TrimSpace(string(data))
}

// FIPSEnabled says whether the running kernel is in FIPS mode, and whether
// that could be read.
func (h Host) FIPSEnabled() (enabled, known bool) {
	data, err := os.ReadFile(h.procPath("sys/crypto/fips_enabled"))
	if err != nil {
		return false, false
	}
	return strings.TrimSpace(string(data)) == "1", true
}

// Proc is the kernel's /proc, where the host's processes are listed.
func (h Host) Proc() string {
	if h.proc == "" {
		return "/proc"
	}
	return h.proc
}

func (h Host) procPath(rel string) string { return filepath.Join(h.Proc(), rel) }

// ErrNotHostRoot is returned by Open for a folder that is not the root of
// the host whose PID 1 this process sees.
var ErrNotHostRoot = errors.New("not the host's root")

// hostPath is the PATH the host's tools are looked up in.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Open checks that dir is the host's / and returns the Host. The check is
// that dir and PID 1's root are the same folder, which holds only when the
// container shares the host's PID namespace (--pid=host) and mounts its /
// at dir; nsenter, which runs the host's tools, needs both.
func Open(dir string) (Host, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		// Paths seedbuild meets (containers/image resolves them) are real
		// ones: the root must be too, for HostPath to rewrite them.
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return Host{}, fmt.Errorf("resolving --host-root %q: %w", dir, err)
	}
	if abs == "/" {
		return Host{}, nil
	}
	var mine, pid1 unix.Stat_t
	if err := unix.Stat(abs, &mine); err != nil {
		return Host{}, fmt.Errorf("reading --host-root %q: %w", dir, err)
	}
	if err := unix.Stat("/proc/1/root", &pid1); err != nil {
		return Host{}, fmt.Errorf("reading PID 1's root for --host-root %q: %w", dir, err)
	}
	if mine.Dev != pid1.Dev || mine.Ino != pid1.Ino {
		return Host{}, fmt.Errorf("--host-root %q: %w: PID 1's / is another folder; run the container with --pid=host and -v /:%s", dir, ErrNotHostRoot, abs)
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return Host{}, fmt.Errorf("--host-root %q: nsenter, which runs the host's tools, is not in PATH: %w", dir, err)
	}
	return Host{root: abs}, nil
}

// Root is the host's / as seedbuild sees it.
func (h Host) Root() string {
	if h.root == "" {
		return "/"
	}
	return h.root
}

// Local reports whether seedbuild runs on the host itself.
func (h Host) Local() bool { return h.root == "" }

// IsRoot reports whether dir is the host's own / (a live root), not a
// folder laid out like one.
func (h Host) IsRoot(dir string) bool { return filepath.Clean(dir) == h.Root() }

// Path is the host's path p as seedbuild sees it.
func (h Host) Path(p string) string { return filepath.Join(h.Root(), p) }

// HostPath is p, a path as seedbuild sees it, as the host's tools see it.
// A path outside the host's root is returned as it is.
func (h Host) HostPath(p string) string {
	if h.Local() {
		return p
	}
	if p == h.root {
		return "/"
	}
	if rest, ok := strings.CutPrefix(p, h.root+"/"); ok {
		return "/" + rest
	}
	return p
}

// hostArg rewrites the paths under the host's root in one argument: the
// argument itself, or a value after "=" or ":" (--repo=DIR,
// --tree=dir=DIR, containers-storage:[overlay@DIR]...).
func (h Host) hostArg(arg string) string {
	if h.Local() {
		return arg
	}
	arg = h.HostPath(arg)
	for _, sep := range []string{"=", ":", "@", "[", "+"} {
		arg = strings.ReplaceAll(arg, sep+h.root+"/", sep+"/")
		if strings.HasSuffix(arg, sep+h.root) {
			arg = strings.TrimSuffix(arg, h.root) + "/"
		}
	}
	return arg
}

// HostArgv is argv with its paths as the host's tools see them.
func (h Host) HostArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = h.hostArg(a)
	}
	return out
}

// Runner runs the host's own tools: directly on the host itself, else in
// PID 1's mount namespace through nsenter, with paths rewritten.
func (h Host) Runner() command.Runner {
	if h.runner != nil {
		return h.runner
	}
	if h.Local() {
		return command.Exec{}
	}
	return nsenterRunner{h}
}

type nsenterRunner struct{ h Host }

// Run runs argv in the host's mount namespace, looked up in the host's
// PATH.
func (r nsenterRunner) Run(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	return command.Exec{}.Run(ctx, r.Argv(argv), stdout, stderr)
}

// Argv is the command line that runs argv on the host. env is named by
// its path: busybox's nsenter (seedbuild's image has no other) runs its own
// applet for a bare name it knows, so "env" then "tar" would be busybox's,
// not the host's.
func (r nsenterRunner) Argv(argv []string) []string {
	return append([]string{"nsenter", "-t", "1", "-m", "--", "/usr/bin/env", "PATH=" + hostPath}, r.h.HostArgv(argv)...)
}

var _ command.Runner = nsenterRunner{}
