package builder

import (
	"context"
	"strings"

	"go.podman.io/image/v5/copy"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// earlyStore copies the base image into the containers-storage store of a
// --tag destination while the root is captured. Writing the seed there
// then finds the base's layers applied already (containers/image reuses a
// layer the store has) and adds only the seed's own: the slow part, the
// OS layer, overlaps the capture. The base goes in by ID only, with no
// name, and is removed again once the seed holds its layers, unless the
// store had it before.
type earlyStore struct {
	ref  types.ImageReference // the base, by ID, in the destination's store
	done chan error
}

// startStore begins the copy into the store of the first containers-storage
// destination, when there is one and it does not hold the base yet; nil
// otherwise.
func startStore(ctx context.Context, base *baseImage, o *Options) *earlyStore {
	var dest types.ImageReference
	for _, d := range o.Destinations {
		if d.Transport().Name() == istorage.Transport.Name() {
			dest = d
			break
		}
	}
	if dest == nil || o.Policy == nil || base.manifest.Config.Digest == "" {
		return nil
	}
	// "[driver@graphroot+runroot:options]name": the same store, by ID.
	within := dest.StringWithinTransport()
	end := strings.Index(within, "]")
	if !strings.HasPrefix(within, "[") || end < 0 {
		return nil
	}
	ref, err := istorage.Transport.ParseReference(within[:end+1] + "@" + base.manifest.Config.Digest.Encoded())
	if err != nil {
		return nil
	}
	if src, err := ref.NewImageSource(ctx, o.SystemContext); err == nil {
		src.Close()
		return nil // the store has the base already
	}
	e := &earlyStore{ref: ref, done: make(chan error, 1)}
	go func() {
		_, err := copy.Image(ctx, o.Policy, ref, o.Base, &copy.Options{SourceCtx: o.SystemContext, DestinationCtx: o.SystemContext})
		e.done <- err
	}()
	return e
}

// wait waits for the copy; its failure only means the seed's write does
// all the work itself.
func (e *earlyStore) wait() {
	if e != nil {
		<-e.done
		e.done <- nil
	}
}

// remove waits for the copy and removes the base image it made; the
// layers the seed uses stay.
func (e *earlyStore) remove(ctx context.Context, sys *types.SystemContext) {
	if e == nil {
		return
	}
	e.wait()
	e.ref.DeleteImage(ctx, sys)
}
