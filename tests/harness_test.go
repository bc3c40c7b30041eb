// Package tests runs seedbuild end to end through the built binary,
// against real containers-storage, a real registry, real ostree sysroots
// and a real podman service, all started by the tests themselves.
package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedbuild/seedbuild/internal/scratch"
	"go.podman.io/storage/pkg/reexec"
)

var (
	// work holds the fixtures shared by every test of the run.
	work string
	// bin is the seedbuild binary under test: the test build, with
	// failpoints.
	bin string
	// releaseBin is what make build ships, without failpoints.
	releaseBin string
	// repoRoot is the project's top folder.
	repoRoot string
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		// Not a silent "ok": nothing would have been tested.
		fmt.Println("FAIL: the end-to-end tests need root (they make sysroots, mounts and VMs); run them as root, or run make unit")
		return 1
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	var err error
	work, err = os.MkdirTemp("/var/tmp", "seedbuild-e2e-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(work)
	bin, releaseBin = os.Getenv("SEEDBUILD_BIN"), os.Getenv("SEEDBUILD_RELEASE_BIN")
	if bin == "" || releaseBin == "" {
		cmd := exec.Command("make", "-C", repoRoot, "build", "build-test")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Println("building seedbuild:", err)
			return 1
		}
		bin, releaseBin = filepath.Join(repoRoot, "bin/seedbuild-test"), filepath.Join(repoRoot, "bin/seedbuild")
	}
	code := m.Run()
	stopServices()
	return code
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// seedbuild runs the binary with args and returns what it did.
func seedbuild(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r, err := runSeedbuild(env, args...)
	if err != nil {
		t.Fatalf("running seedbuild %v: %v", args, err)
	}
	return r
}

// runSeedbuild runs the binary; the error is for a binary that could not
// be run at all. It does not touch a test, so goroutines may call it.
func runSeedbuild(env []string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return result{}, err
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}, nil
}

// mustSeedbuild runs the binary and fails the test unless it exits 0.
func mustSeedbuild(t testing.TB, args ...string) result {
	t.Helper()
	r := seedbuild(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("seedbuild %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// sh runs a command and returns its stdout, failing the test on error.
func sh(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// runEnv runs a command and returns what it did, whatever its exit code;
// a command that could not be run at all fails the test.
func runEnv(t testing.TB, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", name, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// store is a private containers-storage store.
type store struct{ root, runroot string }

func newStore(t testing.TB) store {
	dir := t.TempDir()
	// podman refuses run roots longer than 50 characters.
	run, err := os.MkdirTemp("/tmp", "sbrun")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	t.Cleanup(func() {
		scratch.UnmountAll(run)
		os.RemoveAll(run)
		removeStore(t, dir, root)
	})
	return store{root: root, runroot: run}
}

// removeStore removes the store at root, under dir, before the test's
// TempDir removal does: a `podman run --rm` returns before its cleanup
// process (conmon's exit command, podman container cleanup) is done with
// the store, which may still be writing in overlay/ while it goes (one
// clean-clone run failed so: "unlinkat .../root/overlay: directory not
// empty"). It tries again for up to 10 s.
func removeStore(t testing.TB, dir, root string) {
	var err error
	for i := 0; i < 100; i++ {
		scratch.UnmountAll(dir)
		if err = os.RemoveAll(root); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("removing the store %s: %v", root, err)
}

// flags are seedbuild's global flags for the store.
func (s store) flags(args ...string) []string {
	return append([]string{"--root", s.root, "--runroot", s.runroot, "--storage-driver", "overlay"}, args...)
}

// buildahEnv makes the hack/ scripts use the store.
func (s store) buildahEnv() []string {
	return []string{"BUILDAH_ARGS=--root " + s.root + " --runroot " + s.runroot + " --storage-driver overlay"}
}

// buildah runs Debian's buildah on the store.
func (s store) buildah(t testing.TB, args ...string) string {
	t.Helper()
	return sh(t, nil, "buildah", append([]string{"--root", s.root, "--runroot", s.runroot, "--storage-driver", "overlay"}, args...)...)
}

// fixtures are made once per run, on first use.
type fixtureSet struct {
	root       string // mkroot.py --scale 0.05 --ostree
	base       string // oci-archive of the stand-in base
	classic    string // upstream replay, classic
	bootc      string // upstream replay, bootc-tarball
	fixtureErr error
	once       sync.Once
}

var fixtures fixtureSet

func hackScript(name string) string { return filepath.Join(repoRoot, "hack", name) }

// getFixtures returns the shared sample root, base and upstream seeds.
func getFixtures(t testing.TB) *fixtureSet {
	t.Helper()
	fixtures.once.Do(func() {
		f := &fixtures
		dir := filepath.Join(work, "fixtures")
		st := store{root: filepath.Join(dir, "storage"), runroot: filepath.Join(dir, "run")}
		env := st.buildahEnv()
		f.root = filepath.Join(dir, "root")
		f.base = filepath.Join(dir, "base.tar")
		f.classic = filepath.Join(dir, "upstream-classic.tar")
		f.bootc = filepath.Join(dir, "upstream-bootc.tar")
		steps := [][]string{
			{"python3", hackScript("mkroot.py"), "--out", f.root, "--scale", "0.05", "--ostree"},
			{hackScript("mkbase.sh"), f.root, "localhost/e2e-base:latest", f.base},
			{hackScript("lca-reference.sh"), "classic", f.root, f.classic},
			{hackScript("lca-reference.sh"), "bootc", f.root, f.bootc, "oci-archive:" + f.base},
		}
		for _, s := range steps {
			cmd := exec.Command(s[0], s[1:]...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				f.fixtureErr = fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
				return
			}
		}
	})
	if fixtures.fixtureErr != nil {
		t.Fatalf("making fixtures: %v", fixtures.fixtureErr)
	}
	return &fixtures
}

// services are background processes the tests started.
var (
	servicesMu sync.Mutex
	services   []*exec.Cmd
)

func startService(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	servicesMu.Lock()
	services = append(services, cmd)
	servicesMu.Unlock()
	return nil
}

func stopServices() {
	servicesMu.Lock()
	defer servicesMu.Unlock()
	for _, c := range services {
		c.Process.Kill()
		c.Wait()
	}
	services = nil
}

// runUntil starts cmd and reads its stderr; when the output first holds
// marker, it calls act (to signal or kill cmd, say). It returns all of
// stderr, whether act ran, and how cmd ended.
func runUntil(t testing.TB, cmd *exec.Cmd, marker string, act func()) (string, bool, error) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	buf := make([]byte, 4096)
	acted := false
	for {
		n, err := stderr.Read(buf)
		out.Write(buf[:n])
		if !acted && strings.Contains(out.String(), marker) {
			act()
			acted = true
		}
		if err != nil {
			break
		}
	}
	return out.String(), acted, cmd.Wait()
}
