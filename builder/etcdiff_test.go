package builder

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// put writes a file with an exact mode, making the folders above it.
func put(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// setxattr sets a user xattr, skipping the test where the filesystem of
// t.TempDir() has none (tmpfs before Linux 6.6).
func setxattr(t *testing.T, p, name, value string) {
	t.Helper()
	err := unix.Lsetxattr(p, name, []byte(value), 0)
	if errors.Is(err, unix.ENOTSUP) {
		t.Skipf("no user xattrs on the filesystem of %s", p)
	}
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiffEtc(t *testing.T) {
	// both writes the same default and live file.
	both := func(t *testing.T, etc, dflt, rel, data string) {
		put(t, filepath.Join(etc, rel), data, 0o644)
		put(t, filepath.Join(dflt, rel), data, 0o644)
	}
	tests := []struct {
		name        string
		needsRoot   bool
		setup       func(t *testing.T, etc, dflt string)
		wantChanged []string
		wantDeleted []string
	}{
		{name: "identical entries are no change", setup: func(t *testing.T, etc, dflt string) {
			both(t, etc, dflt, "a.conf", "same")
			both(t, etc, dflt, "d/x", "same")
			must(t, os.Symlink("a.conf", filepath.Join(etc, "l")))
			must(t, os.Symlink("a.conf", filepath.Join(dflt, "l")))
			setxattr(t, filepath.Join(etc, "a.conf"), "user.ignored", "1")
		}},
		{name: "content differs, at the same size or not", setup: func(t *testing.T, etc, dflt string) {
			put(t, filepath.Join(etc, "a.conf"), "live", 0o644)
			put(t, filepath.Join(dflt, "a.conf"), "dflt", 0o644)
			put(t, filepath.Join(etc, "b.conf"), "same+", 0o644)
			put(t, filepath.Join(dflt, "b.conf"), "same", 0o644)
		}, wantChanged: []string{"a.conf", "b.conf"}},
		{name: "mode differs", setup: func(t *testing.T, etc, dflt string) {
			put(t, filepath.Join(etc, "a.conf"), "same", 0o600)
			put(t, filepath.Join(dflt, "a.conf"), "same", 0o644)
		}, wantChanged: []string{"a.conf"}},
		{name: "owner differs", needsRoot: true, setup: func(t *testing.T, etc, dflt string) {
			both(t, etc, dflt, "a.conf", "same")
			both(t, etc, dflt, "b.conf", "same")
			must(t, os.Lchown(filepath.Join(etc, "a.conf"), 1000, -1))
			must(t, os.Lchown(filepath.Join(etc, "b.conf"), -1, 1000))
		}, wantChanged: []string{"a.conf", "b.conf"}},
		{name: "kept xattr differs", setup: func(t *testing.T, etc, dflt string) {
			both(t, etc, dflt, "a.conf", "same")
			both(t, etc, dflt, "b.conf", "same")
			both(t, etc, dflt, "c.conf", "same")
			setxattr(t, filepath.Join(etc, "a.conf"), "user.kept", "1")
			setxattr(t, filepath.Join(etc, "b.conf"), "user.kept", "1")
			setxattr(t, filepath.Join(dflt, "b.conf"), "user.kept", "2")
			setxattr(t, filepath.Join(dflt, "c.conf"), "user.kept", "1")
		}, wantChanged: []string{"a.conf", "b.conf", "c.conf"}},
		{name: "symlink target differs", setup: func(t *testing.T, etc, dflt string) {
			must(t, os.Symlink("a", filepath.Join(etc, "l")))
			must(t, os.Symlink("b", filepath.Join(dflt, "l")))
		}, wantChanged: []string{"l"}},
		{name: "file replaced by a folder", setup: func(t *testing.T, etc, dflt string) {
			put(t, filepath.Join(etc, "x/y"), "new", 0o644)
			put(t, filepath.Join(dflt, "x"), "old", 0o644)
		}, wantChanged: []string{"x", "x/y"}},
		{name: "added entries, parents first", setup: func(t *testing.T, etc, dflt string) {
			put(t, filepath.Join(etc, "new.d/b"), "b", 0o644)
			put(t, filepath.Join(etc, "new.d/a"), "a", 0o644)
			put(t, filepath.Join(etc, "z"), "z", 0o644)
			both(t, etc, dflt, "d/kept", "same")
			put(t, filepath.Join(etc, "d/c"), "c", 0o644)
		}, wantChanged: []string{"d/c", "new.d", "new.d/a", "new.d/b", "z"}},
		{name: "deleted defaults", setup: func(t *testing.T, etc, dflt string) {
			put(t, filepath.Join(dflt, "old.d/y"), "y", 0o644)
			put(t, filepath.Join(dflt, "old.d/x"), "x", 0o644)
			put(t, filepath.Join(dflt, "gone"), "g", 0o644)
			both(t, etc, dflt, "kept", "same")
		}, wantDeleted: []string{"gone", "old.d", "old.d/x", "old.d/y"}},
		{name: "deleted defaults under never-captured paths", setup: func(t *testing.T, etc, dflt string) {
			// The target keeps its own: a seed must not delete them there.
			must(t, os.MkdirAll(filepath.Join(etc, "NetworkManager/system-connections"), 0o755))
			put(t, filepath.Join(dflt, "NetworkManager/system-connections/default.nmconnection"), "x", 0o600)
			put(t, filepath.Join(dflt, "hostname"), "localhost", 0o644)
			put(t, filepath.Join(dflt, "gone"), "g", 0o644)
		}, wantDeleted: []string{"gone"}},
		{name: "never-captured paths", setup: func(t *testing.T, etc, dflt string) {
			for _, d := range []string{"NetworkManager", "openvswitch", "cni", "machine-config-daemon/orig/var/lib"} {
				must(t, os.MkdirAll(filepath.Join(etc, d), 0o755))
				must(t, os.MkdirAll(filepath.Join(dflt, d), 0o755))
			}
			put(t, filepath.Join(etc, "hostname"), "node-1", 0o644)
			put(t, filepath.Join(dflt, "hostname"), "localhost", 0o644)
			put(t, filepath.Join(etc, "NetworkManager/system-connections/eth0.nmconnection"), "x", 0o600)
			put(t, filepath.Join(etc, "openvswitch/conf.db"), "x", 0o644)
			put(t, filepath.Join(etc, "openvswitch/.conf.db.~lock~"), "", 0o644)
			put(t, filepath.Join(etc, "cni/multus/net.d/00-multus.conf"), "x", 0o644)
			put(t, filepath.Join(etc, "machine-config-daemon/orig/var/lib/kubelet/config.json"), "x", 0o644)
			// Their neighbours are captured.
			put(t, filepath.Join(etc, "NetworkManager/conf.d/dns.conf"), "x", 0o644)
			put(t, filepath.Join(etc, "openvswitch/system-id.conf"), "x", 0o644)
		}, wantChanged: []string{"NetworkManager/conf.d", "NetworkManager/conf.d/dns.conf", "openvswitch/system-id.conf"}},
	}
	keep := func(name string) bool { return name != "user.ignored" }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsRoot && os.Getuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			root := t.TempDir()
			etc, dflt := filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")
			must(t, os.MkdirAll(etc, 0o755))
			must(t, os.MkdirAll(dflt, 0o755))
			tt.setup(t, etc, dflt)

			got, err := diffEtc(root, newExcluder(DefaultEtcExcludes).match, keep)
			if err != nil {
				t.Fatalf("diffEtc: %v", err)
			}
			if !cmp.Equal(got.changed, tt.wantChanged, cmpopts.EquateEmpty()) {
				t.Errorf("diffEtc().changed = %q, want %q", got.changed, tt.wantChanged)
			}
			if !cmp.Equal(got.deleted, tt.wantDeleted, cmpopts.EquateEmpty()) {
				t.Errorf("diffEtc().deleted = %q, want %q", got.deleted, tt.wantDeleted)
			}
		})
	}
}
