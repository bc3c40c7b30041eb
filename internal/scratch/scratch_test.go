package scratch

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemoveStale: folders of dead runs go (a dead pid, another boot's
// stamp, or no stamp at all on a folder older than this boot); those of
// live runs, and fresh ones whose stamp is not written yet, stay.
func TestRemoveStale(t *testing.T) {
	parent := t.TempDir()
	old := time.Unix(1000, 0) // long before this boot
	tests := []struct {
		name, stamp string
		old, gone   bool
	}{
		{"this run", Stamp(), false, false},
		{"a dead pid", fmt.Sprintf("%d %s", 1<<30, BootID()), false, true},
		{"another boot", fmt.Sprintf("%d 0ldb00t0", os.Getpid()), false, true},
		{"a bare dead pid", fmt.Sprint(1 << 30), false, true},
		{"no stamp, from before this boot", "", true, true},
		{"no stamp, fresh", "", false, false},
	}
	for i, tc := range tests {
		dir := filepath.Join(parent, fmt.Sprintf("seedbuild-test-%d", i))
		os.Mkdir(dir, 0o755)
		if tc.stamp != "" {
			os.WriteFile(filepath.Join(dir, "pid"), []byte(tc.stamp), 0o644)
		}
		if tc.old {
			os.Chtimes(dir, old, old)
		}
	}
	RemoveStale(parent, io.Discard)
	for i, tc := range tests {
		_, err := os.Stat(filepath.Join(parent, fmt.Sprintf("seedbuild-test-%d", i)))
		if gone := os.IsNotExist(err); gone != tc.gone {
			t.Errorf("%s: removed %v, want %v", tc.name, gone, tc.gone)
		}
	}
}
