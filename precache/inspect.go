package precache

import (
	"context"
	"fmt"
	"runtime"

	"github.com/opencontainers/go-digest"
	"github.com/seedbuild/seedbuild/seedimage"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/image"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// imagePlan is one image of the list, as its registry describes it.
type imagePlan struct {
	// listed is the image as the list names it; name, as pulled (after
	// Options.Rewrite).
	listed, name string
	ref          types.ImageReference
	// layers are the blobs of the platform's instance.
	layers []types.BlobInfo
	// done is set when nothing is left to fetch: the image is present,
	// skipped or failed.
	done bool
}

// inspectAll reads every image's manifest and config (never its layers),
// Options.Jobs at a time: the platform's instance of a list, the layers,
// and whether the image is for this platform. An image in the store
// already, or for another platform, is settled here.
func inspectAll(ctx context.Context, images []string, o Options, out *outcomes) ([]*imagePlan, error) {
	plans := make([]*imagePlan, len(images))
	failed := eachImage(ctx, o, out, len(images), func(ctx context.Context, i int) ImageStatus {
		p, st := inspectOne(ctx, images[i], o)
		plans[i] = p
		return st
	})
	if len(failed) > 0 && !o.BestEffort {
		return nil, &FailedError{Failed: failed, Stopped: true}
	}
	return plans, nil
}

// inspectOne reads one image's description; a status is returned for an
// image settled here (present, skipped, failed), none otherwise.
func inspectOne(ctx context.Context, name string, o Options) (*imagePlan, ImageStatus) {
	p := &imagePlan{listed: name, name: name, done: true}
	fail := func(err error) (*imagePlan, ImageStatus) {
		return p, ImageStatus{Image: name, Status: Failed, Reason: err.Error()}
	}
	if o.Rewrite != nil {
		var err error
		if p.name, err = o.Rewrite(name); err != nil {
			return fail(err)
		}
	}
	ref, err := docker.ParseReference("//" + p.name)
	if err != nil {
		return fail(fmt.Errorf("parsing the image name %q: %w", p.name, err))
	}
	p.ref = ref
	if inStore(o, p.name) {
		return p, ImageStatus{Image: name, Status: Present}
	}
	var arch string
	var single bool
	err = retry(ctx, o, "reading "+p.name, func() error {
		var err error
		p.layers, arch, single, err = describe(ctx, ref, o.SystemContext)
		return err
	})
	if err != nil {
		return fail(err)
	}
	if want := platformArch(o.SystemContext); single && arch != "" && arch != want {
		return p, ImageStatus{Image: name, Status: Skipped, Reason: fmt.Sprintf("the image is for %s, the node is %s", arch, want)}
	}
	p.done = false
	return p, ImageStatus{}
}

// describe reads the layers of the image's instance for this platform,
// the architecture its config names, and whether the image is a single
// one rather than a list (a list's instance was chosen for the platform).
func describe(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) ([]types.BlobInfo, string, bool, error) {
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return nil, "", false, err
	}
	defer src.Close()
	unparsed, instance, _, _, err := seedimage.PlatformInstance(ctx, src, sys)
	if err != nil {
		return nil, "", false, err
	}
	img, err := image.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return nil, "", false, err
	}
	cfg, err := img.OCIConfig(ctx)
	if err != nil {
		return nil, "", false, err
	}
	return img.LayerInfos(), cfg.Architecture, instance == nil, nil
}

// platformArch is the architecture images are chosen for: the system
// context's choice, else this machine's.
func platformArch(sys *types.SystemContext) string {
	if sys != nil && sys.ArchitectureChoice != "" {
		return sys.ArchitectureChoice
	}
	return runtime.GOARCH
}

// inStore says whether the store has an image of that name (a digest
// reference names the image it pulled).
func inStore(o Options, name string) bool {
	ref, err := istorage.Transport.ParseStoreReference(o.Store, name)
	if err != nil {
		return false
	}
	_, _, err = istorage.ResolveReference(ref)
	return err == nil
}

// layerPresent says whether the store holds a layer made from the blob d.
func layerPresent(store storage.Store, d digest.Digest) bool {
	if l, err := store.LayersByCompressedDigest(d); err == nil && len(l) > 0 {
		return true
	}
	l, err := store.LayersByUncompressedDigest(d)
	return err == nil && len(l) > 0
}
