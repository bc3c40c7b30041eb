package tests

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// registry is a docker-registry started by a test on 127.0.0.1.
type registry struct {
	addr    string
	cmd     *exec.Cmd
	cfgPath string
	logPath string
}

// registryOptions turn on auth and TLS.
type registryOptions struct {
	htpasswd  string // path of an htpasswd file, or ""
	cert, key string // TLS certificate and key, or ""
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs Debian's docker-registry with storage in a temp dir
// and stops it when the test ends.
func startRegistry(t testing.TB, o registryOptions) *registry {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if o.cert != "" {
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", o.cert, o.key)
	}
	if o.htpasswd != "" {
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: seedbuild-test\n    path: %s\n", o.htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &registry{addr: addr, cfgPath: cfgPath, logPath: filepath.Join(dir, "registry.log")}
	r.start(t)
	t.Cleanup(func() { r.stop() })
	scheme := "http"
	if o.cert != "" {
		scheme = "https"
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
	t.Fatalf("docker-registry on %s did not answer: %s", addr, log)
	return nil
}

// start runs the registry process (again, after stop).
func (r *registry) start(t testing.TB) {
	t.Helper()
	if err := r.restart(); err != nil {
		t.Fatal(err)
	}
}

// restart runs the registry process again after stop. It does not touch
// the test, so a goroutine may call it.
func (r *registry) restart() error {
	cmd := exec.Command("docker-registry", "serve", r.cfgPath)
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the registry log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startService(cmd); err != nil {
		return fmt.Errorf("starting docker-registry: %w", err)
	}
	r.cmd = cmd
	return nil
}

func (r *registry) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// ref names a repository in the registry.
func (r *registry) ref(repo string) string { return "docker://" + r.addr + "/" + repo }
