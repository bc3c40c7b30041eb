package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/labels"
)

// imageConfig is the seed's config: the base's (an empty one for a seed
// without a base) with the seed's labels added, and the new layers' diff
// IDs and history after the base's, dated created. base is not changed.
func imageConfig(base *imgspecv1.Image, seedLabels map[string]string, layers []namedLayer, created time.Time, comment string) imgspecv1.Image {
	var cfg imgspecv1.Image
	if base != nil {
		cfg = *base
		cfg.Config.Labels = map[string]string{}
		for k, v := range base.Config.Labels {
			cfg.Config.Labels[k] = v
		}
		cfg.RootFS.DiffIDs = append([]digest.Digest{}, base.RootFS.DiffIDs...)
		cfg.History = append([]imgspecv1.History{}, base.History...)
	} else {
		cfg = imgspecv1.Image{Platform: imgspecv1.Platform{Architecture: runtime.GOARCH, OS: "linux"}, RootFS: imgspecv1.RootFS{Type: "layers"}}
		cfg.Config.Labels = map[string]string{}
	}
	for k, v := range seedLabels {
		cfg.Config.Labels[k] = v
	}
	cfg.Created = &created
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		cfg.History = append(cfg.History, imgspecv1.History{Created: &created, CreatedBy: labels.LayerHistory + l.name, Comment: comment})
	}
	return cfg
}

// seedManifest lists the base's layers (none without a base), then the new
// ones, with the seed's config and annotations.
func seedManifest(base *imgspecv1.Manifest, config imgspecv1.Descriptor, layers []namedLayer, annotations map[string]string) imgspecv1.Manifest {
	mf := imgspecv1.Manifest{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageManifest, Config: config}
	if base != nil {
		mf.Layers = append(mf.Layers, base.Layers...)
	}
	for _, l := range layers {
		mf.Layers = append(mf.Layers, l.desc)
	}
	if len(annotations) > 0 {
		mf.Annotations = annotations
	}
	return mf
}

// seedImage is the seed as it is written: its manifest and config, its new
// layers in the staging folder, and its base's layers in the base's own
// source. Every destination reads the base from there: it is never copied
// into the staging folder first.
type seedImage struct {
	manifest     imgspecv1.Manifest
	manifestBlob []byte
	configBlob   []byte
	staged       *stagingImages
	base         *baseImage
}

// newSeedImage encodes the config and manifest.
func newSeedImage(cfg imgspecv1.Image, base *baseImage, layers []namedLayer, annotations map[string]string, staged *stagingImages) (*seedImage, error) {
	configBlob, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the image config: %w", err)
	}
	configDesc := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: digest.FromBytes(configBlob), Size: int64(len(configBlob))}
	var baseManifest *imgspecv1.Manifest
	if base != nil {
		baseManifest = &base.manifest
	}
	mf := seedManifest(baseManifest, configDesc, layers, annotations)
	mfBlob, err := json.Marshal(mf)
	if err != nil {
		return nil, fmt.Errorf("encoding the image manifest: %w", err)
	}
	return &seedImage{manifest: mf, manifestBlob: mfBlob, configBlob: configBlob, staged: staged, base: base}, nil
}

// manifestDescriptor describes the manifest.
func (s *seedImage) manifestDescriptor() imgspecv1.Descriptor {
	return imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageManifest, Digest: digest.FromBytes(s.manifestBlob), Size: int64(len(s.manifestBlob))}
}

// blob opens one of the seed's blobs: the config, a new layer from the
// staging folder, or a base layer from the base's source.
func (s *seedImage) blob(ctx context.Context, d imgspecv1.Descriptor) (io.ReadCloser, int64, error) {
	if d.Digest == s.manifest.Config.Digest {
		return io.NopCloser(bytes.NewReader(s.configBlob)), int64(len(s.configBlob)), nil
	}
	f, err := os.Open(s.staged.blobPath(d.Digest))
	if err == nil {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("reading staged blob %s: %w", d.Digest, err)
	}
	if s.base == nil {
		return nil, 0, fmt.Errorf("the seed has no blob %s", d.Digest)
	}
	return s.base.blob(ctx, d)
}
