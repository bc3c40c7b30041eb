package builder

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
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
)

func (c Compression) mediaType() string {
	if c == Zstd {
		return imgspecv1.MediaTypeImageLayerZstd
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

// stagingImages is the OCI image layout folder that new images are staged
// in before they are written to their destinations ("layout" alone means
// the seed layout in this package).
type stagingImages struct {
	dir string
}

func newStagingImages(dir string) (*stagingImages, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("making image layout %q: %w", dir, err)
	}
	l := &stagingImages{dir: dir}
	if _, err := os.Stat(filepath.Join(dir, imgspecv1.ImageLayoutFile)); err == nil {
		return l, nil
	}
	data, _ := json.Marshal(imgspecv1.ImageLayout{Version: imgspecv1.ImageLayoutVersion})
	if err := os.WriteFile(filepath.Join(dir, imgspecv1.ImageLayoutFile), data, 0o644); err != nil {
		return nil, fmt.Errorf("writing image layout %q: %w", dir, err)
	}
	return l, nil
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

// putJSON stores v as a blob.
func (l *stagingImages) putJSON(mediaType string, v any) (imgspecv1.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	b, err := l.newBlob()
	if err != nil {
		return imgspecv1.Descriptor{}, err
	}
	if _, err := b.Write(data); err != nil {
		b.abort()
		return imgspecv1.Descriptor{}, err
	}
	desc, err := b.commit()
	desc.MediaType = mediaType
	return desc, err
}

func (l *stagingImages) readJSON(d digest.Digest, v any) error {
	data, err := os.ReadFile(l.blobPath(d))
	if err != nil {
		return fmt.Errorf("reading blob %s: %w", d, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parsing blob %s: %w", d, err)
	}
	return nil
}

// index reads the layout's index.json.
func (l *stagingImages) index() (imgspecv1.Index, error) {
	var idx imgspecv1.Index
	data, err := os.ReadFile(filepath.Join(l.dir, imgspecv1.ImageIndexFile))
	if err != nil {
		return idx, fmt.Errorf("reading index of %q: %w", l.dir, err)
	}
	return idx, json.Unmarshal(data, &idx)
}

// manifestFor returns the manifest tagged name in the index.
func (l *stagingImages) manifestFor(name string) (imgspecv1.Descriptor, imgspecv1.Manifest, error) {
	var m imgspecv1.Manifest
	idx, err := l.index()
	if err != nil {
		return imgspecv1.Descriptor{}, m, err
	}
	for _, d := range idx.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == name {
			err := l.readJSON(d.Digest, &m)
			return d, m, err
		}
	}
	return imgspecv1.Descriptor{}, m, fmt.Errorf("no image %q in %q", name, l.dir)
}

// tag points name at the manifest desc, replacing any earlier one.
func (l *stagingImages) tag(name string, desc imgspecv1.Descriptor) error {
	idx, err := l.index()
	if err != nil {
		idx = imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex}
	}
	var kept []imgspecv1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] != name {
			kept = append(kept, d)
		}
	}
	desc.Annotations = map[string]string{imgspecv1.AnnotationRefName: name}
	idx.Manifests = append(kept, desc)
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.dir, imgspecv1.ImageIndexFile), data, 0o644)
}

// layerResult describes a finished layer blob.
type layerResult struct {
	desc   imgspecv1.Descriptor
	diffID digest.Digest
	// uncompressed is the size of the layer's tar stream.
	uncompressed int64
}

// writeLayer streams the tar that produce writes through the compressor
// into a new blob, digesting the tar (the diff ID) and the blob on the way.
func (l *stagingImages) writeLayer(c Compression, produce func(w io.Writer) error) (layerResult, error) {
	blob, err := l.newBlob()
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
