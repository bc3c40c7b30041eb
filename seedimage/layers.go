package seedimage

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/seedbuild/seedbuild/internal/gunzip"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/types"
)

// EachLayer opens ref and calls fn with each layer's uncompressed tar
// stream, bottom layer first. Blobs come straight from the transport: no
// blob cache and nothing in local storage is written. Each layer's digest
// is checked once it is read whole. An oci-archive is read in place
// (NewSource).
func EachLayer(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, fn func(i int, layer io.Reader) error) error {
	return eachLayer(ctx, ref, sys, nil, Decompress, fn)
}

// ReadLayerInBackground calls fn with the uncompressed tar stream of the
// image's layer i (0 is the bottom one), as EachLayer would; the other
// layers are not read. It is decompressed at a low priority
// (gunzip.NewBackgroundReader): for a layer read beside others, which it
// must not slow.
func ReadLayerInBackground(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, i int, fn func(layer io.Reader) error) error {
	seen := false
	err := eachLayer(ctx, ref, sys, func(j int) bool { return j != i }, decompressBehind, func(_ int, layer io.Reader) error {
		seen = true
		return fn(layer)
	})
	if err == nil && !seen {
		err = fmt.Errorf("the image has no layer %d", i+1)
	}
	return err
}

// EntryPath is a tar entry's name (or hard link target) as a path
// relative to the root: cleaned, with no leading "./" or "/", and "" for
// the root itself.
func EntryPath(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// eachLayer is EachLayer leaving out the layers skip says (nil: none),
// which are not even fetched, and decompressing with decompress.
func eachLayer(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, skip func(i int) bool,
	decompress func(io.Reader) (io.ReadCloser, error), fn func(i int, layer io.Reader) error) error {
	src, err := NewSource(ctx, ref, sys)
	if err != nil {
		return err
	}
	defer src.Close()
	unparsed, instance, _, _, err := PlatformInstance(ctx, src, sys)
	if err != nil {
		return err
	}
	img, err := image.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return fmt.Errorf("reading image config: %w", err)
	}
	infos := img.LayerInfos()
	// containers-storage keeps layers uncompressed: it names them by what
	// it holds, not by the manifest's blobs.
	if forCopy, err := src.LayerInfosForCopy(ctx, instance); err != nil {
		return fmt.Errorf("listing layers: %w", err)
	} else if forCopy != nil {
		infos = forCopy
	}
	for i, info := range infos {
		if skip != nil && skip(i) {
			continue
		}
		if err := readLayer(ctx, src, info, decompress, func(r io.Reader) error { return fn(i, r) }); err != nil {
			return fmt.Errorf("reading layer %d (%s): %w", i+1, info.Digest, err)
		}
	}
	return nil
}

// readLayer decompresses a layer blob for fn, then reads the rest of it
// and checks its digest.
func readLayer(ctx context.Context, src types.ImageSource, info types.BlobInfo, decompress func(io.Reader) (io.ReadCloser, error), fn func(io.Reader) error) error {
	rc, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return err
	}
	defer rc.Close()
	d := info.Digest
	verifier := d.Verifier()
	// The digest is computed on another core, beside the decompression.
	blob := newHashAside(rc, verifier)
	defer blob.finish()
	// Decompressed here, on another core, not by a child process the
	// stream is piped through.
	plain, err := decompress(blob)
	if err != nil {
		return err
	}
	defer plain.Close()
	if err := fn(plain); err != nil {
		return err
	}
	// The rest of the tar stream (its end blocks) and of the blob, so the
	// digest covers it all.
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return err
	}
	blob.finish()
	if d != "" && !verifier.Verified() {
		return fmt.Errorf("the layer does not match its digest %s", d)
	}
	return nil
}

// hashAside is a reader that hands what it reads to a hash in another
// goroutine, so hashing and what reads it (decompression) use two cores.
type hashAside struct {
	r    io.Reader
	todo chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
}

const hashAsideChunk = 1 << 20

func newHashAside(r io.Reader, h io.Writer) *hashAside {
	a := &hashAside{r: r, todo: make(chan []byte, 8), free: make(chan []byte, 8), done: make(chan struct{})}
	for range cap(a.free) {
		a.free <- make([]byte, 0, hashAsideChunk)
	}
	go func() {
		for b := range a.todo {
			h.Write(b)
			a.free <- b[:0]
		}
		close(a.done)
	}()
	return a
}

func (a *hashAside) Read(p []byte) (int, error) {
	if len(p) > hashAsideChunk {
		p = p[:hashAsideChunk]
	}
	n, err := a.r.Read(p)
	if n > 0 {
		a.todo <- append(<-a.free, p[:n]...)
	}
	return n, err
}

// finish waits until everything read so far is hashed; it must be called
// once reading is over, and may be called again.
func (a *hashAside) finish() {
	a.once.Do(func() { close(a.todo); <-a.done })
}

// LabelsUnder reads the image's layers, writing nothing, and returns the
// SELinux label each path under dir (a path in the image, without the
// leading slash) ends with, by path relative to dir ("." for dir itself).
// For copies out of an image that containers-storage holds: it unpacks
// files without their labels.
func LabelsUnder(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, dir string) (map[string]string, error) {
	dir = EntryPath(dir)
	found := map[string]string{}
	err := eachEntry(ctx, ref, sys, func(p string, self bool) { removeUnder(found, p, self) },
		func(name string, h *tar.Header, _ io.Reader) error {
			if name != dir && !strings.HasPrefix(name, dir+"/") {
				return nil
			}
			if h.Typeflag != tar.TypeDir {
				removeUnder(found, name, true)
			}
			if label, ok := h.PAXRecords["SCHILY.xattr."+selinuxXattr]; ok {
				found[name] = label
			} else {
				delete(found, name)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for name, label := range found {
		rel := "."
		if name != dir {
			rel = strings.TrimPrefix(name, dir+"/")
		}
		labels[rel] = label
	}
	return labels, nil
}

// removeUnder forgets what is under p in m, and p itself when self is set.
func removeUnder[V any](m map[string]V, p string, self bool) {
	for name := range m {
		if (self && name == p) || strings.HasPrefix(name, p+"/") {
			delete(m, name)
		}
	}
}

// eachEntry reads the image's layers in order: remove is told each path a
// whiteout deletes (self unset for an opaque folder, whose content only
// goes), add each other entry, by path without the leading slash, with
// its content.
func eachEntry(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, remove func(p string, self bool), add func(name string, h *tar.Header, r io.Reader) error) error {
	return EachLayer(ctx, ref, sys, func(_ int, layer io.Reader) error {
		tr := tar.NewReader(layer)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			name := EntryPath(h.Name)
			dir, base := path.Split(name)
			if base == ".wh..wh..opq" {
				remove(strings.TrimSuffix(dir, "/"), false)
				continue
			}
			if gone, ok := strings.CutPrefix(base, ".wh."); ok {
				remove(dir+gone, true)
				continue
			}
			if err := add(name, h, tr); err != nil {
				return err
			}
		}
	})
}

// Scanned is what Scan found in an image's layers.
type Scanned struct {
	// Files holds the final content of the wanted regular files no bigger
	// than ScanMaxFile, by path (no leading slash).
	Files map[string][]byte
	// Entries holds every wanted path the image ends with, with its size
	// (0 for what is not a regular file).
	Entries map[string]int64
	// Size is the image's unpacked size: every layer's file content.
	Size int64
	// Labelled says the layers carry SELinux labels.
	Labelled bool
}

// ScanMaxFile is the largest file whose content Scan keeps.
const ScanMaxFile = 1 << 20

// Scan reads the image's layers, without writing anything, and returns
// the wanted paths the image ends with, whiteouts applied, and the small
// ones' content.
func Scan(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, want func(name string) bool) (*Scanned, error) {
	s := &Scanned{Files: map[string][]byte{}, Entries: map[string]int64{}}
	err := eachEntry(ctx, ref, sys, s.remove, func(name string, h *tar.Header, r io.Reader) error {
		if h.Typeflag == tar.TypeReg {
			s.Size += h.Size
		}
		if _, ok := h.PAXRecords["SCHILY.xattr."+selinuxXattr]; ok {
			s.Labelled = true
		}
		if !want(name) {
			return nil
		}
		s.remove(name, true)
		s.Entries[name] = 0
		if h.Typeflag == tar.TypeReg {
			s.Entries[name] = h.Size
			if h.Size <= ScanMaxFile {
				data, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				s.Files[name] = data
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// remove forgets what is under p, and p itself when self is set.
func (s *Scanned) remove(p string, self bool) {
	removeUnder(s.Entries, p, self)
	removeUnder(s.Files, p, self)
}

// Decompress reads r decompressed: gzip with zlib (package gunzip, on its
// own goroutine), anything else as containers/image detects it; a stream
// that is not compressed as it is.
func Decompress(r io.Reader) (io.ReadCloser, error) { return decompress(r, gunzip.NewReader) }

// decompressBehind is Decompress with gzip decompressed at a low priority.
func decompressBehind(r io.Reader) (io.ReadCloser, error) {
	return decompress(r, gunzip.NewBackgroundReader)
}

func decompress(r io.Reader, newGunzip func(io.Reader) (*gunzip.Reader, error)) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return newGunzip(br)
	}
	plain, _, err := compression.AutoDecompress(br)
	return plain, err
}
