package tests

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one tar member, with a hash of its content.
type entry struct {
	hdr    *tar.Header
	sha256 string
	data   []byte // kept for small files only
}

// ociImage is an image read from an OCI archive.
type ociImage struct {
	dir      string
	manifest imgspecv1.Manifest
	config   imgspecv1.Image
}

// readArchive unpacks an oci-archive and reads its only image.
func readArchive(t testing.TB, archive string) *ociImage {
	t.Helper()
	dir := t.TempDir()
	sh(t, nil, "tar", "-xf", archive, "-C", dir)
	var idx imgspecv1.Index
	readJSONFile(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s holds %d images, want 1", archive, len(idx.Manifests))
	}
	img := &ociImage{dir: dir}
	readJSONFile(t, img.blob(idx.Manifests[0].Digest.String()), &img.manifest)
	readJSONFile(t, img.blob(img.manifest.Config.Digest.String()), &img.config)
	return img
}

func (o *ociImage) blob(d string) string {
	alg, hex, _ := strings.Cut(d, ":")
	return filepath.Join(o.dir, "blobs", alg, hex)
}

func readJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

// layer reads layer i's members by name (directories without the slash).
func (o *ociImage) layer(t testing.TB, i int) map[string]entry {
	t.Helper()
	d := o.manifest.Layers[i]
	f, err := os.Open(o.blob(d.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(d.MediaType, "+gzip"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	case strings.HasSuffix(d.MediaType, "+zstd"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	return readTar(t, r)
}

// readTar reads every member of a tar stream.
func readTar(t testing.TB, r io.Reader) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		h := sha256.New()
		var keep []byte
		if hdr.Typeflag == tar.TypeReg && (hdr.Size <= 1<<20 || strings.HasSuffix(hdr.Name, ".tgz")) {
			keep, err = io.ReadAll(tr)
			h.Write(keep)
		} else {
			_, err = io.Copy(h, tr)
		}
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		name := strings.TrimPrefix(strings.TrimSuffix(hdr.Name, "/"), "./")
		out[name] = entry{hdr: hdr, sha256: hex.EncodeToString(h.Sum(nil)), data: keep}
	}
}

// readTgz reads a gzip tar file's members.
func readTgz(t testing.TB, data []byte) map[string]entry {
	t.Helper()
	gz, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, gz)
}
