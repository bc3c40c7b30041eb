package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/seedbuild/seedbuild/seedimage"
	"github.com/vbatts/tar-split/tar/asm"
	tarsplit "github.com/vbatts/tar-split/tar/storage"
	"go.podman.io/storage"
	drivers "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// errNoStagedLayer says the store's driver, or its options, do not take a
// layer written in this process (see stagedLayer); nothing was read.
var errNoStagedLayer = errors.New("the store's driver does not take a layer written by seedbuild itself")

// putStagedLayer stores a layer on top of parent, as id (a random one when
// empty), writing its files in this process. r is the layer's tar stream
// or, with compressed set, its compressed blob, which is decompressed here
// and whose digest the layer records too.
//
// The overlay driver hands out an empty staging folder (containers-storage's
// staged-layer API, the one its partial pulls use); seedbuild's unpacker
// writes the files into it with several workers while the stream's
// tar-split and digests are taken; the store then moves the folder into
// place as the new layer. A layer put with PutLayer is instead unpacked by
// a child process, one file at a time, behind a pipe. errNoStagedLayer,
// with nothing read, when the driver or its options (ID mappings, a forced
// mask) do not allow it.
func putStagedLayer(ctx context.Context, store storage.Store, id, parent string, r io.Reader, compressed bool) (*storage.Layer, error) {
	driver, err := store.GraphDriver()
	if err != nil {
		return nil, err
	}
	if _, ok := driver.(drivers.DriverWithDiffer); !ok || os.Geteuid() != 0 {
		return nil, errNoStagedLayer
	}
	opts := &drivers.ApplyDiffWithDifferOpts{}
	out, err := store.PrepareStagedLayer(opts, &stagedLayer{ctx: ctx, r: r, compressed: compressed})
	if err != nil {
		if out != nil && out.Target != "" {
			_ = store.CleanupStagedLayer(out)
		}
		return nil, err
	}
	layer, err := store.ApplyStagedLayer(storage.ApplyStagedLayerOptions{ID: id, ParentLayer: parent, DiffOutput: out, DiffOptions: opts})
	if err != nil {
		_ = store.CleanupStagedLayer(out)
		return nil, err
	}
	return layer, nil
}

// stagedLayer is a containers-storage Differ that writes one layer's tar
// stream into the staging folder it is given, as an overlay diff.
type stagedLayer struct {
	ctx        context.Context
	r          io.Reader
	compressed bool
}

func (d *stagedLayer) ApplyDiff(dest string, opts *archive.TarOptions, differOpts *drivers.DifferOptions) (drivers.DriverWithDifferOutput, error) {
	if len(opts.UIDMaps) > 0 || len(opts.GIDMaps) > 0 || opts.ForceMask != nil || opts.InUserNS ||
		opts.WhiteoutFormat != archive.OverlayWhiteoutFormat || (differOpts != nil && differOpts.Format != drivers.DifferOutputFormatDir) {
		return drivers.DriverWithDifferOutput{}, errNoStagedLayer
	}
	// The tar-split (the stream's headers and padding, which with the
	// files gives the stream back byte for byte for a push) waits in an
	// unlinked file beside the staging folder until the store keeps it.
	split, err := os.CreateTemp(filepath.Dir(dest), "tar-split-")
	if err != nil {
		return drivers.DriverWithDifferOutput{}, fmt.Errorf("making the layer's tar-split: %w", err)
	}
	os.Remove(split.Name())
	out, err := d.write(dest, split)
	if err != nil {
		split.Close()
		return drivers.DriverWithDifferOutput{}, err
	}
	out.TarSplit = split
	return out, nil
}

// write unpacks the stream into dest, with its tar-split into split.
func (d *stagedLayer) write(dest string, split *os.File) (drivers.DriverWithDifferOutput, error) {
	buffered := bufio.NewWriterSize(split, 1<<16)
	blob := digest.Canonical.Digester()
	in := io.TeeReader(d.r, blob.Hash())
	var plain io.Reader = d.r
	if d.compressed {
		rc, err := seedimage.Decompress(in)
		if err != nil {
			return drivers.DriverWithDifferOutput{}, fmt.Errorf("decompressing the layer: %w", err)
		}
		defer rc.Close()
		plain = rc
	}
	diff := digest.Canonical.Digester()
	size := &countingWriter{}
	stream, err := asm.NewInputTarStream(io.TeeReader(plain, io.MultiWriter(diff.Hash(), size)), tarsplit.NewJSONPacker(buffered), tarsplit.NewDiscardFilePutter())
	if err != nil {
		return drivers.DriverWithDifferOutput{}, err
	}
	uids, gids := map[uint32]bool{}, map[uint32]bool{}
	var rootMode *os.FileMode
	_, err = seedimage.UnpackDiff(d.ctx, stream, dest, archive.GetOverlayXattrName("opaque"), seedimage.UnpackOptions{
		OnEntry: func(h *tar.Header) {
			if seedimage.EntryPath(h.Name) == "" {
				m := os.FileMode(h.Mode&0o777) | os.ModeDir
				rootMode = &m
			}
			// As containers-storage counts them: whiteouts own nothing.
			if !hasWhiteoutPrefix(h.Name) {
				uids[uint32(h.Uid)] = true
				gids[uint32(h.Gid)] = true
			}
		},
		// As containers-storage's own unpacking: an SELinux label the file
		// system does not support is dropped, anything else fails (the
		// unpacker asks this of labels only; other xattrs always fail).
		LabelLost: func(_ string, err error) error {
			if errors.Is(err, unix.ENOTSUP) {
				return nil
			}
			return err
		},
	})
	if err != nil {
		return drivers.DriverWithDifferOutput{}, fmt.Errorf("writing the layer into local storage: %w", err)
	}
	if err := buffered.Flush(); err != nil {
		return drivers.DriverWithDifferOutput{}, fmt.Errorf("writing the layer's tar-split: %w", err)
	}
	// As PutLayer records an uncompressed stream: its digest both ways.
	compressedDigest := diff.Digest()
	if d.compressed {
		// The blob's digest covers it to its end, past the compressed
		// stream's.
		if _, err := io.Copy(io.Discard, in); err != nil {
			return drivers.DriverWithDifferOutput{}, fmt.Errorf("reading the layer's end: %w", err)
		}
		compressedDigest = blob.Digest()
	}
	return drivers.DriverWithDifferOutput{
		Size:               size.n,
		UIDs:               sortedIDs(uids),
		GIDs:               sortedIDs(gids),
		UncompressedDigest: diff.Digest(),
		CompressedDigest:   compressedDigest,
		RootDirMode:        rootMode,
	}, nil
}

func (d *stagedLayer) Close() error { return nil }

func hasWhiteoutPrefix(name string) bool {
	return strings.HasPrefix(path.Base(name), archive.WhiteoutPrefix)
}

func sortedIDs(set map[uint32]bool) []uint32 {
	ids := make([]uint32, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
