package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// archiveTarget is an oci-archive destination's file and image name, from
// its reference: oci-archive:PATH[:NAME].
func archiveTarget(ref types.ImageReference) (path, name string, ok bool) {
	if ref.Transport().Name() != "oci-archive" {
		return "", "", false
	}
	path, name, _ = strings.Cut(ref.StringWithinTransport(), ":")
	return path, name, true
}

// writeArchive writes the seed as an oci-archive at path, in one pass: the
// layout's files, the config and manifest, and every layer, each base layer
// copied straight from the base's source and checked against its digest.
// containers/image's oci-archive destination would write a whole layout
// into a temporary folder first, and then the tar of it.
func writeArchive(ctx context.Context, s *seedImage, path, name string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(&writeBehind{f: f}, 1<<20)
	err = writeArchiveTo(ctx, bw, s, name)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeArchiveTo(ctx context.Context, w io.Writer, s *seedImage, name string) error {
	tw := tar.NewWriter(w)
	// Fixed times and owners: the same seed makes the same archive.
	epoch := time.Unix(0, 0)
	dir := func(n string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(n string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	layoutFile, _ := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
	mfDesc := s.manifestDescriptor()
	if name != "" {
		mfDesc.Annotations = map[string]string{imgspecv1.AnnotationRefName: name}
	}
	index, err := json.Marshal(imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{mfDesc}})
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return file(imgspecv1.ImageLayoutFile, layoutFile) },
		func() error { return file(imgspecv1.ImageIndexFile, index) },
		func() error { return dir("blobs/") },
		func() error { return dir("blobs/sha256/") },
		func() error { return file(blobName(s.manifest.Config.Digest), s.configBlob) },
		func() error { return file(blobName(mfDesc.Digest), s.manifestBlob) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("writing the archive: %w", err)
		}
	}
	written := map[digest.Digest]bool{}
	for _, l := range s.manifest.Layers {
		if written[l.Digest] {
			continue
		}
		written[l.Digest] = true
		if err := copyBlob(ctx, tw, s, l, epoch); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	return nil
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// copyBlob writes layer l into the archive, checking its size and digest.
func copyBlob(ctx context.Context, tw *tar.Writer, s *seedImage, l imgspecv1.Descriptor, mtime time.Time) error {
	rc, size, err := s.blob(ctx, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size < 0 {
		size = l.Size
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobName(l.Digest), Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	v := l.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(tw, v), ctxReader{ctx, rc})
	if err != nil {
		return fmt.Errorf("copying layer %s into the archive: %w", l.Digest, err)
	}
	if n != size || !v.Verified() {
		return fmt.Errorf("layer %s read back as %d bytes that do not match its digest", l.Digest, n)
	}
	return nil
}

// ctxReader stops a copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeBehindChunk is how much is written before its write-back to disk is
// started.
const writeBehindChunk = 32 << 20

// writeBehind starts the write-back of what was written, a chunk at a time,
// while the rest is still being written: the archive is synced before it is
// renamed into place, and without this all of it would wait in the page
// cache for that sync. Where sync_file_range is not there, nothing changes.
type writeBehind struct {
	f          *os.File
	off, since int64
}

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.since >= writeBehindChunk {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.since, w.off-w.since, unix.SYNC_FILE_RANGE_WRITE)
		w.since = w.off
	}
	return n, err
}
