// Package scratch makes seedbuild's temporary folders, and finds and removes
// the ones that runs killed before they could clean up.
package scratch

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/mounts"
)

// stagingPrefix names seedbuild's temporary folders, so a later run can
// find and remove what a killed run left.
const stagingPrefix = "seedbuild-"

// Dir is a temporary folder owned by this process.
type Dir struct {
	// Path is the folder's path.
	Path string
}

// New makes a temporary folder under parent (default /var/tmp) whose name
// says it is seedbuild's and what for, with this process's pid inside.
func New(parent, purpose string) (*Dir, error) {
	if parent == "" {
		parent = "/var/tmp"
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("making temporary folder in %q: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, stagingPrefix+purpose+"-")
	if err != nil {
		return nil, fmt.Errorf("making temporary folder in %q: %w", parent, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(Stamp()), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("making temporary folder %q: %w", dir, err)
	}
	return &Dir{Path: dir}, nil
}

// Remove deletes the folder and everything in it, unmounting what is
// mounted under it first, so nothing is removed through a mount.
func (d *Dir) Remove() { RemoveAll(d.Path) }

// RemoveAll unmounts everything mounted under dir, deepest first, then
// removes dir. It never deletes through a mount point.
func RemoveAll(dir string) error {
	if err := UnmountAll(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// UnmountAll detaches every mount under dir, deepest first.
func UnmountAll(dir string) error {
	under, _ := mounts.Under(dir) // no mount table: nothing to detach
	for _, m := range under {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %q: %w", m, err)
		}
	}
	return nil
}

// RemoveStale removes the temporary folders of seedbuild runs that are no
// longer running, and says so on w.
func RemoveStale(parent string, w io.Writer) {
	if parent == "" {
		parent = "/var/tmp"
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		data, _ := os.ReadFile(filepath.Join(dir, "pid"))
		pid, live := StampAlive(string(data))
		if live || (pid <= 0 && !FromEarlierBoot(dir)) {
			// A live run's, or one whose stamp is not written yet.
			continue
		}
		if err := RemoveAll(dir); err == nil {
			fmt.Fprintf(w, "Removed %s, left by an interrupted seedbuild run (pid %d)\n", dir, pid)
		}
	}
}

// Stamp names this process across reboots: "PID BOOTID". A folder or file
// stamped so is a live run's only while that run lives in this boot.
func Stamp() string { return strconv.Itoa(os.Getpid()) + " " + BootID() }

// StampAlive reads a Stamp, or a bare pid of older runs, and says whether
// its process still runs: never when it was of an earlier boot.
func StampAlive(stamp string) (pid int, alive bool) {
	f := strings.Fields(stamp)
	if len(f) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if len(f) > 1 && f[1] != BootID() {
		return pid, false
	}
	return pid, Alive(pid)
}

// FromEarlierBoot says whether path was last changed before this boot: a
// file or folder a power cut left, whose stamp may never have reached the
// disk.
func FromEarlierBoot(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return err == nil && fi.ModTime().Unix() < btime
		}
	}
	return false
}

// BootID is a short name of this boot, so a pid of an earlier boot (after
// a power cut, say) is never taken for a live one.
func BootID() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if id := strings.ReplaceAll(strings.TrimSpace(string(data)), "-", ""); err == nil && len(id) >= 8 {
		return id[:8]
	}
	return "noboot"
}

// Alive reports whether a process with this pid runs.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
