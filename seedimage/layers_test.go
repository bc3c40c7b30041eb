package seedimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.podman.io/image/v5/types"
)

// layeredArchive builds an OCI archive with two gzip layers: the second
// deletes var/x (a whiteout) and adds a kernel. corrupt flips a byte of the
// first layer's blob after its digest is taken.
func layeredArchive(t *testing.T, corrupt bool) []byte {
	t.Helper()
	layer := func(files map[string]string) []byte {
		raw := newTestTar()
		for _, name := range sortedKeys(files) {
			raw.add(name, []byte(files[name]))
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw.bytes())
		zw.Close()
		return gz.Bytes()
	}
	l1 := layer(map[string]string{"usr/bin/bootc": "#!/bin/sh\n", "usr/lib/bootc/kargs.d/10-a.toml": `kargs = ["a=1"]` + "\n", "var/x": "gone later"})
	l2 := layer(map[string]string{"var/.wh.x": "", "usr/lib/modules/6.1/vmlinuz": "0123456789"})
	return archiveOfLayers(corrupt, l1, l2)
}

// archiveOfLayers builds an OCI archive of gzip layers; corrupt flips a
// byte of the first layer's blob after its digest is taken.
func archiveOfLayers(corrupt bool, layers ...[]byte) []byte {
	a := newTestTar()
	add, digestOf := a.add, sha256Hex
	var descs []string
	for i, l := range layers {
		d := digestOf(l)
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}`, d, len(l)))
		if corrupt && i == 0 {
			l = append([]byte{}, l...)
			l[len(l)/2] ^= 0xff
		}
		add("blobs/sha256/"+d, l)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	add("blobs/sha256/"+digestOf(cfg), cfg)
	mf := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s]}`,
		digestOf(cfg), len(cfg), strings.Join(descs, ",")))
	add("blobs/sha256/"+digestOf(mf), mf)
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}`, digestOf(mf), len(mf))))
	return a.bytes()
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestScanAndUnpackInPlace reads an oci-archive's layers in place: Scan
// finds the wanted files with the whiteout applied, Unpack lays the same
// root out, and a layer that does not match its digest is refused.
func TestScanAndUnpackInPlace(t *testing.T) {
	ctx := context.Background()
	// A temporary folder that is not there: containers/image's oci-archive
	// transport, which extracts the archive there first, would fail.
	sys := &types.SystemContext{BigFilesTemporaryDir: filepath.Join(t.TempDir(), "absent")}
	ref := archiveRef(t, layeredArchive(t, false))
	want := func(name string) bool {
		return name == "usr/bin/bootc" || strings.HasPrefix(name, "usr/lib/") || strings.HasPrefix(name, "var/")
	}
	s, err := Scan(ctx, ref, sys, want)
	if err != nil {
		t.Fatalf("Scan() = %v", err)
	}
	if _, ok := s.Entries["var/x"]; ok {
		t.Errorf("Scan() kept var/x, which the second layer deletes")
	}
	if s.Entries["usr/lib/modules/6.1/vmlinuz"] != 10 || string(s.Files["usr/lib/bootc/kargs.d/10-a.toml"]) != "kargs = [\"a=1\"]\n" {
		t.Errorf("Scan() = %+v, want the kernel's size and the kargs file", s)
	}
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Unpack(ctx, ref, sys, root, UnpackOptions{}); err != nil {
		t.Fatalf("Unpack() = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/x")); !os.IsNotExist(err) {
		t.Errorf("Unpack() left var/x: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "usr/lib/modules/6.1/vmlinuz")); err != nil || string(data) != "0123456789" {
		t.Errorf("Unpack(): the kernel reads %q, %v", data, err)
	}
	bad := archiveRef(t, layeredArchive(t, true))
	if _, err := Scan(ctx, bad, sys, want); err == nil {
		t.Errorf("Scan() of an archive with a corrupt layer succeeded")
	}
}
