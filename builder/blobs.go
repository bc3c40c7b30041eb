package builder

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is how new layers are compressed.
type Compression string

// The supported layer compressions.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	// storedGzip is gzip without compression: for layers of tarballs that
	// are compressed already. It keeps registries and copies from
	// compressing them a second time.
	storedGzip Compression = "stored-gzip"
	// uncompressed layers are kept only as their diff (a storeWriter's):
	// no blob is written.
	uncompressed Compression = "none"
)

func (c Compression) mediaType() string {
	switch c {
	case Zstd:
		return imgspecv1.MediaTypeImageLayerZstd
	case uncompressed:
		return imgspecv1.MediaTypeImageLayer
	}
	return imgspecv1.MediaTypeImageLayerGzip
}

// ParseCompression checks a --compression value.
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case Gzip, Zstd:
		return Compression(s), nil
	}
	return "", fmt.Errorf("unknown compression %q: want gzip or zstd", s)
}

// stagingImages is the folder that a seed's new layers are written to, by
// digest (blobs/sha256/...), before the seed is written to its
// destinations ("layout" alone means the seed layout in this package).
type stagingImages struct {
	dir string
}

func newStagingImages(dir string) (*stagingImages, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("making the staging folder %q: %w", dir, err)
	}
	return &stagingImages{dir: dir}, nil
}

func (l *stagingImages) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// blobWriter writes one blob, digesting it as it goes.
type blobWriter struct {
	layout *stagingImages
	f      *os.File
	buf    *bufio.Writer
	dig    digest.Digester
	size   int64
}

func (l *stagingImages) newBlob() (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(l.dir, "blobs"), ".partial-*")
	if err != nil {
		return nil, fmt.Errorf("making blob in %q: %w", l.dir, err)
	}
	return &blobWriter{layout: l, f: f, buf: bufio.NewWriterSize(f, 1<<20), dig: digest.Canonical.Digester()}, nil
}

func (b *blobWriter) Write(p []byte) (int, error) {
	n, err := b.buf.Write(p)
	b.dig.Hash().Write(p[:n])
	b.size += int64(n)
	return n, err
}

// commit finishes the blob and moves it to its digest's name.
func (b *blobWriter) commit() (imgspecv1.Descriptor, error) {
	if err := b.buf.Flush(); err != nil {
		b.abort()
		return imgspecv1.Descriptor{}, fmt.Errorf("writing blob: %w", err)
	}
	if err := b.f.Close(); err != nil {
		os.Remove(b.f.Name())
		return imgspecv1.Descriptor{}, fmt.Errorf("writing blob: %w", err)
	}
	d := b.dig.Digest()
	if err := os.Rename(b.f.Name(), b.layout.blobPath(d)); err != nil {
		os.Remove(b.f.Name())
		return imgspecv1.Descriptor{}, fmt.Errorf("storing blob %s: %w", d, err)
	}
	return imgspecv1.Descriptor{Digest: d, Size: b.size}, nil
}

func (b *blobWriter) abort() {
	b.f.Close()
	os.Remove(b.f.Name())
}

// layerResult describes a finished layer blob.
type layerResult struct {
	desc   imgspecv1.Descriptor
	diffID digest.Digest
	// uncompressed is the size of the layer's tar stream.
	uncompressed int64
}

// blobSink is where a new layer's blob goes as it is made: a blobWriter
// (the staging folder) or an archiveBlob (straight into an oci-archive).
type blobSink interface {
	io.Writer
	// commit finishes the blob and returns its digest and size.
	commit() (imgspecv1.Descriptor, error)
	// abort drops what was written.
	abort()
}

// writeLayer streams the tar that produce writes through the compressor
// into a new blob, digesting the tar (the diff ID) and the blob on the way.
func (l *stagingImages) writeLayer(c Compression, produce func(w io.Writer) error) (layerResult, error) {
	return writeLayerTo(func() (blobSink, error) { return l.newBlob() }, c, produce)
}

// writeLayerTo is writeLayer into the sink that open makes.
func writeLayerTo(open func() (blobSink, error), c Compression, produce func(w io.Writer) error) (layerResult, error) {
	if c == uncompressed {
		return diffLayer(produce)
	}
	blob, err := open()
	if err != nil {
		return layerResult{}, err
	}
	comp, err := newCompressor(c, blob)
	if err != nil {
		blob.abort()
		return layerResult{}, err
	}
	diff := digest.Canonical.Digester()
	counter := &countingWriter{}
	if err := produce(io.MultiWriter(comp, diff.Hash(), counter)); err != nil {
		comp.Close()
		blob.abort()
		return layerResult{}, err
	}
	if err := comp.Close(); err != nil {
		blob.abort()
		return layerResult{}, fmt.Errorf("compressing layer: %w", err)
	}
	desc, err := blob.commit()
	if err != nil {
		return layerResult{}, err
	}
	desc.MediaType = c.mediaType()
	return layerResult{desc: desc, diffID: diff.Digest(), uncompressed: counter.n}, nil
}

// diffLayer describes the layer produce writes, an uncompressed one kept
// only as its diff (a storeWriter's): no blob is written.
func diffLayer(produce func(w io.Writer) error) (layerResult, error) {
	diff := digest.Canonical.Digester()
	counter := &countingWriter{}
	if err := produce(io.MultiWriter(diff.Hash(), counter)); err != nil {
		return layerResult{}, err
	}
	desc := imgspecv1.Descriptor{MediaType: uncompressed.mediaType(), Digest: diff.Digest(), Size: counter.n}
	return layerResult{desc: desc, diffID: desc.Digest, uncompressed: counter.n}, nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func newCompressor(c Compression, w io.Writer) (io.WriteCloser, error) {
	procs := runtime.GOMAXPROCS(0)
	switch c {
	case Gzip, storedGzip:
		level := gzip.DefaultCompression
		if c == storedGzip {
			level = gzip.NoCompression
		}
		gz, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		if err := gz.SetConcurrency(1<<20, 2*procs); err != nil {
			return nil, err
		}
		return gz, nil
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(procs), zstd.WithEncoderLevel(zstd.SpeedDefault))
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}
