package seedimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

func TestScanLabels(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "var/lib/a", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.security.selinux": "system_u:object_r:var_lib_t:s0"}},
		{Name: "./etc/b/", Typeflag: tar.TypeDir, PAXRecords: map[string]string{"SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0"}},
		{Name: "usr/c", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	got := scanLabels(&b)
	if len(got) != 2 || got["var/lib/a"] != "system_u:object_r:var_lib_t:s0" || got["etc/b"] != "system_u:object_r:etc_t:s0" {
		t.Errorf("scanLabels = %v", got)
	}
}

// TestSetLabelsLoss sets a label on ramfs, which keeps no xattrs: it fails
// naming the path, unless told to go on.
func TestSetLabelsLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting ramfs needs root (make test runs as root)")
	}
	ram := t.TempDir()
	if err := unix.Mount("ramfs", ram, "ramfs", 0, ""); err != nil {
		t.Fatalf("mounting ramfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ram, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(ram, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"f": "system_u:object_r:etc_t:s0", "gone": "x"}
	if err := setLabels(ram, labels, nil); err == nil || !strings.Contains(err.Error(), filepath.Join(ram, "f")) {
		t.Errorf("setLabels on ramfs = %v, want an error naming the file", err)
	}
	var lost []string
	if err := setLabels(ram, labels, func(p string, _ error) error { lost = append(lost, p); return nil }); err != nil || len(lost) != 1 {
		t.Errorf("setLabels going on = %v, lost %v; want nil and the one file", err, lost)
	}
}

// labelledLayer is a gzip layer of headers, each labelled as given ("" for
// none).
func labelledLayer(t *testing.T, entries [][2]string) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}
		if strings.HasSuffix(e[0], "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if e[1] != "" {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.selinux": e[1]}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()
	return gz.Bytes()
}

// TestLabelsUnder reads the final labels of what is under a folder, over
// layers that relabel, replace without a label, and delete.
func TestLabelsUnder(t *testing.T) {
	const etc, bin, home = "system_u:object_r:etc_t:s0", "system_u:object_r:bin_t:s0", "system_u:object_r:user_home_t:s0"
	l1 := labelledLayer(t, [][2]string{
		{"usr/lib/seed/etc/", etc}, {"usr/lib/seed/etc/a", etc}, {"usr/lib/seed/etc/b", etc},
		{"usr/lib/seed/etc/gone/", etc}, {"usr/lib/seed/etc/gone/x", etc}, {"usr/lib/seed/etc/opq/", etc}, {"usr/lib/seed/etc/opq/y", etc},
		{"usr/lib/seed/etcetera", etc}, {"usr/bin/sh", bin},
	})
	l2 := labelledLayer(t, [][2]string{
		{"usr/lib/seed/etc/a", bin}, {"usr/lib/seed/etc/b", ""}, {"usr/lib/seed/etc/.wh.gone", ""},
		{"usr/lib/seed/etc/opq/.wh..wh..opq", ""}, {"usr/lib/seed/etc/opq/z", home},
	})
	ref := archiveRef(t, archiveOfLayers(false, l1, l2))
	sys := &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}
	got, err := LabelsUnder(context.Background(), ref, sys, "/usr/lib/seed/etc")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{".": etc, "a": bin, "opq": etc, "opq/z": home}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LabelsUnder() = %v, want %v", got, want)
	}
}
