package builder

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// seedSourceRef makes a seedImage readable by containers/image, so that
// copy.Image writes it to any destination: its blobs come from the staging
// folder and from the base's source, as seedImage.blob serves them. It is
// read-only and known only inside this package.
type seedSourceRef struct{ img *seedImage }

type seedSourceTransport struct{}

func (seedSourceTransport) Name() string { return "seedbuild-seed" }
func (seedSourceTransport) ParseReference(string) (types.ImageReference, error) {
	return nil, errors.New("a seed being built cannot be named")
}
func (seedSourceTransport) ValidatePolicyConfigurationScope(string) error {
	return errors.New("a seed being built has no policy scope")
}

func (r seedSourceRef) Transport() types.ImageTransport { return seedSourceTransport{} }
func (r seedSourceRef) StringWithinTransport() string {
	return r.img.manifestDescriptor().Digest.String()
}
func (r seedSourceRef) DockerReference() reference.Named        { return nil }
func (r seedSourceRef) PolicyConfigurationIdentity() string     { return "" }
func (r seedSourceRef) PolicyConfigurationNamespaces() []string { return nil }
func (r seedSourceRef) NewImage(ctx context.Context, sys *types.SystemContext) (types.ImageCloser, error) {
	src, err := r.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	return image.FromSource(ctx, sys, src)
}
func (r seedSourceRef) NewImageSource(context.Context, *types.SystemContext) (types.ImageSource, error) {
	return &seedSource{ref: r}, nil
}
func (r seedSourceRef) NewImageDestination(context.Context, *types.SystemContext) (types.ImageDestination, error) {
	return nil, errors.New("a seed being built cannot be written to")
}
func (r seedSourceRef) DeleteImage(context.Context, *types.SystemContext) error {
	return errors.New("a seed being built cannot be deleted")
}

type seedSource struct{ ref seedSourceRef }

func (s *seedSource) Reference() types.ImageReference { return s.ref }
func (s *seedSource) Close() error                    { return nil }
func (s *seedSource) GetManifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil {
		return nil, "", fmt.Errorf("the seed has no manifest list, so no instance %s", instance)
	}
	return s.ref.img.manifestBlob, imgspecv1.MediaTypeImageManifest, nil
}
func (s *seedSource) GetBlob(ctx context.Context, info types.BlobInfo, _ types.BlobInfoCache) (io.ReadCloser, int64, error) {
	return s.ref.img.blob(ctx, imgspecv1.Descriptor{Digest: info.Digest, Size: info.Size, MediaType: info.MediaType})
}
func (s *seedSource) HasThreadSafeGetBlob() bool {
	return s.ref.img.base == nil || s.ref.img.base.src.HasThreadSafeGetBlob()
}
func (s *seedSource) GetSignatures(context.Context, *digest.Digest) ([][]byte, error) {
	return nil, nil
}
func (s *seedSource) LayerInfosForCopy(context.Context, *digest.Digest) ([]types.BlobInfo, error) {
	return nil, nil
}

// seedCopyPolicy is the signature policy of copies from a seed being built.
// Its one outside part, the base, was checked against the user's policy
// when it was opened (openBase); the rest is what this run wrote.
func seedCopyPolicy() (*signature.PolicyContext, error) {
	return signature.NewPolicyContext(&signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}})
}
