package builder

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/types"
)

// destination is where a seed goes. The build hands it each new layer as
// it is made, then the assembled seed. newDestination chooses it.
type destination interface {
	// layer writes the new layer that produce streams as a tar, its blob
	// compressed as c where the destination keeps a blob, and describes
	// it.
	layer(ctx context.Context, c Compression, produce func(io.Writer) error) (layerResult, error)
	// finish writes the assembled seed, whose new layers are layers, and
	// returns the names it was written to, as the report shows them.
	finish(ctx context.Context, seed *seedImage, layers []namedLayer) ([]string, error)
	// discard removes what an unfinished write left. The build calls it
	// at its end, whatever happened, after the base was waited for.
	discard()
}

var (
	_ destination = (*storeDestination)(nil)
	_ destination = (*streamedArchive)(nil)
	_ destination = (*stagedDestinations)(nil)
)

// newDestination chooses where the seed goes, from the options, and
// starts opening its base (none for a classic seed), which is read while
// the root is captured:
//
//   - a native seed bound only for local storage, on a base that is there
//     or is read from a local file or folder, goes straight into the store
//     (storeDestination): the base is needed before the capture starts;
//   - a classic seed bound for one oci-archive only has its layer written
//     straight into the archive (streamedArchive);
//   - any other seed has its layers staged, then is written to each
//     destination in turn (stagedDestinations), the first oci-archive
//     begun with the base's layers as soon as the base is open.
//
// On failure nothing is left open.
func (b *build) newDestination(ctx context.Context) (destination, *pendingBase, error) {
	o := &b.opts
	staged := &stagedDestinations{o: o, layout: b.layout}
	if o.Layout == labels.Classic {
		staged.base = noBase()
		streamed, err := newStreamedArchive(o)
		if err != nil {
			return nil, nil, err
		}
		if streamed != nil {
			return streamed, staged.base, nil
		}
		return staged, staged.base, nil
	}
	staged.base = b.startBase(ctx, staged.begin)
	if o.Layout == labels.Native && allInStore(o.Store, o.Destinations) {
		store, err := b.newStoreDestination(ctx, staged.base)
		if err != nil {
			staged.base.close()
			return nil, nil, err
		}
		if store != nil {
			return store, staged.base, nil
		}
	}
	return staged, staged.base, nil
}

// pendingBase is the base image being opened while the root is captured.
type pendingBase struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once image and err are set
	image  *baseImage
	err    error
}

// startBase starts opening the base image. Once it is open, opened is
// called with it, on the same goroutine and under the same context, which
// the pendingBase's stop cancels.
func (b *build) startBase(ctx context.Context, opened func(context.Context, *baseImage)) *pendingBase {
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingBase{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.image, p.err = openBase(ctx, b.opts.Base, b.opts.SystemContext, b.opts.Policy, filepath.Join(b.stage.Path, "base"))
		if p.err == nil {
			opened(ctx, p.image)
		}
	}()
	return p
}

// noBase is the pendingBase of a seed that has no base.
func noBase() *pendingBase {
	p := &pendingBase{cancel: func() {}, done: make(chan struct{})}
	close(p.done)
	return p
}

// wait waits for the base to be open, and what was begun with it to end.
func (p *pendingBase) wait() (*baseImage, error) {
	<-p.done
	return p.image, p.err
}

// stop cancels what is being done with the base: the build no longer
// needs it.
func (p *pendingBase) stop() { p.cancel() }

// close waits for the base and closes it.
func (p *pendingBase) close() {
	<-p.done
	p.image.Close()
	p.cancel()
}

// storeDestination commits the seed straight into local storage
// (storeWriter): its layers go in as they are made, uncompressed, and
// finish records the image under every destination's name.
type storeDestination struct {
	w       *storeWriter
	o       *Options
	created func() time.Time
}

// newStoreDestination returns a storeDestination onto the base, once it is
// open; nil when the base's layers are neither in the store nor read from
// a local file or folder.
func (b *build) newStoreDestination(ctx context.Context, base *pendingBase) (*storeDestination, error) {
	img, err := base.wait()
	if err != nil {
		return nil, err
	}
	w, err := newStoreWriter(ctx, b.opts.Store, img, b.opts.Base, b.opts.Progress)
	if err != nil || w == nil {
		return nil, err
	}
	return &storeDestination{w: w, o: &b.opts, created: b.created}, nil
}

func (s *storeDestination) layer(ctx context.Context, _ Compression, produce func(io.Writer) error) (layerResult, error) {
	return diffLayer(s.w.layer(ctx, produce))
}

func (s *storeDestination) finish(_ context.Context, seed *seedImage, layers []namedLayer) ([]string, error) {
	if err := s.w.commit(seed, layers, s.o.Destinations, s.created()); err != nil {
		return nil, fmt.Errorf("writing seed to local storage: %w", err)
	}
	written := make([]string, 0, len(s.o.Destinations))
	for _, dest := range s.o.Destinations {
		fmt.Fprintf(s.o.Progress, "Wrote seed to %s\n", imageref.Display(dest))
		written = append(written, imageref.Display(dest))
	}
	return written, nil
}

func (s *storeDestination) discard() { s.w.discard() }

// streamedArchive is a classic seed's only destination, an oci-archive:
// its layer, mostly the gigabyte of ostree.tgz, is written straight into
// the archive's partial as it is made (archiveBlob), with no copy of it
// anywhere else.
type streamedArchive struct {
	e        *earlyArchive
	dest     types.ImageReference
	progress io.Writer
}

// newStreamedArchive begins the partial of o's only destination when it
// is an oci-archive; nil when it is not.
func newStreamedArchive(o *Options) (*streamedArchive, error) {
	dests := o.Destinations
	path, name, ok := archiveTarget(dests[0])
	if len(dests) != 1 || !ok {
		return nil, nil
	}
	e := &earlyArchive{name: name, partial: imageref.NewPartial(path)}
	var err error
	if e.aw, err = createArchive(e.partial.Path); err != nil {
		e.partial.Discard()
		return nil, fmt.Errorf("writing seed to %q: %w", imageref.Display(dests[0]), err)
	}
	return &streamedArchive{e: e, dest: dests[0], progress: o.Progress}, nil
}

func (s *streamedArchive) layer(_ context.Context, c Compression, produce func(io.Writer) error) (layerResult, error) {
	return writeLayerTo(func() (blobSink, error) { return s.e.aw.newBlob() }, c, produce)
}

// finish writes the rest of the seed into the archive and publishes it.
// An archive that failed is not written again: its layer has no other
// copy.
func (s *streamedArchive) finish(ctx context.Context, seed *seedImage, _ []namedLayer) ([]string, error) {
	fmt.Fprintf(s.progress, "Writing seed to %s\n", imageref.Display(s.dest))
	if err := s.e.finish(ctx, seed); err != nil {
		return nil, fmt.Errorf("writing seed to %q: %w", imageref.Display(s.dest), err)
	}
	return []string{imageref.Display(s.dest)}, nil
}

func (s *streamedArchive) discard() { s.e.discard() }

// stagedDestinations stages each new layer's blob (stagingImages), then
// writes the seed to every destination in turn from there and from the
// base's own source: an oci-archive in one pass of its own (writeArchive),
// any other through containers/image (seedSourceRef). Either way a local
// destination appears whole or not at all.
type stagedDestinations struct {
	o      *Options
	layout *stagingImages
	base   *pendingBase
	// early is the first oci-archive destination, begun with the base's
	// layers while the root is captured (begin); nil when there is none.
	early *earlyArchive
}

// begin writes base's layers into the partial of the first oci-archive
// destination, if any: the disk writes the base while the CPUs compress
// the node's state.
func (s *stagedDestinations) begin(ctx context.Context, base *baseImage) {
	if i := firstArchive(s.o.Destinations); i >= 0 {
		s.early = startArchive(ctx, base, s.o.Destinations, i)
	}
}

func (s *stagedDestinations) layer(_ context.Context, c Compression, produce func(io.Writer) error) (layerResult, error) {
	return s.layout.writeLayer(c, produce)
}

func (s *stagedDestinations) finish(ctx context.Context, seed *seedImage, _ []namedLayer) ([]string, error) {
	s.base.wait() // for begin to be done
	written := make([]string, 0, len(s.o.Destinations))
	for i, dest := range s.o.Destinations {
		var early *earlyArchive
		if s.early != nil && s.early.dest == i {
			early = s.early
		}
		if err := s.writeTo(ctx, seed, dest, early); err != nil {
			return nil, fmt.Errorf("writing seed to %q: %w", imageref.Display(dest), err)
		}
		written = append(written, imageref.Display(dest))
	}
	return written, nil
}

// writeTo writes the seed to dest: an oci-archive in one pass of its own
// (finishing early, the archive begun during the capture, when there is
// one), any other destination through containers/image.
func (s *stagedDestinations) writeTo(ctx context.Context, seed *seedImage, dest types.ImageReference, early *earlyArchive) error {
	fmt.Fprintf(s.o.Progress, "Writing seed to %s\n", imageref.Display(dest))
	// The archive begun during the capture is whole, or it failed: then
	// it is written again from the start, with retries.
	if early != nil && early.finish(ctx, seed) == nil {
		return nil
	}
	if path, name, ok := archiveTarget(dest); ok {
		return imageref.WriteAtomically(path, func(partial string) error {
			return s.o.Retry.Do(ctx, func() error { return writeArchive(ctx, seed, partial, name) })
		})
	}
	pc, err := seedCopyPolicy()
	if err != nil {
		return err
	}
	_, err = imageref.CopyImage(ctx, pc, dest, seedSourceRef{seed}, &copy.Options{
		SourceCtx:      &types.SystemContext{},
		DestinationCtx: s.o.SystemContext,
		ReportWriter:   s.o.Progress,
	}, s.o.Retry)
	return err
}

func (s *stagedDestinations) discard() {
	s.base.wait() // for begin to be done
	s.early.discard()
}
