package builder

import (
	"archive/tar"
	"bytes"
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
	"github.com/seedbuild/seedbuild/imageref"
	"go.podman.io/image/v5/types"
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

// writeArchive writes the seed as an oci-archive at path, in one pass:
// every layer, each base layer copied straight from the base's source and
// checked against its digest, then the config, the manifest and the
// layout's files. containers/image's oci-archive destination would write a
// whole layout into a temporary folder first, and then the tar of it.
func writeArchive(ctx context.Context, s *seedImage, path, name string) error {
	aw, err := createArchive(path)
	if err != nil {
		return err
	}
	if err := aw.finish(ctx, s, name); err != nil {
		aw.abort()
		return err
	}
	return nil
}

// archiveWriter writes an oci-archive blob by blob: a base's layers can go
// in while the seed's own are still being made, and the layout's index
// comes last, once the manifest is known. The same seed makes the same
// bytes, whichever way it was written.
type archiveWriter struct {
	f       *os.File
	dw      *directWriter
	tw      *tar.Writer
	written map[digest.Digest]bool
	// headers are the streamed blobs' member headers (archiveBlob), each
	// written over its placeholder once the archive is whole.
	headers []placedHeader
}

// placedHeader is a tar member header and its offset in the archive.
type placedHeader struct {
	at  int64
	hdr []byte
}

// archiveEpoch dates every member: fixed times and owners.
var archiveEpoch = time.Unix(0, 0)

func createArchive(path string) (*archiveWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	dw := newDirectWriter(f)
	aw := &archiveWriter{f: f, dw: dw, tw: tar.NewWriter(dw), written: map[digest.Digest]bool{}}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: archiveEpoch, Format: tar.FormatPAX}); err != nil {
			aw.abort()
			return nil, fmt.Errorf("writing the archive: %w", err)
		}
	}
	return aw, nil
}

// layers writes the layers not written yet, from open.
func (a *archiveWriter) layers(ctx context.Context, descs []imgspecv1.Descriptor, open blobOpener) error {
	for _, l := range descs {
		if a.written[l.Digest] {
			continue
		}
		if err := a.copyBlob(ctx, l, open); err != nil {
			return err
		}
		a.written[l.Digest] = true
	}
	return nil
}

// finish writes the rest of the seed and closes the archive.
func (a *archiveWriter) finish(ctx context.Context, s *seedImage, name string) error {
	if err := a.layers(ctx, s.manifest.Layers, s.blob); err != nil {
		return err
	}
	file := func(n string, data []byte) error {
		if err := a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: archiveEpoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := a.tw.Write(data)
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
		func() error { return file(blobName(s.manifest.Config.Digest), s.configBlob) },
		func() error { return file(blobName(mfDesc.Digest), s.manifestBlob) },
		func() error { return file(imgspecv1.ImageLayoutFile, layoutFile) },
		func() error { return file(imgspecv1.ImageIndexFile, index) },
		a.tw.Close,
		a.dw.Close,
		a.placeHeaders,
		a.f.Close,
	} {
		if err := step(); err != nil {
			return fmt.Errorf("writing the archive: %w", err)
		}
	}
	return nil
}

// placeHeaders writes the streamed blobs' headers over their placeholders,
// once every chunk is on the disk (they went there with direct I/O).
func (a *archiveWriter) placeHeaders() error {
	for _, h := range a.headers {
		if _, err := a.f.WriteAt(h.hdr, h.at); err != nil {
			return err
		}
	}
	return nil
}

// archiveBlob is a blob written into the archive as it is made, with no
// copy of it anywhere else: a classic seed's layer, which is mostly its
// gigabyte of ostree.tgz. Its member is named by its digest, which is known
// only at the end, so a placeholder header of one block goes first and
// placeHeaders writes the real one over it. The member's bytes are those
// copyBlob would write, for a blob under 8 GiB; a bigger one's size does
// not fit a one-block ustar header, and is written in GNU's base-256 form.
type archiveBlob struct {
	a    *archiveWriter
	at   int64 // the member header's offset
	dig  digest.Digester
	size int64
}

// newBlob starts a streamed blob. Nothing else may be written to the
// archive until it is committed.
func (a *archiveWriter) newBlob() (*archiveBlob, error) {
	if err := a.tw.Flush(); err != nil {
		return nil, fmt.Errorf("writing the archive: %w", err)
	}
	b := &archiveBlob{a: a, at: a.dw.written(), dig: digest.Canonical.Digester()}
	if _, err := a.dw.Write(make([]byte, tarBlock)); err != nil {
		return nil, fmt.Errorf("writing the archive: %w", err)
	}
	return b, nil
}

// tarBlock is tar's block size: headers are one block, and members are
// padded to whole blocks.
const tarBlock = 512

func (b *archiveBlob) Write(p []byte) (int, error) {
	n, err := b.a.dw.Write(p)
	b.dig.Hash().Write(p[:n])
	b.size += int64(n)
	return n, err
}

func (b *archiveBlob) commit() (imgspecv1.Descriptor, error) {
	d := b.dig.Digest()
	hdr, err := blobHeader(d, b.size)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	if _, err := b.a.dw.Write(make([]byte, (tarBlock-b.size%tarBlock)%tarBlock)); err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("writing the archive: %w", err)
	}
	b.a.headers = append(b.a.headers, placedHeader{at: b.at, hdr: hdr})
	b.a.written[d] = true
	return imgspecv1.Descriptor{Digest: d, Size: b.size}, nil
}

// abort leaves the archive as it is: the caller discards it whole.
func (b *archiveBlob) abort() {}

// blobHeader is the one-block tar header of blob d of size bytes.
func blobHeader(d digest.Digest, size int64) ([]byte, error) {
	h := blobMember(d, size)
	if size >= 1<<33 {
		h.Format = tar.FormatGNU
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
		return nil, fmt.Errorf("writing the archive: %w", err)
	}
	if buf.Len() != tarBlock {
		return nil, fmt.Errorf("writing the archive: the header of blob %s takes %d bytes, not one block", d, buf.Len())
	}
	return buf.Bytes(), nil
}

// abort closes the archive unfinished; the caller removes it.
func (a *archiveWriter) abort() {
	a.dw.stop()
	a.f.Close()
}

// blobOpener opens a blob: seedImage.blob, or a base's.
type blobOpener func(ctx context.Context, d imgspecv1.Descriptor) (io.ReadCloser, int64, error)

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// blobMember is the tar header of blob d of size bytes in the archive.
func blobMember(d digest.Digest, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: blobName(d), Mode: 0o644, Size: size, ModTime: archiveEpoch, Format: tar.FormatPAX}
}

// copyBlob writes layer l into the archive, checking its size and digest.
func (a *archiveWriter) copyBlob(ctx context.Context, l imgspecv1.Descriptor, open blobOpener) error {
	rc, size, err := open(ctx, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size < 0 {
		size = l.Size
	}
	if err := a.tw.WriteHeader(blobMember(l.Digest, size)); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	v := l.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(a.tw, v), ctxReader{ctx, rc})
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

// earlyArchive is an oci-archive destination begun before the seed is
// whole: its base's layers written while the root is still being captured
// (startArchive), so that the disk writes the base while the CPUs compress
// the node's state; or a classic seed's layer written into it as it is
// made (streamedArchive).
type earlyArchive struct {
	dest    int // its index in Options.Destinations
	name    string
	partial *imageref.Partial
	aw      *archiveWriter
	err     error
}

// startArchive writes base's layers into the partial of the oci-archive
// destination dests[i]. A failure is kept, for finish to fall back on.
func startArchive(ctx context.Context, base *baseImage, dests []types.ImageReference, i int) *earlyArchive {
	path, name, _ := archiveTarget(dests[i])
	e := &earlyArchive{dest: i, name: name, partial: imageref.NewPartial(path)}
	if e.aw, e.err = createArchive(e.partial.Path); e.err == nil {
		e.err = e.aw.layers(ctx, base.manifest.Layers, base.blob)
	}
	return e
}

// finish writes the rest of the seed and publishes the archive. On any
// failure the partial is removed and the error returned: the caller may
// write the archive again from the start.
func (e *earlyArchive) finish(ctx context.Context, s *seedImage) error {
	if e.err == nil {
		if e.err = e.aw.finish(ctx, s, e.name); e.err == nil {
			e.aw = nil
			return e.partial.Publish()
		}
	}
	e.discard()
	return e.err
}

// discard removes the partial archive.
func (e *earlyArchive) discard() {
	if e == nil {
		return
	}
	if e.aw != nil {
		e.aw.abort()
		e.aw = nil
	}
	e.partial.Discard()
}

// firstArchive is the index of the first oci-archive destination, or -1.
func firstArchive(dests []types.ImageReference) int {
	for i, d := range dests {
		if _, _, ok := archiveTarget(d); ok {
			return i
		}
	}
	return -1
}
