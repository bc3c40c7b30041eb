package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/aheadpipe"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// storeWriter commits a seed straight into local containers-storage, as
// buildah commits an image: each new layer's tar stream goes from the
// capture into the store as it is made, uncompressed, on top of the base's
// layers. Nothing is compressed, staged or unpacked twice, which a copy
// through containers/image would do (it writes each compressed blob to a
// file as it digests it, then unpacks it).
//
// It applies when every destination is a name in that store and the
// base's layers are there (a pulled or built base) or can be read from a
// local file or folder (an oci-archive, an OCI layout, a dir): the missing
// ones are then stored first, each straight from its blob. Other runs
// write through containers/image.
type storeWriter struct {
	store storage.Store
	// parent is the layer the next one goes on: the base's top layer, then
	// each new layer in turn.
	parent string
	// made are the seed's layers this run made, bottom first, and not yet
	// in a committed image; baseMade, the base's: discard removes both.
	made, baseMade []string
}

// newStoreWriter returns a storeWriter onto the base's layers in store,
// after storing those that are not there when the base is read from a
// local file or folder; nil when neither.
func newStoreWriter(ctx context.Context, store storage.Store, base *baseImage, ref types.ImageReference, progress io.Writer) (*storeWriter, error) {
	diffIDs := base.config.RootFS.DiffIDs
	have, top, err := layerChain(store, diffIDs)
	if err != nil {
		return nil, err
	}
	if have == len(diffIDs) {
		return &storeWriter{store: store, parent: top}, nil
	}
	if !localTransports[ref.Transport().Name()] || base.substitutes || len(base.manifest.Layers) != len(diffIDs) {
		return nil, nil
	}
	s := &storeWriter{store: store, parent: top}
	for i := have; i < len(diffIDs); i++ {
		fmt.Fprintf(progress, "Storing base layer %d of %d in local storage\n", i+1, len(diffIDs))
		if err := s.putBaseLayer(ctx, base, base.manifest.Layers[i], diffIDs[i]); err != nil {
			s.discard()
			return nil, err
		}
	}
	return s, nil
}

// localTransports are the transports a base is read from a local file or
// folder with: its layers can be stored as they are read, with no retry.
var localTransports = map[string]bool{"oci-archive": true, "oci": true, "dir": true, "docker-archive": true}

// putBaseLayer stores the base layer l, whose diff ID is diffID, on top of
// the last one, from its blob as it is read: the store decompresses it and
// digests both forms, which must be l's digest and diffID.
func (s *storeWriter) putBaseLayer(ctx context.Context, base *baseImage, l imgspecv1.Descriptor, diffID digest.Digest) error {
	rc, _, err := base.blob(ctx, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	layer, err := s.putLayer(ctx, chainID(s.parent, diffID), ctxReader{ctx, rc}, true)
	if err != nil {
		return fmt.Errorf("storing layer %s of base image %q in local storage: %w", l.Digest, base.name, err)
	}
	if layer.UncompressedDigest != diffID || (layer.CompressedDigest != "" && layer.CompressedDigest != l.Digest) {
		s.store.DeleteLayer(layer.ID)
		return fmt.Errorf("layer %s of base image %q was stored as %s (uncompressed %s), not as its manifest and config say (%s)",
			l.Digest, base.name, layer.CompressedDigest, layer.UncompressedDigest, diffID)
	}
	s.baseMade = append(s.baseMade, layer.ID)
	s.parent = layer.ID
	return nil
}

// putLayer stores the layer r gives (its compressed blob with compressed
// set, else its tar stream) on top of the last one, as id (random when
// empty): written by seedbuild through the staged-layer API where the
// store allows it (putStagedLayer), else by the store's PutLayer.
func (s *storeWriter) putLayer(ctx context.Context, id string, r io.Reader, compressed bool) (*storage.Layer, error) {
	layer, err := putStagedLayer(ctx, s.store, id, s.parent, r, compressed)
	if errors.Is(err, errNoStagedLayer) {
		layer, _, err = s.store.PutLayer(id, s.parent, nil, "", false, nil, r)
	}
	return layer, err
}

// allInStore says whether every one of dests names an image in store.
func allInStore(store storage.Store, dests []types.ImageReference) bool {
	if store == nil || len(dests) == 0 {
		return false
	}
	for _, d := range dests {
		if !inStore(store, d) {
			return false
		}
	}
	return true
}

// inStore says whether ref names an image in store: a containers-storage
// reference whose store is this one.
func inStore(store storage.Store, ref types.ImageReference) bool {
	if ref.Transport().Name() != istorage.Transport.Name() || ref.DockerReference() == nil {
		return false
	}
	return strings.HasPrefix(ref.StringWithinTransport(), "["+imageref.StoreSpec(store)+"]")
}

// chainID is the ID a pull gives the layer with diffID on top of the
// layer parent (containers/image's storage destination does so): a later
// pull of the base finds the layer by it and stores nothing again.
func chainID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return digest.Canonical.FromString(parent + "+" + diffID.Encoded()).Encoded()
}

// layerChain finds layers in store holding diffIDs in order, each on top
// of the one before, and returns how many of diffIDs, from the first,
// it found, and the last one's ID.
func layerChain(store storage.Store, diffIDs []digest.Digest) (int, string, error) {
	parent := ""
	for i, d := range diffIDs {
		layers, err := store.LayersByUncompressedDigest(d)
		if errors.Is(err, storage.ErrLayerUnknown) {
			return i, parent, nil
		}
		if err != nil {
			return 0, "", fmt.Errorf("looking up layer %s in local storage: %w", d, err)
		}
		next := ""
		for _, l := range layers {
			if l.Parent == parent {
				next = l.ID
				break
			}
		}
		if next == "" {
			return i, parent, nil
		}
		parent = next
	}
	return len(diffIDs), parent, nil
}

// layer wraps a layer's producer so that what it writes also goes into a
// new layer in the store, on top of the last one. The stream the producer
// writes is the layer's diff: the store's digest of it must be the diff ID
// the caller computes from the same bytes, or the layer is refused.
func (s *storeWriter) layer(ctx context.Context, produce func(io.Writer) error) func(io.Writer) error {
	return func(w io.Writer) error {
		pipe := aheadpipe.New(8)
		type put struct {
			layer *storage.Layer
			err   error
		}
		done := make(chan put, 1)
		go func() {
			l, err := s.putLayer(ctx, "", pipe, false)
			if err == nil {
				// Whatever follows the tar's end (its padding) is part of
				// the diff; the store has digested what it read.
				_, err = io.Copy(io.Discard, pipe)
			}
			pipe.CloseRead(errOr(err, io.ErrClosedPipe))
			done <- put{l, err}
		}()
		err := produce(io.MultiWriter(w, pipe))
		pipe.CloseWrite(err)
		p := <-done
		if p.layer != nil && (err != nil || p.err != nil) {
			s.store.DeleteLayer(p.layer.ID)
		}
		if err != nil {
			return err
		}
		if p.err != nil {
			return fmt.Errorf("storing the layer in local storage: %w", p.err)
		}
		s.made = append(s.made, p.layer.ID)
		s.parent = p.layer.ID
		return nil
	}
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// commit records the seed as an image on the new layers, named as dests
// name it (a name another image had moves to this one). Its ID is its
// config's digest, as a pull would give it: when that image is already
// there (the same seed, built again), the new layers are dropped and the
// names added to it.
func (s *storeWriter) commit(seed *seedImage, layers []namedLayer, dests []types.ImageReference, created time.Time) error {
	if len(s.made) != len(layers) {
		return fmt.Errorf("internal error: %d layers stored for %d made", len(s.made), len(layers))
	}
	for i, id := range s.made {
		l, err := s.store.Layer(id)
		if err != nil {
			return fmt.Errorf("reading stored layer %s: %w", id, err)
		}
		if l.UncompressedDigest != layers[i].diffID {
			return fmt.Errorf("the %s layer was stored with digest %s, not %s", layers[i].name, l.UncompressedDigest, layers[i].diffID)
		}
	}
	mfDigest := seed.manifestDescriptor().Digest
	cfgDigest := seed.manifest.Config.Digest
	opts := &storage.ImageOptions{
		CreationDate: created,
		Digest:       mfDigest,
		BigData: []storage.ImageBigDataOption{
			{Key: cfgDigest.String(), Data: seed.configBlob, Digest: cfgDigest},
			{Key: storage.ImageDigestManifestBigDataNamePrefix + "-" + mfDigest.String(), Data: seed.manifestBlob, Digest: mfDigest},
			{Key: storage.ImageDigestBigDataKey, Data: seed.manifestBlob, Digest: mfDigest},
		},
	}
	id := cfgDigest.Encoded()
	isNew := true
	img, err := s.store.CreateImage(id, nil, s.parent, "", opts)
	if errors.Is(err, storage.ErrDuplicateID) {
		isNew = false
		img, err = s.store.Image(id)
	}
	if err != nil {
		return fmt.Errorf("recording image %s in local storage: %w", id, err)
	}
	names := make([]string, 0, len(dests))
	for _, d := range dests {
		names = append(names, d.DockerReference().String())
	}
	if err := s.store.AddNames(img.ID, names); err != nil {
		if isNew {
			// With the layers this run made, which no other image uses.
			s.store.DeleteImage(img.ID, true)
		}
		return fmt.Errorf("naming image %s %s: %w", img.ID, strings.Join(names, ", "), err)
	}
	if isNew {
		// The new image holds them now.
		s.made, s.baseMade = nil, nil
	}
	return nil
}

// discard removes the layers this run made that no committed image holds.
func (s *storeWriter) discard() {
	if s == nil {
		return
	}
	for _, made := range [][]string{s.made, s.baseMade} {
		for i := len(made) - 1; i >= 0; i-- {
			s.store.DeleteLayer(made[i])
		}
	}
	s.made, s.baseMade = nil, nil
}
