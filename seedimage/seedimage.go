// Package seedimage reads what a seed image says about itself (labels,
// annotations, platform, layers) from any containers/image transport,
// reading only the manifest and the config.
package seedimage

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// Layer is one layer of an image, as its manifest lists it.
type Layer struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type,omitempty"`
	Size      int64  `json:"size"`
	// CreatedBy is what the image's history says made the layer.
	CreatedBy string `json:"created_by,omitempty"`
}

// Base names the OS image a seed was built on.
type Base struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Description is what `seedbuild inspect` reports. Its JSON form is a
// stable, documented schema (README: "inspect --json").
type Description struct {
	// Image is the reference that was read, with its transport.
	Image string `json:"image"`
	// Digest is the manifest digest.
	Digest string `json:"digest"`
	// ConfigDigest is the config's digest, which names the image in local
	// containers-storage once pulled.
	ConfigDigest  string              `json:"config_digest"`
	Kind          string              `json:"kind"`
	FormatVersion int                 `json:"format_version"`
	OCPVersion    string              `json:"ocp_version"`
	ClusterName   string              `json:"cluster_name"`
	Base          Base                `json:"base"`
	Architecture  string              `json:"architecture"`
	OS            string              `json:"os"`
	Created       *time.Time          `json:"created,omitempty"`
	LayerCount    int                 `json:"layer_count"`
	LayersSize    int64               `json:"layers_size"`
	Layers        []Layer             `json:"layers"`
	Labels        map[string]string   `json:"labels"`
	ClusterInfo   *labels.ClusterInfo `json:"cluster_info,omitempty"`
	Seed          labels.Seed         `json:"-"`
	// SeedErr says why the image is not a usable seed, or is nil: it wraps
	// labels.ErrNotASeed, *labels.UnknownFormatError or
	// *labels.ClusterInfoError.
	SeedErr error `json:"-"`
}

// Read reads a seed: the description of the image at ref, or an error.
// An image that is readable but not a usable seed is an error that names
// the image and wraps its SeedErr.
func Read(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) (*Description, error) {
	d, err := Describe(ctx, ref, sys)
	if err != nil {
		return nil, err
	}
	if d.SeedErr != nil {
		return nil, fmt.Errorf("%s is not a usable seed: %w", d.Image, d.SeedErr)
	}
	return d, nil
}

// Describe opens ref and describes any image, seed or not; the error is
// for an image that cannot be read. For a manifest list it picks the
// instance for sys's platform.
func Describe(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) (*Description, error) {
	src, err := NewSource(ctx, ref, sys)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	unparsed, _, blob, mime, err := PlatformInstance(ctx, src, sys)
	if err != nil {
		return nil, err
	}
	img, err := image.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	info, err := img.Inspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	dgst, err := manifest.Digest(blob)
	if err != nil {
		return nil, fmt.Errorf("digesting manifest: %w", err)
	}
	d := describe(ref, dgst, blob, mime, info)
	d.ConfigDigest = img.ConfigInfo().Digest.Encoded()
	if cfg, err := img.OCIConfig(ctx); err == nil {
		nameLayers(d.Layers, cfg.History)
	}
	return d, nil
}

func describe(ref types.ImageReference, dgst digest.Digest, blob []byte, mime string, info *types.ImageInspectInfo) *Description {
	d := &Description{
		Image:        imageref.Display(ref),
		Digest:       dgst.String(),
		Architecture: info.Architecture,
		OS:           info.Os,
		Labels:       info.Labels,
		Layers:       []Layer{},
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if info.Created != nil && !info.Created.IsZero() {
		c := info.Created.UTC()
		d.Created = &c
	}
	for _, l := range info.LayersData {
		d.Layers = append(d.Layers, Layer{Digest: l.Digest.String(), MediaType: l.MIMEType, Size: l.Size})
		d.LayersSize += l.Size
	}
	d.LayerCount = len(d.Layers)
	var annotations map[string]string
	if mime == "application/vnd.oci.image.manifest.v1+json" {
		if m, err := manifest.OCI1FromManifest(blob); err == nil {
			annotations = m.Annotations
		}
	}
	seed, err := labels.Parse(info.Labels, annotations)
	d.Seed = seed
	d.Kind = seed.Kind().String()
	if err != nil {
		d.SeedErr = err
		return d
	}
	d.FormatVersion = seed.FormatVersion
	d.OCPVersion = seed.ClusterInfo.SeedClusterOCPVersion
	d.ClusterName = seed.ClusterInfo.ClusterName
	d.Base = Base{Name: seed.BaseName, Digest: seed.BaseDigest}
	d.ClusterInfo = &seed.ClusterInfo
	return d
}

// PlatformInstance opens src's image for sys's platform: the image itself,
// or the instance a manifest list names for the platform (then instance is
// its digest). blob and mime are that image's manifest.
func PlatformInstance(ctx context.Context, src types.ImageSource, sys *types.SystemContext) (unparsed *image.UnparsedImage, instance *digest.Digest, blob []byte, mime string, err error) {
	unparsed = image.UnparsedInstance(src, nil)
	if blob, mime, err = unparsed.Manifest(ctx); err != nil {
		return nil, nil, nil, "", fmt.Errorf("reading manifest: %w", err)
	}
	if !manifest.MIMETypeIsMultiImage(mime) {
		return unparsed, nil, blob, mime, nil
	}
	list, err := manifest.ListFromBlob(blob, mime)
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("parsing manifest list: %w", err)
	}
	d, err := list.ChooseInstance(sys)
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("choosing an image from the manifest list: %w", err)
	}
	unparsed = image.UnparsedInstance(src, &d)
	if blob, mime, err = unparsed.Manifest(ctx); err != nil {
		return nil, nil, nil, "", fmt.Errorf("reading manifest %s: %w", d, err)
	}
	return unparsed, &d, blob, mime, nil
}

// nameLayers gives each layer the created_by of its history entry: the
// entries that are not empty layers, in order. A history that does not
// match the layers one to one names none.
func nameLayers(layers []Layer, history []imgspecv1.History) {
	var made []string
	for _, h := range history {
		if !h.EmptyLayer {
			made = append(made, h.CreatedBy)
		}
	}
	if len(made) != len(layers) {
		return
	}
	for i := range layers {
		layers[i].CreatedBy = made[i]
	}
}
