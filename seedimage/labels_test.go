package seedimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"reflect"
	"strings"
	"testing"

	"go.podman.io/image/v5/types"
)

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
