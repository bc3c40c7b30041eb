package seedimage

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
