package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestStreamedBlobMatchesCopied writes a blob into an archive as it is
// made (archiveBlob, its header placed at the end) and the same blob with
// copyBlob, and wants the same archive bytes, whose member reads back as
// the blob under its digest's name; for sizes on and off the block size
// and across the direct writer's chunks.
func TestStreamedBlobMatchesCopied(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"one block", tarBlock},
		{"a block and a byte", tarBlock + 1},
		{"over two chunks", 2*directChunk + 333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := make([]byte, tc.size)
			rand.New(rand.NewSource(int64(tc.size))).Read(data)
			finish := func(a *archiveWriter) {
				t.Helper()
				// A member after the blob, as the seed's config follows it.
				if err := a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "after", Mode: 0o644, Size: 3, ModTime: archiveEpoch, Format: tar.FormatPAX}); err != nil {
					t.Fatal(err)
				}
				a.tw.Write([]byte("end"))
				for _, step := range []func() error{a.tw.Close, a.dw.Close, a.placeHeaders, a.f.Close} {
					if err := step(); err != nil {
						t.Fatal(err)
					}
				}
			}

			streamedPath := filepath.Join(dir, "streamed.tar")
			a, err := createArchive(streamedPath)
			if err != nil {
				t.Fatal(err)
			}
			b, err := a.newBlob()
			if err != nil {
				t.Fatal(err)
			}
			// In uneven writes, as a compressor hands them over.
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 70001)
				if _, err := b.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			desc, err := b.commit()
			if err != nil {
				t.Fatal(err)
			}
			finish(a)

			copiedPath := filepath.Join(dir, "copied.tar")
			c, err := createArchive(copiedPath)
			if err != nil {
				t.Fatal(err)
			}
			open := func(context.Context, imgspecv1.Descriptor) (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
			}
			if err := c.copyBlob(context.Background(), desc, open); err != nil {
				t.Fatalf("copyBlob of the streamed blob's descriptor %v: %v", desc, err)
			}
			finish(c)

			streamed, _ := os.ReadFile(streamedPath)
			copied, _ := os.ReadFile(copiedPath)
			if !bytes.Equal(streamed, copied) {
				t.Errorf("the archive with the streamed blob (%d bytes) differs from the one with it copied (%d bytes)", len(streamed), len(copied))
			}
			tr := tar.NewReader(bytes.NewReader(streamed))
			found := false
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("reading the streamed archive: %v", err)
				}
				if h.Name == blobName(desc.Digest) {
					got, _ := io.ReadAll(tr)
					found = bytes.Equal(got, data) && desc.Size == int64(len(data))
				}
			}
			if !found {
				t.Errorf("the streamed archive has no member %s holding the %d-byte blob", blobName(desc.Digest), len(data))
			}
		})
	}
}

// TestBlobHeaderIsOneBlock: the header written over a streamed blob's
// placeholder is one block for any size, ustar's octal below 8 GiB and
// base-256 above, and reads back as the blob's name and size.
func TestBlobHeaderIsOneBlock(t *testing.T) {
	d := digest.FromString("blob")
	for _, size := range []int64{0, 1, 1<<33 - 1, 1 << 33, 1 << 40} {
		hdr, err := blobHeader(d, size)
		if err != nil {
			t.Errorf("blobHeader(%d): %v", size, err)
			continue
		}
		h, err := tar.NewReader(io.MultiReader(bytes.NewReader(hdr), zeroReader{})).Next()
		if err != nil || h.Name != blobName(d) || h.Size != size {
			t.Errorf("blobHeader(%d) reads back as %+v, %v; want %s of %d bytes", size, h, err, blobName(d), size)
		}
	}
}
