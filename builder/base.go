package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/seedimage"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// baseImage is the OS image a seed is built on, read where it is: its
// manifest (as OCI) and config, and its source, which serves its layers
// when the seed is written. Nothing of it is copied before then.
type baseImage struct {
	// name and digest are the provenance of the seed's annotations: the
	// image as named, and its manifest's digest in its source (for a
	// manifest list, the digest of this platform's image).
	name   string
	digest digest.Digest
	// manifest lists the base's layers with OCI media types; config is
	// its config.
	manifest imgspecv1.Manifest
	config   imgspecv1.Image
	src      types.ImageSource
	// substitutes says src serves the layers under other digests
	// (LayerInfosForCopy), so they cannot be read as the manifest lists.
	substitutes bool
}

// openBase reads the base image's manifest and config, after checking it
// against the signature policy as a pull would. A source that serves its
// layers under other digests than its manifest's (containers-storage keeps
// them uncompressed) is first copied into stageDir, as an OCI layout,
// which serves them as the manifest says.
func openBase(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, pc *signature.PolicyContext, stageDir string) (*baseImage, error) {
	display := imageref.Display(ref)
	src, err := seedimage.NewSource(ctx, ref, sys)
	if err != nil {
		return nil, fmt.Errorf("reading base image %q: %w", display, err)
	}
	b, err := readBase(ctx, src, sys, pc)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("reading base image %q: %w", display, err)
	}
	b.name = baseName(ref)
	if !b.substitutes {
		return b, nil
	}
	src.Close()
	staged, err := layout.NewReference(stageDir, "base")
	if err == nil {
		_, err = imageref.CopyImage(ctx, pc, staged, ref, &copy.Options{SourceCtx: sys, DestinationCtx: &types.SystemContext{}}, imageref.Retry{})
	}
	if err != nil {
		return nil, fmt.Errorf("staging base image %q: %w", display, err)
	}
	// The copy checked the policy; the staged layout is this run's own.
	own, err := seedCopyPolicy()
	if err != nil {
		return nil, err
	}
	stagedSrc, err := staged.NewImageSource(ctx, &types.SystemContext{})
	if err != nil {
		return nil, fmt.Errorf("reading the staged base image: %w", err)
	}
	sb, err := readBase(ctx, stagedSrc, &types.SystemContext{}, own)
	if err != nil {
		stagedSrc.Close()
		return nil, fmt.Errorf("reading the staged base image: %w", err)
	}
	sb.name, sb.digest = b.name, b.digest
	return sb, nil
}

func readBase(ctx context.Context, src types.ImageSource, sys *types.SystemContext, pc *signature.PolicyContext) (*baseImage, error) {
	unparsed, instance, blob, mime, err := seedimage.PlatformInstance(ctx, src, sys)
	if err != nil {
		return nil, err
	}
	if allowed, err := pc.IsRunningImageAllowed(ctx, unparsed); err != nil {
		return nil, fmt.Errorf("the signature policy refuses it: %w", err)
	} else if !allowed {
		return nil, fmt.Errorf("the signature policy refuses it")
	}
	img, err := image.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return nil, err
	}
	// A docker schema 2 base is written as OCI, as a copy to an OCI
	// destination converts it: the same blobs under OCI media types.
	if mime != imgspecv1.MediaTypeImageManifest {
		if img, err = img.UpdatedImage(ctx, types.ManifestUpdateOptions{ManifestMIMEType: imgspecv1.MediaTypeImageManifest}); err != nil {
			return nil, fmt.Errorf("reading its manifest as OCI: %w", err)
		}
	}
	ociBlob, _, err := img.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	b := &baseImage{digest: digest.FromBytes(blob), src: src}
	infos, err := src.LayerInfosForCopy(ctx, instance)
	if err != nil {
		return nil, fmt.Errorf("reading its layers: %w", err)
	}
	b.substitutes = len(infos) > 0
	if err := json.Unmarshal(ociBlob, &b.manifest); err != nil {
		return nil, fmt.Errorf("parsing its manifest: %w", err)
	}
	cfg, err := img.ConfigBlob(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading its config: %w", err)
	}
	if err := json.Unmarshal(cfg, &b.config); err != nil {
		return nil, fmt.Errorf("parsing its config: %w", err)
	}
	if len(b.config.RootFS.DiffIDs) != len(b.manifest.Layers) {
		return nil, fmt.Errorf("its config lists %d layers and its manifest %d", len(b.config.RootFS.DiffIDs), len(b.manifest.Layers))
	}
	return b, nil
}

// blob reads one of the base's layers from its source (a blobOpener).
func (b *baseImage) blob(ctx context.Context, d imgspecv1.Descriptor) (io.ReadCloser, int64, error) {
	rc, _, err := b.src.GetBlob(ctx, types.BlobInfo{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}, none.NoCache)
	if err != nil {
		return nil, 0, fmt.Errorf("reading layer %s of base image %q: %w", d.Digest, b.name, err)
	}
	return rc, d.Size, nil
}

func (b *baseImage) Close() error {
	if b == nil {
		return nil
	}
	return b.src.Close()
}
