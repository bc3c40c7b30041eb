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

// bootcSeed makes a stand-in base image with the bootc stand-in as its
// /usr/bin/bootc in st, and a seed on it, tagged localhost/seed:bootc.
func bootcSeed(t *testing.T, f *fixtureSet, st store) string {
	t.Helper()
	extra := t.TempDir()
	if err := os.MkdirAll(filepath.Join(extra, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	buildStandin(t, "bootcstandin", filepath.Join(extra, "usr/bin/bootc"))
	env := append(st.buildahEnv(), "MKBASE_EXTRA="+extra)
	sh(t, env, hackScript("mkbase.sh"), f.root, "localhost/base-with-bootc:latest")
	info := writeTemp(t, `{"seed_cluster_ocp_version":"4.20.0","has_fips":true}`)
	mustSeedbuild(t, st.flags("create", "--rootfs", f.root, "--base", "localhost/base-with-bootc:latest", "--cluster-info", info, "--tag", "seed:bootc", "-q")...)
	return "localhost/seed:bootc"
}

// TestDeployBootcNotIntoAFolder: bootc install to-existing-root installs
// into the root the host runs from (install.rs, install_to_existing_root
// bind-mounts it at /target) and, on a root without sysroot/ostree,
// empties its /boot (clean_boot_directories): seedbuild never runs it for
// a sysroot in a folder. With a seed that has bootc and a podman service
// that answers, auto picks another method, and --method bootc is refused
// before anything changes: nothing pulled, no container made, the
// sysroot as it was. (The bootc route runs on the booted node.)
func TestDeployBootcNotIntoAFolder(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	seed := bootcSeed(t, f, st)
	url := startPodman(t, st)
	sys := newSysroot(t)
	before := status(t, sys)
	images := st.buildah(t, "images", "-a", "-q", "--no-trunc")

	dry := mustSeedbuild(t, st.flags("deploy", seed, "--stateroot", "seed", "--sysroot", sys, "--podman-url", url, "--dry-run", "--json")...)
	var res struct {
		Plan struct {
			Method deployer.Method `json:"method"`
			Reason string          `json:"reason"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(dry.stdout), &res); err != nil {
		t.Fatalf("deploy --dry-run --json: %v\n%s", err, dry.stdout)
	}
	if res.Plan.Method == deployer.Bootc {
		t.Errorf("deploy --dry-run into a folder chose bootc (%s); want another method", res.Plan.Reason)
	}
	r := seedbuild(t, nil, st.flags("deploy", seed, "--stateroot", "seed", "--sysroot", sys, "--podman-url", url, "--method", "bootc")...)
	if r.code != 1 || !strings.Contains(r.stderr, "--method bootc installs into the running system's root") || strings.Contains(r.stderr, "[1/") {
		t.Errorf("deploy --method bootc into a folder: %s\nwant exit 1 before any step, saying bootc installs into the running system's root", r)
	}
	if after := status(t, sys); after != before {
		t.Errorf("a refused deploy changed the sysroot:\n%s\nwant:\n%s", after, before)
	}
	if got := st.buildah(t, "images", "-a", "-q", "--no-trunc"); got != images {
		t.Errorf("a refused deploy changed the store's images:\n%s\nwant:\n%s", got, images)
	}
	if ctrs := sh(t, nil, "podman", "--root", st.root, "--runroot", st.runroot, "ps", "-a", "-q"); strings.TrimSpace(ctrs) != "" {
		t.Errorf("a refused deploy left containers: %s", ctrs)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
