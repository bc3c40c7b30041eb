package builder

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// stagingPrefix names seedbuild's temporary folders, so a later run can
// find and remove what a killed run left.
const stagingPrefix = "seedbuild-"

// staging is a temporary folder owned by this process.
type staging struct{ dir string }

func newStaging(parent, purpose string) (*staging, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("making temporary folder in %q: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, stagingPrefix+purpose+"-")
	if err != nil {
		return nil, fmt.Errorf("making temporary folder in %q: %w", parent, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("making temporary folder %q: %w", dir, err)
	}
	return &staging{dir: dir}, nil
}

func (s *staging) remove() { os.RemoveAll(s.dir) }

// RemoveStale removes the temporary folders of seedbuild runs that are no
// longer running, and says so on w.
func RemoveStale(parent string, w io.Writer) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		data, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			fmt.Fprintf(w, "Removed %s, left by an interrupted seedbuild run (pid %d)\n", dir, pid)
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

func sortStrings(s []string) { sort.Strings(s) }
