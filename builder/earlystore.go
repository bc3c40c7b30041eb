package builder

import (
	"context"
	"fmt"
	"os"
	"slices"

	"go.podman.io/image/v5/copy"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// earlyStore copies the base image into the containers-storage store of a
// --tag destination while the root is captured. Writing the seed there
// then finds the base's layers applied already (containers/image reuses a
// layer the store has) and adds only the seed's own: the slow part, the
// OS layer, overlaps the capture. The base goes in under a name of its
// own, which is taken off again once the seed holds its layers; the image
// record goes too, unless someone else named it meanwhile.
type earlyStore struct {
	store storage.Store
	id    string // the base's image ID
	name  string // the temporary name
	done  chan error
}

// startStore begins the copy into the store of the first containers-storage
// destination, when there is one and it does not hold the base yet; nil
// otherwise.
func startStore(ctx context.Context, base *baseImage, o *Options) *earlyStore {
	var store storage.Store
	for _, d := range o.Destinations {
		if t, ok := d.Transport().(istorage.StoreTransport); ok && d.Transport().Name() == istorage.Transport.Name() {
			store = t.GetStoreIfSet()
			break
		}
	}
	if store == nil || o.Policy == nil || base.manifest.Config.Digest == "" {
		return nil
	}
	id := base.manifest.Config.Digest.Encoded()
	if _, err := store.Image(id); err == nil {
		return nil // the store has the base already
	}
	e := &earlyStore{store: store, id: id, name: fmt.Sprintf("localhost/seedbuild-early-base-%d:%s", os.Getpid(), id[:12]), done: make(chan error, 1)}
	ref, err := istorage.Transport.ParseStoreReference(store, e.name+"@"+id)
	if err != nil {
		return nil
	}
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
		e.done <- <-e.done
	}
}

// remove waits for the copy, takes its temporary name off the base image
// and removes the image when no other name is left; the layers the seed
// uses stay.
func (e *earlyStore) remove() {
	if e == nil {
		return
	}
	e.wait()
	img, err := e.store.Image(e.id)
	if err != nil || !slices.Contains(img.Names, e.name) {
		return
	}
	if err := e.store.RemoveNames(e.id, []string{e.name}); err != nil {
		return
	}
	if img, err := e.store.Image(e.id); err == nil && len(img.Names) == 0 {
		e.store.DeleteImage(e.id, true)
	}
}
