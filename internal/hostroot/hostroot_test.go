package hostroot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHostArgv(t *testing.T) {
	h := Host{root: "/host"}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"the root itself", []string{"ostree", "admin", "status", "--sysroot=/host"}, []string{"ostree", "admin", "status", "--sysroot=/"}},
		{"a path under it", []string{"ostree", "refs", "--repo=/host/ostree/repo"}, []string{"ostree", "refs", "--repo=/ostree/repo"}},
		{"a bare path", []string{"tar", "xzf", "/host/var/tmp/x/etc.tgz", "-C", "/host/ostree/deploy/s/var"}, []string{"tar", "xzf", "/var/tmp/x/etc.tgz", "-C", "/ostree/deploy/s/var"}},
		{"nested =", []string{"ostree", "commit", "--tree=dir=/host/ostree/seedbuild-deploy-s-1"}, []string{"ostree", "commit", "--tree=dir=/ostree/seedbuild-deploy-s-1"}},
		{"a store reference", []string{"x", "containers-storage:[overlay@/host/var/lib/containers/storage+/host/run/containers/storage]sha256"}, []string{"x", "containers-storage:[overlay@/var/lib/containers/storage+/run/containers/storage]sha256"}},
		{"only whole path parts", []string{"cat", "/hostile/file", "--x=/hosts"}, []string{"cat", "/hostile/file", "--x=/hosts"}},
		{"outside the root", []string{"ls", "/proc/cmdline"}, []string{"ls", "/proc/cmdline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.HostArgv(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("HostArgv(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := (Host{}).HostArgv(tc.in); !reflect.DeepEqual(got, tc.in) {
				t.Errorf("a local host rewrote %q to %q", tc.in, got)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		h                 Host
		root, etc         string
		liveRoot, notLive string
	}{
		{Host{}, "/", "/etc", "/", "/host"},
		{Host{root: "/host"}, "/host", "/host/etc", "/host/", "/"},
	} {
		if tc.h.Root() != tc.root || tc.h.Path("/etc") != tc.etc || !tc.h.IsRoot(tc.liveRoot) || tc.h.IsRoot(tc.notLive) {
			t.Errorf("%+v: Root %q, Path(/etc) %q, IsRoot(%q) %v, IsRoot(%q) %v", tc.h, tc.h.Root(), tc.h.Path("/etc"), tc.liveRoot, tc.h.IsRoot(tc.liveRoot), tc.notLive, tc.h.IsRoot(tc.notLive))
		}
	}
	h := Host{root: "/host"}
	// The host's env, by path, finds the host's tool in the host's PATH.
	if got := (nsenterRunner{h}).Argv([]string{"ostree", "--repo=/host/ostree/repo"}); !reflect.DeepEqual(got[:6], []string{"nsenter", "-t", "1", "-m", "--", "/usr/bin/env"}) || got[len(got)-1] != "--repo=/ostree/repo" {
		t.Errorf("nsenter argv = %q", got)
	}
}

// TestOpen: / is the local host; any other folder is not PID 1's root here.
func TestOpen(t *testing.T) {
	h, err := Open("/")
	if err != nil || !h.Local() {
		t.Errorf("Open(/) = %+v, %v; want the local host", h, err)
	}
	dir := t.TempDir()
	// Where PID 1's root cannot be read (a sandbox that hides it), Open
	// fails too, naming PID 1.
	if _, err := Open(dir); !errors.Is(err, ErrNotHostRoot) && (err == nil || !strings.Contains(err.Error(), "PID 1")) {
		t.Errorf("Open(%s) = %v, want ErrNotHostRoot", dir, err)
	}
	if _, err := Open(dir + "/nosuch"); err == nil || errors.Is(err, ErrNotHostRoot) {
		t.Errorf("Open of a missing folder = %v, want a read error", err)
	}
}

// TestKernelFacts: the kernel's command line and FIPS mode are read from
// the host's /proc, here a fake one.
func TestKernelFacts(t *testing.T) {
	proc := t.TempDir()
	h := Fake(t.TempDir(), proc, nil)
	if got := h.KernelCmdline(); got != "" {
		t.Errorf("KernelCmdline() with no cmdline = %q, want \"\"", got)
	}
	if _, known := h.FIPSEnabled(); known {
		t.Errorf("FIPSEnabled() with no fips_enabled: known, want unknown")
	}
	os.MkdirAll(filepath.Join(proc, "sys/crypto"), 0o755)
	os.WriteFile(filepath.Join(proc, "cmdline"), []byte("root=/dev/vda ostree=/ostree/boot.1/x/y/0\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "sys/crypto/fips_enabled"), []byte("1\n"), 0o644)
	if got, want := h.KernelCmdline(), "root=/dev/vda ostree=/ostree/boot.1/x/y/0"; got != want {
		t.Errorf("KernelCmdline() = %q, want %q", got, want)
	}
	if on, known := h.FIPSEnabled(); !on || !known {
		t.Errorf("FIPSEnabled() = %v, %v, want true, true", on, known)
	}
}
