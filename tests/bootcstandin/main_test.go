package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args string
		err  string
		want options
	}{
		{"seedbuild's call", "install to-existing-root --acknowledge-destructive --stateroot seed --karg a=1 --karg b", "",
			options{root: "/target", replace: "alongside", stateroot: "seed", kargs: []string{"a=1", "b"}}},
		{"defaults", "install to-existing-root", "", options{root: "/target", replace: "alongside", stateroot: "default"}},
		{"root path and = values", "install to-existing-root --replace=wipe --karg-delete=quiet /mnt", "",
			options{root: "/mnt", replace: "wipe", stateroot: "default", kargDeletes: []string{"quiet"}}},
		{"unknown flag", "install to-existing-root --root-mount-spec x", "unexpected argument '--root-mount-spec'", options{}},
		{"missing value", "install to-existing-root --stateroot", "a value is required for '--stateroot", options{}},
		{"value on a switch", "install to-existing-root --generic-image=yes", "unexpected value 'yes'", options{}},
		{"two positionals", "install to-existing-root /a /b", "unexpected argument '/b'", options{}},
		{"bad replace", "install to-existing-root --replace all", "invalid value 'all'", options{}},
		{"another command", "switch quay.io/x", "only knows `install to-existing-root`", options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(strings.Fields(tt.args))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseArgs(%s) = %v, want an error naming %q", tt.args, err, tt.err)
				}
				return
			}
			if err != nil || got.root != tt.want.root || got.replace != tt.want.replace || got.stateroot != tt.want.stateroot ||
				!slices.Equal(got.kargs, tt.want.kargs) || !slices.Equal(got.kargDeletes, tt.want.kargDeletes) {
				t.Errorf("parseArgs(%s) = %+v, %v; want %+v", tt.args, got, err, tt.want)
			}
		})
	}
}

func TestContainerEnv(t *testing.T) {
	podman := "engine=\"podman-5.4.2\"\nname=\"seedbuild-bootc-1\"\nid=\"abc\"\nimage=\"localhost/seed:4.20\"\nimageid=\"0123\"\nrootless=0\n"
	tests := []struct {
		name, data, err string
	}{
		{"podman as root", podman, ""},
		{"rootless", strings.Replace(podman, "rootless=0", "rootless=1", 1), "rootless podman"},
		{"not podman", strings.Replace(podman, "podman-5.4.2", "docker", 1), "only supports being executed via podman"},
		{"no image", "engine=\"podman-5\"\n", "names no image"},
	}
	for _, tt := range tests {
		err := parseContainerEnv(tt.data).check()
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: check() = %v, want %q", tt.name, err, tt.err)
		}
	}
	if e := parseContainerEnv(podman); e.image != "localhost/seed:4.20" || e.imageID != "0123" {
		t.Errorf("parseContainerEnv = %+v", e)
	}
}

func TestPhysicalRoot(t *testing.T) {
	tests := []struct {
		name     string
		mounts   []string
		ostree   bool
		phys     string
		isOstree bool
		err      string
	}{
		{"an ostree node", []string{"/target", "/target/sysroot"}, true, "/target/sysroot", true, ""},
		{"a folder bound at /target, no sysroot/ostree", []string{"/target"}, false, "/target", false, ""},
		{"target not mounted", nil, true, "", false, "Not a mountpoint: /target"},
		{"sysroot not mounted", []string{"/target"}, true, "", true, "Not a mountpoint: /target/sysroot"},
	}
	for _, tt := range tests {
		phys, isOstree, err := physicalRoot("/target", func(p string) bool { return slices.Contains(tt.mounts, p) },
			func(p string) bool { return tt.ostree && p == "/target/sysroot/ostree" })
		if phys != tt.phys || isOstree != tt.isOstree || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: physicalRoot = %q, %v, %v; want %q, %v, %q", tt.name, phys, isOstree, err, tt.phys, tt.isOstree, tt.err)
		}
	}
}

// TestCleanBoot: --replace alongside empties /boot but for the loader
// entries on an ostree root, and all of it otherwise, as a folder sysroot
// bound at /target would have it.
func TestCleanBoot(t *testing.T) {
	for _, tt := range []struct {
		isOstree bool
		left     []string
	}{{true, []string{"loader", "loader.1"}}, {false, nil}} {
		boot := t.TempDir()
		for _, d := range []string{"loader.1/entries", "ostree/node-abc"} {
			os.MkdirAll(filepath.Join(boot, d), 0o755)
		}
		os.Symlink("loader.1", filepath.Join(boot, "loader"))
		os.WriteFile(filepath.Join(boot, "ostree/node-abc/vmlinuz"), []byte("k"), 0o644)
		if _, err := cleanBoot(boot, tt.isOstree); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(boot)
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		if !slices.Equal(left, tt.left) {
			t.Errorf("ostree %v: /boot keeps %q, want %q", tt.isOstree, left, tt.left)
		}
	}
}

func TestEntryKargs(t *testing.T) {
	tests := []struct {
		name, cmdline, rootUUID, boot string
		kargsD, deletes, cli          []string
		want                          string
	}{
		{"an RHCOS node", "BOOT_IMAGE=(hd0,gpt3)/vmlinuz root=UUID=r rw rootflags=prjquota rootflags=x boot=UUID=b rd.luks.options=discard ostree=/ostree/boot.0/rhcos/c/0 console=ttyS0",
			"", "boot=UUID=b", []string{"psi=0"}, nil, []string{"ibu=4.20.0"},
			"root=UUID=r rootflags=prjquota rd.luks.options=discard rw boot=UUID=b psi=0 ibu=4.20.0"},
		{"no root= on the command line", "console=ttyS0 rd.x=1", "u", "", nil, nil, nil, "root=UUID=u rw"},
		{"--karg-delete before --karg", "root=/dev/vda", "", "", []string{"quiet", "psi=0"}, []string{"quiet"}, []string{"quiet"},
			"root=/dev/vda rw psi=0 quiet"},
	}
	for _, tt := range tests {
		if got := strings.Join(entryKargs(tt.cmdline, tt.rootUUID, tt.boot, tt.kargsD, tt.deletes, tt.cli), " "); got != tt.want {
			t.Errorf("%s: entryKargs = %q, want %q", tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct{ fstab, uuid, want string }{
		{"UUID=b /boot ext4 defaults 1 2\n", "", "boot=UUID=b"},
		{"LABEL=boot /boot ext4 defaults 1 2\n", "c", "boot=UUID=c"},
		{"", "", ""},
	} {
		if got := bootArg(tt.fstab, tt.uuid); got != tt.want {
			t.Errorf("bootArg(%q, %q) = %q, want %q", tt.fstab, tt.uuid, got, tt.want)
		}
	}
}

func TestBigDataName(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"manifest", "manifest"},
		{"sha256:ab", "=c2hhMjU2OmFi"},
		{"manifest-sha256:ab", "=bWFuaWZlc3Qtc2hhMjU2OmFi"},
	} {
		if got := bigDataName(tt.key); got != tt.want {
			t.Errorf("bigDataName(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
