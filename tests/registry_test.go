package tests

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// registry is a docker-registry started by a test on 127.0.0.1.
type registry struct {
	addr string
	cmd  *exec.Cmd
}

// registryOptions turn on auth and TLS.
type registryOptions struct {
	htpasswd  string // path of an htpasswd file, or ""
	cert, key string // TLS certificate and key, or ""
}

// freePort is a port nothing listened on a moment ago, for a test that
// needs an address where no registry answers. Nothing may bind it later:
// it is free only until someone else takes it.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs Debian's docker-registry with storage in a temp dir
// and stops it when the test ends. It binds port 0, so the kernel gives it
// a free port as it binds, and the port is read from the sockets the
// process holds: a port picked beforehand could be taken by another
// process before the registry binds it.
func startRegistry(t testing.TB, o registryOptions) *registry {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n", filepath.Join(dir, "data"))
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
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("docker-registry", "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startService(cmd); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	r := &registry{cmd: cmd}
	t.Cleanup(r.stop)
	fail := func(why string) {
		t.Helper()
		log, _ := os.ReadFile(logPath)
		t.Fatalf("docker-registry %s: %s", why, log)
	}
	scheme := "http"
	if o.cert != "" {
		scheme = "https"
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail("did not answer within 20s")
		}
		if exited(cmd.Process.Pid) {
			fail("exited")
		}
		if r.addr == "" {
			port := listeningPort(cmd.Process.Pid)
			if port == 0 {
				continue
			}
			r.addr = fmt.Sprintf("127.0.0.1:%d", port)
		}
		if resp, err := client.Get(scheme + "://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return r
		}
	}
}

// listeningPort is the TCP port on which process pid listens, or 0: the
// listening sockets of /proc/net/tcp whose inodes are among its open files.
func listeningPort(pid int) int {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	// 127.0.0.1 is IPv4: its sockets are in /proc/net/tcp.
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		// sl local_address rem_address st ... uid timeout inode
		f := strings.Fields(line)
		const listen = "0A"
		if len(f) < 10 || f[3] != listen || !inodes[f[9]] {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		if port, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			return int(port)
		}
	}
	return 0
}

// exited says whether process pid has ended (it may be a zombie not yet
// waited for).
func exited(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	_, rest, _ := strings.Cut(string(data), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
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
