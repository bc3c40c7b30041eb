package tests

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seedbuild/seedbuild/deployer"
)

// startPodman runs Debian's `podman system service` on the store, with
// runc, cgroupfs and no default ulimits, on a socket in a temp dir.
func startPodman(t *testing.T, st store) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command("podman", "--root", st.root, "--runroot", st.runroot, "--storage-driver", "overlay",
		"--cgroup-manager", "cgroupfs", "--runtime", "runc", "system", "service", "--time", "0", "unix://"+sock)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	logf, err := os.Create(filepath.Join(dir, "podman.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startService(cmd); err != nil {
		t.Fatalf("starting podman system service: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		waitForNoProcessUsing(st.root, 30*time.Second)
	})
	// Ready when the API answers, not when the socket first accepts: the
	// service listens before its runtime is set up.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := client.Get("http://d/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "unix://" + sock
			}
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "podman.log"))
	t.Fatalf("podman system service did not answer: %s", log)
	return ""
}

// waitForNoProcessUsing waits until no process names path on its command
// line: conmon starts `podman container cleanup` on its own, and it may
// still write into the store after the service is gone.
func waitForNoProcessUsing(path string, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		busy := false
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), path) {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
	}
}

type standinRecord struct {
	Argv      []string `json:"argv"`
	Stateroot string   `json:"stateroot"`
	Kargs     []string `json:"kargs"`
	Mounts    []string `json:"mounts"`
	CapEff    string   `json:"cap_eff"`
	PID1      string   `json:"pid1_comm"`
	Target    bool     `json:"target_is_sysroot"`
}

// TestDeployBootcThroughPodman drives the bootc executor through a real
// podman service, with the bootc stand-in in the seed's base image, and
// checks the container's privileges, mounts and arguments.
// bootcSeed makes a stand-in base image with the bootc stand-in as its
// /usr/bin/bootc in st, and a seed on it, tagged localhost/seed:bootc.
func bootcSeed(t *testing.T, f *fixtureSet, st store) string {
	t.Helper()
	extra := t.TempDir()
	if err := os.MkdirAll(filepath.Join(extra, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(extra, "usr/bin/bootc"), "./bootcstandin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the bootc stand-in: %v\n%s", err, out)
	}
	env := append(st.buildahEnv(), "MKBASE_EXTRA="+extra)
	sh(t, env, hackScript("mkbase.sh"), f.root, "localhost/base-with-bootc:latest")
	info := writeTemp(t, `{"seed_cluster_ocp_version":"4.20.0","has_fips":true}`)
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "localhost/base-with-bootc:latest", "--cluster-info", info, "--tag", "seed:bootc", "-q")...)
	return "localhost/seed:bootc"
}

func TestDeployBootcThroughPodman(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	bootcSeed(t, f, st)
	url := startPodman(t, st)
	sys := newSysroot(t)
	before := status(t, sys)

	// No --method: auto must choose bootc, for the seed has it and the
	// podman service answers, and the plan must run bootc install.
	dry := mustSeedbuild(t, st.flags("deploy", "localhost/seed:bootc", "--stateroot", "seed", "--sysroot", sys, "--podman-url", url, "--dry-run", "--json")...)
	var res struct {
		Plan struct {
			Method deployer.Method `json:"method"`
			Reason string          `json:"reason"`
			Steps  []deployer.Step `json:"steps"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(dry.stdout), &res); err != nil {
		t.Fatalf("deploy --dry-run --json: %v\n%s", err, dry.stdout)
	}
	hasInstall := false
	for _, s := range res.Plan.Steps {
		hasInstall = hasInstall || s.Action == deployer.ActionBootcInstall
	}
	if res.Plan.Method != deployer.Bootc || !hasInstall {
		t.Errorf("deploy --dry-run --json chose method %q (%s), bootc install step %v; want bootc with its install step", res.Plan.Method, res.Plan.Reason, hasInstall)
	}
	r := seedbuild(t, nil, st.flags("deploy", "localhost/seed:bootc", "--stateroot", "seed", "--sysroot", sys, "--podman-url", url, "--karg", "console=ttyS0")...)
	const chosen = "with the bootc method: the seed has /usr/bin/bootc and the podman service answers"
	if !strings.Contains(r.stderr, chosen) || !strings.Contains(r.stderr, "run bootc install to-existing-root in a privileged container") {
		t.Errorf("deploy output: %s\nwant it to say it deploys %q and to run the bootc install step", r, chosen)
	}
	data, err := os.ReadFile(filepath.Join(sys, "bootc-standin.json"))
	if err != nil {
		t.Fatalf("the bootc stand-in left no record (%v): %s", err, r)
	}
	var rec standinRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"install", "to-existing-root", "--acknowledge-destructive", "--stateroot", "seed"}
	if strings.Join(rec.Argv[1:6], " ") != strings.Join(wantArgs, " ") {
		t.Errorf("bootc argv = %q, want it to start %q", rec.Argv, wantArgs)
	}
	for _, k := range []string{"fips=1", "ibu=4.20.0", "console=ttyS0"} {
		if !containsString(rec.Kargs, k) {
			t.Errorf("bootc --karg list %q lacks %s", rec.Kargs, k)
		}
	}
	for _, k := range rec.Kargs {
		if k == "psi=0" {
			t.Errorf("bootc got --karg %s, which its kargs.d already holds", k)
		}
	}
	if !rec.Target {
		t.Errorf("/target in the container is not the sysroot")
	}
	for _, m := range []string{"/target", "/dev", "/var/lib/containers/storage"} {
		if !containsString(rec.Mounts, m) {
			t.Errorf("container mounts %q lack %s", rec.Mounts, m)
		}
	}
	if own := ownCapEff(t); rec.CapEff != own {
		t.Errorf("container CapEff = %s, want the test's own %s (privileged)", rec.CapEff, own)
	}
	if rec.PID1 == "bootc" || rec.PID1 == "" {
		t.Errorf("pid 1 in the container is %q, want the host's (pid=host)", rec.PID1)
	}
	// The stand-in installs as bootc does; seedbuild's steps then fill the
	// new stateroot and verify it.
	if r.code != 0 || !strings.Contains(r.stdout, "Deployed native seed into stateroot seed") {
		t.Fatalf("deploy with the bootc stand-in: %s\nwant it deployed", r)
	}
	if got := sh(t, nil, "ostree", "admin", "status", "--sysroot="+sys); !strings.HasPrefix(strings.TrimSpace(got), "seed ") {
		t.Errorf("ostree admin status:\n%s\nwant the seed's deployment first (the default)", got)
	}
	checkNodeEtc(t, f.root, filepath.Join(deploymentDir(t, sys, "seed"), "etc"))
	checkSeedOrigin(t, f.root, sys, "seed")
	if got, want := readFile(t, filepath.Join(sys, "ostree/deploy/seed/var/home/core/notes.txt")), readFile(t, filepath.Join(f.root, "var/home/core/notes.txt")); got != want {
		t.Errorf("the stateroot's var/home/core/notes.txt = %q, want the node's %q", got, want)
	}
	if entry := bootEntry(t, sys, "seed"); !strings.Contains(entry, "fips=1") || !strings.Contains(entry, "psi=0") {
		t.Errorf("the seed's boot entry lacks fips=1 (--karg) or psi=0 (kargs.d):\n%s", entry)
	}
	if after := status(t, sys); after == before {
		t.Errorf("the sysroot did not change")
	}
	// The seed's image must be out of the store after the bootc
	// container that ran from it is gone.
	checkPulledSeedTakenOut(t, st, "localhost/seed:bootc", nil, "--podman-url", url)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func ownCapEff(t *testing.T) string {
	for _, line := range strings.Split(readFile(t, "/proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
