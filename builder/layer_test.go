package builder

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWriteLayer(t *testing.T) {
	var tarball bytes.Buffer
	ew := newEntryWriter(&tarball, time.Time{}, keepAllXattr, false, &tally{})
	must(t, ew.file("etc/motd", 0o644, time.Unix(1_700_000_000, 0), []byte(strings.Repeat("seed ", 20000))))
	must(t, ew.Close())
	layer := tarball.Bytes()

	gunzip := func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
	unzstd := func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }
	tests := []struct {
		c             Compression
		wantMediaType string
		wantSmaller   bool // the blob is smaller than the tar
		decompress    func(io.Reader) (io.Reader, error)
	}{
		{Gzip, imgspecv1.MediaTypeImageLayerGzip, true, gunzip},
		{Zstd, imgspecv1.MediaTypeImageLayerZstd, true, unzstd},
		{storedGzip, imgspecv1.MediaTypeImageLayerGzip, false, gunzip},
	}
	for _, tt := range tests {
		t.Run(string(tt.c), func(t *testing.T) {
			images, err := newStagingImages(t.TempDir())
			must(t, err)
			got, err := images.writeLayer(tt.c, func(w io.Writer) error {
				_, err := io.Copy(w, bytes.NewReader(layer))
				return err
			})
			if err != nil {
				t.Fatalf("writeLayer(%s): %v", tt.c, err)
			}
			blob, err := os.ReadFile(images.blobPath(got.desc.Digest))
			if err != nil {
				t.Fatalf("writeLayer(%s) left no blob at its digest: %v", tt.c, err)
			}
			if d := digest.FromBytes(blob); got.desc.Digest != d {
				t.Errorf("writeLayer(%s).desc.Digest = %s, want %s (the stored bytes)", tt.c, got.desc.Digest, d)
			}
			if got.desc.Size != int64(len(blob)) {
				t.Errorf("writeLayer(%s).desc.Size = %d, want %d", tt.c, got.desc.Size, len(blob))
			}
			if got.desc.MediaType != tt.wantMediaType {
				t.Errorf("writeLayer(%s).desc.MediaType = %q, want %q", tt.c, got.desc.MediaType, tt.wantMediaType)
			}
			if want := digest.FromBytes(layer); got.diffID != want {
				t.Errorf("writeLayer(%s).diffID = %s, want %s", tt.c, got.diffID, want)
			}
			if got.uncompressed != int64(len(layer)) {
				t.Errorf("writeLayer(%s).uncompressed = %d, want %d", tt.c, got.uncompressed, len(layer))
			}
			if smaller := len(blob) < len(layer); smaller != tt.wantSmaller {
				t.Errorf("writeLayer(%s) blob of %d bytes for a %d-byte tar: smaller = %v, want %v", tt.c, len(blob), len(layer), smaller, tt.wantSmaller)
			}
			r, err := tt.decompress(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("opening the %s blob: %v", tt.c, err)
			}
			if plain, err := io.ReadAll(r); err != nil || !bytes.Equal(plain, layer) {
				t.Errorf("writeLayer(%s) blob decompresses to %d bytes (%v), want the %d-byte tar", tt.c, len(plain), err, len(layer))
			}
		})
	}
}

func TestWriteLayerFailure(t *testing.T) {
	dir := t.TempDir()
	images, err := newStagingImages(dir)
	must(t, err)
	boom := errors.New("walk failed")
	_, err = images.writeLayer(Gzip, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("writeLayer(failing producer) = %v, want %v", err, boom)
	}
	var left []string
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("writeLayer(failing producer) left blobs %q, want none", left)
	}
}
