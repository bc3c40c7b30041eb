package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBadInputEverywhere: every subcommand answers bad usage with exit 2
// and one line naming the input, never a Go panic or stack trace.
func TestBadInputEverywhere(t *testing.T) {
	// Refused runs write nothing; were one let through, it would write
	// only under tmp.
	tmp := t.TempDir()
	x, y, seedTar := filepath.Join(tmp, "x"), filepath.Join(tmp, "y"), filepath.Join(tmp, "seed.tar")
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"frobnicate"}, 2, "frobnicate"},
		{[]string{"version", "extra"}, 2, "extra"},
		{[]string{"inspect", "--nope", "x"}, 2, "--nope"},
		{[]string{"inspect", "bogus-transport:foo"}, 1, "bogus-transport"},
		{[]string{"inspect", "docker://UPPER/Case:bad tag"}, 2, "UPPER"},
		{[]string{"create", "--bogus"}, 2, "--bogus"},
		{[]string{"create", "--rootfs", "/nonexistent", "-o", "oci:" + x, "--base", "oci:" + y}, 1, "/nonexistent"},
		{[]string{"create", "--timestamp", "soon", "-o", "oci:" + x}, 2, "soon"},
		{[]string{"deploy"}, 2, "IMAGE"},
		{[]string{"deploy", "x", "--stateroot", "a b"}, 2, "a b"},
		{[]string{"deploy", "x", "--stateroot", "ok", "--method", "fast"}, 2, "fast"},
		{[]string{"build"}, 2, "CONTEXT"},
		{[]string{"build", "--pull", "sometimes", "."}, 2, "sometimes"},
		{[]string{"build", "--isolation", "vm", "."}, 2, "vm"},
		{[]string{"build", "/nonexistent-context"}, 1, "/nonexistent-context"},
		{[]string{"lint", "-f", "/nonexistent/Containerfile"}, 1, "/nonexistent/Containerfile"},
		{[]string{"containerfile"}, 2, "--seed"},
		{[]string{"facts", "extra"}, 2, "extra"},
		{[]string{"facts", "--rootfs", "/nonexistent-root"}, 1, "/nonexistent-root"},
		{[]string{"lint", "Containerfile"}, 2, "-f FILE"},
		{[]string{"inspect", "Bad Name!!"}, 2, "Bad Name!!"},
		{[]string{"push", "oci:/nonexistent", seedTar}, 2, "oci-archive:" + seedTar},
		{[]string{"completion", "tcsh"}, 2, "tcsh"},
		{[]string{"versoin"}, 2, "did you mean version?"},
		{[]string{"inspect", "--retry", "-3", "oci:/x"}, 2, "--retry"},
		{[]string{"--log-level", "loud", "version"}, 2, "loud"},
	}
	for _, tt := range tests {
		// The same subtest names every run, whatever tmp is.
		name := strings.ReplaceAll(strings.Join(tt.args, " "), tmp, "TMP")
		t.Run(name, func(t *testing.T) {
			r := seedbuild(t, nil, tt.args...)
			first := strings.SplitN(strings.TrimSpace(r.stderr), "\n", 2)[0]
			if r.code != tt.code || !strings.Contains(first, tt.contains) {
				t.Errorf("seedbuild %v: %s\nwant exit %d, first line naming %q", tt.args, r, tt.code, tt.contains)
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
				t.Errorf("seedbuild %v printed a Go panic:\n%s", tt.args, r.stderr)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("seedbuild %v wrote %v", tt.args, left)
			}
		})
	}
}

// TestCorruptArchives: a bad tar, a blob whose digest does not match and a
// missing blob each give one line naming the image, exit 1.
func TestCorruptArchives(t *testing.T) {
	f := getFixtures(t)
	dir := t.TempDir()
	unpacked := filepath.Join(dir, "unpacked")
	os.Mkdir(unpacked, 0o755)
	sh(t, nil, "tar", "-xf", f.bootc, "-C", unpacked)
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	readJSONFile(t, filepath.Join(unpacked, "index.json"), &idx)
	var mf struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	blob := func(d string) string {
		return filepath.Join(unpacked, "blobs/sha256", strings.TrimPrefix(d, "sha256:"))
	}
	readJSONFile(t, blob(idx.Manifests[0].Digest), &mf)
	pack := func(name string, change func()) string {
		work := filepath.Join(dir, name)
		sh(t, nil, "cp", "-a", unpacked, work)
		old := unpacked
		unpacked = work
		change()
		unpacked = old
		out := filepath.Join(dir, name+".tar")
		sh(t, nil, "tar", "-cf", out, "-C", work, ".")
		return out
	}
	configMismatch := pack("config-mismatch", func() { os.WriteFile(blob(mf.Config.Digest), []byte(`{"config":{}}`), 0o644) })
	missingConfig := pack("missing-config", func() { os.Remove(blob(mf.Config.Digest)) })
	garbage := filepath.Join(dir, "garbage.tar")
	os.WriteFile(garbage, []byte("this is not a tar file at all, just text\n"), 0o644)
	for name, p := range map[string]string{"garbage": garbage, "config digest mismatch": configMismatch, "missing config": missingConfig} {
		t.Run(name, func(t *testing.T) {
			r := seedbuild(t, nil, "inspect", "oci-archive:"+p)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], p) {
				t.Errorf("inspect %s: %s\nwant exit 1 and one line naming it", name, r)
			}
		})
	}
	t.Run("layer digest mismatch on deploy", func(t *testing.T) {
		layerMismatch := pack("layer-mismatch", func() {
			os.WriteFile(blob(mf.Layers[len(mf.Layers)-1].Digest), []byte("not the layer"), 0o644)
		})
		st := newStore(t)
		sys := newSysroot(t)
		before := status(t, sys)
		r := seedbuild(t, nil, st.flags("deploy", "oci-archive:"+layerMismatch, "--stateroot", "x", "--sysroot", sys)...)
		if r.code != 1 || !strings.Contains(r.stderr, layerMismatch) {
			t.Errorf("deploy of an archive with a corrupt layer: %s", r)
		}
		if after := status(t, sys); after != before {
			t.Errorf("a failed pull changed the sysroot")
		}
	})
}

// smallTmpfs mounts a 64 MiB tmpfs for the test.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestOutOfSpace: create and deploy against a full 64 MiB tmpfs fail with
// one clear line, leave nothing partial, and storage stays usable.
func TestOutOfSpace(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	full := smallTmpfs(t)
	// Leave 1 MiB: less than the seed's new layers need to be staged
	// (for an oci-archive; a --tag of a local base stages none, as they go
	// straight into the store).
	filler := filepath.Join(full, "filler")
	if err := os.WriteFile(filler, make([]byte, 63<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	r := seedbuild(t, []string{"TMPDIR=" + full}, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+filepath.Join(elsewhere, "seed.tar"))...)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") {
		t.Errorf("create with a full temporary folder: %s\nwant exit 1 saying no space left", r)
	}
	if left, _ := os.ReadDir(full); len(left) != 1 {
		t.Errorf("create left %v on the full filesystem, want only the filler", left)
	}
	if left, _ := os.ReadDir(elsewhere); len(left) != 0 {
		t.Errorf("create with a full temporary folder left %v at its output", left)
	}
	// Leave 16 MiB: less than the seed needs.
	if err := os.WriteFile(filler, make([]byte, 48<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(full, "seed.tar")
	r = seedbuild(t, nil, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+out)...)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") {
		t.Errorf("create into a full filesystem: %s", r)
	}
	if left, _ := os.ReadDir(full); len(left) != 1 {
		t.Errorf("create left %v on the full filesystem, want only the filler", left)
	}
	os.Remove(filler)
	// Storage still works: a normal build goes through.
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:ok")...)

	sys := filepath.Join(full, "sysroot")
	os.Mkdir(sys, 0o755)
	sh(t, nil, "ostree", "admin", "init-fs", "--modern", sys)
	before := status(t, sys)
	r = seedbuild(t, nil, st.flags("deploy", "localhost/seed:ok", "--stateroot", "x", "--sysroot", sys)...)
	if r.code != 1 || !strings.Contains(r.stderr, "space:") {
		t.Errorf("deploy into a 64 MiB sysroot: %s\nwant the space check to refuse it", r)
	}
	if after := status(t, sys); after != before {
		t.Errorf("a refused deploy changed the sysroot")
	}
}

// TestConcurrentRuns: two creates into one store and a deploy from it all
// succeed while another deploy from the same store is held half-way, with
// the seed mounted from the store: every run overlaps the held one, however
// fast the machine is. Interrupted afterwards, the held deploy is undone.
func TestConcurrentRuns(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:first")...)
	sys := newSysroot(t)
	heldSys := newSysroot(t)
	heldBefore := status(t, heldSys)
	held := exec.Command(bin, st.flags("deploy", "localhost/seed:first", "--stateroot", "held", "--sysroot", heldSys, "--method", "ostree")...)
	held.Env = append(os.Environ(), "SEEDBUILD_INJECT_HANG=2")
	reached, heldDone := startHeld(t, held, "[2/")
	select {
	case <-reached:
	case h := <-heldDone:
		t.Fatalf("the held deploy ended before step 2: %v\n%s", h.err, h.stderr)
	}

	var wg sync.WaitGroup
	results := make([]result, 3)
	errs := make([]error, 3)
	runs := [][]string{
		st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:a"),
		st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--karg", "b=1", "--tag", "seed:b"),
		st.flags("deploy", "-q", "localhost/seed:first", "--stateroot", "c", "--sysroot", sys, "--method", "ostree"),
	}
	for i, args := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = runSeedbuild(nil, args...)
		}()
	}
	wg.Wait()
	select {
	case h := <-heldDone:
		t.Fatalf("the held deploy ended while the other runs went on, so they need not have overlapped it: %v\n%s", h.err, h.stderr)
	default:
	}
	held.Process.Signal(syscall.SIGINT)
	if h := <-heldDone; h.err == nil || !strings.Contains(h.stderr, "was undone") {
		t.Errorf("the held deploy after SIGINT: exit %v; want a failed run that says it was undone:\n%s", h.err, h.stderr)
	}
	if after := status(t, heldSys); after != heldBefore {
		t.Errorf("the interrupted deploy left its sysroot changed:\n%s\nwant:\n%s", after, heldBefore)
	}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("running seedbuild %v: %v", runs[i], errs[i])
		}
		if r.code != 0 {
			t.Errorf("concurrent run %v: %s", runs[i], r)
		}
	}
	for _, tag := range []string{"seed:a", "seed:b"} {
		if d := inspect(t, st.flags("localhost/"+tag)...); d.Kind != "native" {
			t.Errorf("%s inspects as %q", tag, d.Kind)
		}
	}
}

// heldRun is how a run started by startHeld ended.
type heldRun struct {
	stderr string
	err    error
}

// startHeld starts cmd and reads its stderr in the background: reached is
// closed when the output first holds marker, and done gets how cmd ended.
// Unlike runUntil, it leaves the test free to run other things meanwhile.
func startHeld(t *testing.T, cmd *exec.Cmd, marker string) (reached <-chan struct{}, done <-chan heldRun) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r, d := make(chan struct{}), make(chan heldRun, 1)
	// However the test ends, the run does not outlive it.
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		var out strings.Builder
		buf := make([]byte, 4096)
		seen := false
		for {
			n, err := stderr.Read(buf)
			out.Write(buf[:n])
			if !seen && strings.Contains(out.String(), marker) {
				close(r)
				seen = true
			}
			if err != nil {
				break
			}
		}
		d <- heldRun{stderr: out.String(), err: cmd.Wait()}
	}()
	return r, d
}

// TestSecretsStayOut plants a recognisable secret in the captured tree,
// lets it in with --allow-credentials, and checks it appears in no label,
// history entry, report, log or error.
func TestSecretsStayOut(t *testing.T) {
	f := getFixtures(t)
	secret := `{"auths":{"registry.example.com":{"auth":"` + canary + `"}}}`
	root := smallRoot(t, map[string]string{"var/lib/kubelet/config.json": secret, "etc/containers/auth.json": secret})
	out := filepath.Join(t.TempDir(), "seed.tar")
	r := seedbuild(t, nil, "--log-level", "debug", "create", "--json", "--allow-credentials", "--rootfs", root, "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+out)
	if r.code != 0 {
		t.Fatal(r)
	}
	refused := seedbuild(t, nil, "--log-level", "debug", "create", "--json", "--rootfs", root, "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+out+".2")
	if refused.code != 1 || !strings.Contains(refused.stderr, "refusing to capture registry credentials") || !strings.Contains(refused.stderr, "--allow-credentials") {
		t.Errorf("create without --allow-credentials: %s\nwant exit 1 refusing the credentials and naming --allow-credentials", refused)
	}
	for _, p := range []string{"/var/lib/kubelet/config.json", "/etc/containers/auth.json"} {
		if !strings.Contains(refused.stderr, p) {
			t.Errorf("the refusal does not name %s: %s", p, refused.stderr)
		}
	}
	if _, err := os.Stat(out + ".2"); err == nil {
		t.Errorf("the refused create wrote %s", out+".2")
	}
	insp := mustSeedbuild(t, "inspect", "--json", "oci-archive:"+out)
	img := readArchive(t, out)
	cfg, _ := json.Marshal(img.config)
	mf, _ := json.Marshal(img.manifest)
	for name, text := range map[string]string{
		"create output": r.stdout + r.stderr, "refusal": refused.stdout + refused.stderr, "inspect": insp.stdout,
		"config (labels, history)": string(cfg), "manifest (annotations)": string(mf),
	} {
		if strings.Contains(text, canary) {
			t.Errorf("%s leaks the planted secret", name)
		}
	}
}

// TestReleaseBinaryHasNoFailpoints: what make build ships reads no
// SEEDBUILD_INJECT_* variable, so none in a pod or a shell can fail or hang
// a deploy; the test build, which the other tests use, does.
func TestReleaseBinaryHasNoFailpoints(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{{releaseBin, false}, {bin, true}} {
		data, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"SEEDBUILD_INJECT_FAILURE", "SEEDBUILD_INJECT_HANG", "SEEDBUILD_INJECT_PAUSE"} {
			if got := bytes.Contains(data, []byte(name)); got != c.want {
				t.Errorf("%s holds %s: %v, want %v", c.path, name, got, c.want)
			}
		}
	}
	// And it behaves so: an injected failure, hang and pause at step 1 are
	// ignored.
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:release")...)
	sys := newSysroot(t)
	cmd := exec.Command(releaseBin, st.flags("deploy", "localhost/seed:release", "--stateroot", "seed", "--sysroot", sys, "--method", "ostree", "-q")...)
	cmd.Env = append(os.Environ(), "SEEDBUILD_INJECT_FAILURE=1", "SEEDBUILD_INJECT_HANG=1", "SEEDBUILD_INJECT_PAUSE="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the release binary's deploy with SEEDBUILD_INJECT_* set: %v\n%s", err, out)
	}
}
