package builder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCaptureStatus(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                string
		files, bytes, total int64
		elapsed             time.Duration
		want                string
	}{
		{"total unknown", 10, 100 * mib, 0, 10 * time.Second, "10 files, 100.0 MiB, 10.0 MiB/s"},
		{"total known", 10, 100 * mib, 300 * mib, 10 * time.Second, "10 files, 100.0 MiB of 300.0 MiB, 10.0 MiB/s, ETA 20s"},
		{"long wait", 1, 1 * mib, 601 * mib, 10 * time.Second, "1 files, 1.0 MiB of 601.0 MiB, 0.1 MiB/s, ETA 1h40m0s"},
		{"past the estimate", 3, 50 * mib, 40 * mib, 5 * time.Second, "3 files, 50.0 MiB of 50.0 MiB, 10.0 MiB/s, ETA 0s"},
		{"nothing read yet", 0, 0, 40 * mib, time.Second, "0 files, 0.0 MiB of 40.0 MiB, 0.0 MiB/s"},
		{"no time elapsed", 0, 0, 0, 0, "0 files, 0.0 MiB, 0.0 MiB/s"},
	}
	for _, tt := range tests {
		if got := captureStatus(tt.files, tt.bytes, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("%s: captureStatus = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	root := t.TempDir()
	write := func(rel string, size int) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("var/lib/a", 1000)
	write("var/tmp/skipped", 5000)        // excluded by pattern
	write("var/lib/mounted/inside", 7000) // under a mount point
	write("etc/hosts", 30)
	write("usr/bin/never", 9000) // outside what is captured
	if err := os.Link(filepath.Join(root, "var/lib/a"), filepath.Join(root, "var/lib/a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(root, "var/lib/sym")); err != nil {
		t.Fatal(err)
	}
	c := &capture{root: root, excl: newExcluder([]string{"var/tmp/*"}),
		mounts: map[string]bool{filepath.Join(root, "var/lib/mounted"): true}}

	got, err := c.estimate(make(chan struct{}), "var", "etc")
	if err != nil || got != 1030 {
		t.Errorf("estimate = %d, %v; want 1030 (a once, hosts; not the excluded, mounted, linked twice or outside)", got, err)
	}
	stopped := make(chan struct{})
	close(stopped)
	if _, err := c.estimate(stopped, "var"); !errors.Is(err, errEstimateStopped) {
		t.Errorf("estimate after stop: %v, want errEstimateStopped", err)
	}
}
