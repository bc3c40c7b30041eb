package deployer

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/specgen"
)

// TestPodmanPingerTimesOut: a socket that accepts and never answers, one
// that answers, and none at all; the silent one must not hang.
func TestPodmanPingerTimesOut(t *testing.T) {
	saved := podmanTimeout
	podmanTimeout = 300 * time.Millisecond
	t.Cleanup(func() { podmanTimeout = saved })
	dir := t.TempDir()

	silent := filepath.Join(dir, "silent.sock")
	ls, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	go func() {
		for {
			c, err := ls.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()

	answering := filepath.Join(dir, "answering.sock")
	la, err := net.Listen("unix", answering)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("OK")) })}
	go srv.Serve(la)
	defer srv.Close()

	// What deploy and info call: it must give up on the silent socket.
	start := time.Now()
	if PodmanPinger("unix://" + silent)(context.Background()) {
		t.Errorf("PodmanPinger(silent socket) = true, want false")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("PodmanPinger(silent socket) took %s, want at most the timeout", d)
	}

	for _, tc := range []struct {
		name, url string
		want      bool
	}{
		{"silent", "unix://" + silent, false},
		{"answering", "unix://" + answering, true},
		{"absent", "unix://" + filepath.Join(dir, "none.sock"), false},
		{"bad scheme", "ssh://x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := pingPodman(context.Background(), tc.url)
			if (err == nil) != tc.want {
				t.Errorf("pingPodman(%s) = %v, want ok %v", tc.url, err, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("pingPodman(%s) took %s, want at most the timeout", tc.url, d)
			}
		})
	}
}

// TestBootcContainerSpec: the container bootc runs in is privileged, in the
// host's pid namespace, without a network, SELinux unconfined, with the
// target at /target, /dev and the host's store.
func TestBootcContainerSpec(t *testing.T) {
	s := bootcContainerSpec("n", "img", "/", "/var/lib/containers/storage", []string{"bootc", "install", "to-existing-root"})
	if s.Privileged == nil || !*s.Privileged || s.PidNS.NSMode != specgen.Host || s.NetNS.NSMode != specgen.NoNetwork {
		t.Errorf("privileged %v, pid %q, net %q; want privileged, host, none", s.Privileged, s.PidNS.NSMode, s.NetNS.NSMode)
	}
	want := map[string]string{"/target": "/", "/dev": "/dev", "/var/lib/containers/storage": "/var/lib/containers/storage"}
	for _, m := range s.Mounts {
		if src, ok := want[m.Destination]; ok && src == m.Source {
			delete(want, m.Destination)
		}
	}
	if len(want) > 0 || !slices.Contains(s.SelinuxOpts, "type:unconfined_t") {
		t.Errorf("mounts %v lack %v, or SELinux options %v lack type:unconfined_t", s.Mounts, want, s.SelinuxOpts)
	}
}
