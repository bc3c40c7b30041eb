package deployer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/progress"
)

// TestCopyTreeCounts: the copy counts each file's bytes once, and the
// size walk that gives progress its total agrees with it.
func TestCopyTreeCounts(t *testing.T) {
	src := t.TempDir()
	files := map[string]int{"lib/a": 4000, "lib/b/c": 100, "log/empty": 0}
	for rel, size := range files {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "lib/a"), filepath.Join(src, "lib/a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(src, "lib/sym")); err != nil {
		t.Fatal(err)
	}
	size, err := treeSize(src, make(chan struct{}))
	if err != nil || size != 4100 {
		t.Errorf("treeSize = %d, %v; want 4100 (the linked file once, no symlink)", size, err)
	}
	var done progress.Counter
	if err := copyTree(src, filepath.Join(t.TempDir(), "dst"), &done); err != nil {
		t.Fatal(err)
	}
	if files, bytes, _ := done.Snapshot(); files != 3 || bytes != size {
		t.Errorf("copyTree counted %d files, %d bytes; want 3 files, %d bytes", files, bytes, size)
	}
	stopped := make(chan struct{})
	close(stopped)
	if _, err := treeSize(src, stopped); !errors.Is(err, progress.ErrStopped) {
		t.Errorf("treeSize after stop: %v, want progress.ErrStopped", err)
	}
}
