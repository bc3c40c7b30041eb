package builder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/progress"
)

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
	write("var/lib/bad-\xff-name", 3000) // non-UTF-8: the capture leaves it out
	write("usr/bin/never", 9000)         // outside what is captured
	if err := os.Link(filepath.Join(root, "var/lib/a"), filepath.Join(root, "var/lib/a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(root, "var/lib/sym")); err != nil {
		t.Fatal(err)
	}
	c := &capture{root: root, excl: newExcluder([]string{"var/tmp/*"}),
		mounts: map[string]bool{filepath.Join(root, "var/lib/mounted"): true}}

	got, err := c.estimate(make(chan struct{}), "var")
	if err != nil || got != 1000 {
		t.Errorf("estimate = %d, %v; want 1000 (a once; not the excluded, mounted, non-UTF-8, linked twice or outside /var)", got, err)
	}
	stopped := make(chan struct{})
	close(stopped)
	if _, err := c.estimate(stopped, "var"); !errors.Is(err, progress.ErrStopped) {
		t.Errorf("estimate after stop: %v, want progress.ErrStopped", err)
	}
}
