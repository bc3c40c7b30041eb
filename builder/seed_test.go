package builder

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/oci/archive"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

func TestImageConfig(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	layers := []namedLayer{{name: "var", layerResult: layerResult{diffID: "sha256:aa"}}, {name: "etc", layerResult: layerResult{diffID: "sha256:bb"}}}
	base := &imgspecv1.Image{
		Platform: imgspecv1.Platform{Architecture: "arm64", OS: "linux"},
		Config:   imgspecv1.ImageConfig{Labels: map[string]string{"containers.bootc": "1", "kept": "base"}},
		RootFS:   imgspecv1.RootFS{Type: "layers", DiffIDs: []digest.Digest{"sha256:00"}},
		History:  []imgspecv1.History{{CreatedBy: "base"}},
	}
	tests := []struct {
		name       string
		base       *imgspecv1.Image
		wantArch   string
		wantDiffs  []digest.Digest
		wantLabels map[string]string
		history    int
	}{
		{"on a base", base, "arm64", []digest.Digest{"sha256:00", "sha256:aa", "sha256:bb"},
			map[string]string{"containers.bootc": "1", "kept": "seed", "seed": "yes"}, 3},
		{"without a base", nil, "", []digest.Digest{"sha256:aa", "sha256:bb"}, map[string]string{"kept": "seed", "seed": "yes"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := imageConfig(tc.base, map[string]string{"seed": "yes", "kept": "seed"}, layers, created, "c")
			if tc.wantArch != "" && cfg.Architecture != tc.wantArch {
				t.Errorf("architecture %q, want the base's %q", cfg.Architecture, tc.wantArch)
			}
			if !reflect.DeepEqual(cfg.RootFS.DiffIDs, tc.wantDiffs) || !reflect.DeepEqual(cfg.Config.Labels, tc.wantLabels) || len(cfg.History) != tc.history {
				t.Errorf("config: diff IDs %v, labels %v, %d history entries; want %v, %v, %d", cfg.RootFS.DiffIDs, cfg.Config.Labels, len(cfg.History), tc.wantDiffs, tc.wantLabels, tc.history)
			}
			if !cfg.Created.Equal(created) || cfg.History[len(cfg.History)-1].CreatedBy != "seedbuild create: etc" {
				t.Errorf("created %v, last history %+v", cfg.Created, cfg.History[len(cfg.History)-1])
			}
		})
	}
	// The base's own config is left as it was.
	if len(base.RootFS.DiffIDs) != 1 || base.Config.Labels["kept"] != "base" || len(base.History) != 1 {
		t.Errorf("imageConfig changed the base's config: %+v", base)
	}
}

func TestSeedManifest(t *testing.T) {
	cfg := imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: "sha256:cc", Size: 3}
	base := &imgspecv1.Manifest{Layers: []imgspecv1.Descriptor{{Digest: "sha256:00"}}, Annotations: map[string]string{"base": "x"}}
	layers := []namedLayer{{name: "var", layerResult: layerResult{desc: imgspecv1.Descriptor{Digest: "sha256:aa"}}}}
	for _, tc := range []struct {
		base        *imgspecv1.Manifest
		annotations map[string]string
		want        []digest.Digest
	}{
		{base, map[string]string{"seed": "y"}, []digest.Digest{"sha256:00", "sha256:aa"}},
		{nil, nil, []digest.Digest{"sha256:aa"}},
	} {
		mf := seedManifest(tc.base, cfg, layers, tc.annotations)
		var got []digest.Digest
		for _, l := range mf.Layers {
			got = append(got, l.Digest)
		}
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(mf.Config, cfg) || !reflect.DeepEqual(mf.Annotations, tc.annotations) || mf.MediaType != imgspecv1.MediaTypeImageManifest {
			t.Errorf("seedManifest = %+v; want layers %v and only the seed's annotations %v", mf, tc.want, tc.annotations)
		}
	}
}

// TestWriteArchive writes a seed without a base as an oci-archive, then one
// built on that archive (read in place), and has containers/image copy the
// second whole, which checks every blob against its digest.
func TestWriteArchive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	staged, err := newStagingImages(filepath.Join(dir, "stage"))
	if err != nil {
		t.Fatal(err)
	}
	layer := func(name, content string) namedLayer {
		r, err := staged.writeLayer(Gzip, func(w io.Writer) error {
			_, err := io.WriteString(w, strings.Repeat(content, 1000))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return namedLayer{name: name, layerResult: r}
	}
	first := []namedLayer{layer("one", "a"), layer("two", "b")}
	created := time.Unix(1700000000, 0).UTC()
	img, err := newSeedImage(imageConfig(nil, map[string]string{"l": "1"}, first, created, "c"), nil, first, nil, staged)
	if err != nil {
		t.Fatal(err)
	}
	basePath := filepath.Join(dir, "base.tar")
	if err := writeArchive(ctx, img, basePath, "base"); err != nil {
		t.Fatal(err)
	}
	baseRef, err := archive.ParseReference(basePath + ":base")
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := signature.NewPolicyContext(&signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}})
	base, err := openBase(ctx, baseRef, &types.SystemContext{}, pc, filepath.Join(dir, "base-stage"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if base.digest != img.manifestDescriptor().Digest || len(base.manifest.Layers) != 2 {
		t.Fatalf("the archive read back: digest %s, %d layers; want %s and 2", base.digest, len(base.manifest.Layers), img.manifestDescriptor().Digest)
	}
	second := []namedLayer{layer("three", "c")}
	seed, err := newSeedImage(imageConfig(&base.config, map[string]string{"s": "2"}, second, created, "c"), base, second, map[string]string{"a": "b"}, staged)
	if err != nil {
		t.Fatal(err)
	}
	seedPath := filepath.Join(dir, "seed.tar")
	if err := writeArchive(ctx, seed, seedPath, ""); err != nil {
		t.Fatal(err)
	}
	src, _ := archive.ParseReference(seedPath)
	dst, _ := directory.NewReference(filepath.Join(dir, "copy"))
	if _, err := copy.Image(ctx, pc, dst, src, &copy.Options{}); err != nil {
		t.Fatalf("copying the written archive: %v", err)
	}
	again := filepath.Join(dir, "again.tar")
	if err := writeArchive(ctx, seed, again, ""); err != nil {
		t.Fatal(err)
	}
	if a, b := fileDigest(t, seedPath), fileDigest(t, again); a != b {
		t.Errorf("the same seed wrote two different archives: %s, %s", a, b)
	}
	// Written early (the base's layers first, while the rest is made), the
	// archive is the same, and appears only when finished.
	earlyPath := filepath.Join(dir, "early.tar")
	earlyRef, _ := archive.ParseReference(earlyPath)
	e := startArchive(ctx, base, []types.ImageReference{src, earlyRef}, 1)
	if e.err != nil {
		t.Fatal(e.err)
	}
	if _, err := os.Stat(earlyPath); err == nil {
		t.Errorf("the early archive is at its name before it is finished")
	}
	if err := e.finish(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if a, b := fileDigest(t, seedPath), fileDigest(t, earlyPath); a != b {
		t.Errorf("the archive written early differs from the one written at once: %s, %s", b, a)
	}
	// A layer neither staged nor in the base fails the write.
	missing := seed.manifest.Layers[0]
	missing.Digest = digest.FromString("in neither")
	seed.manifest.Layers = []imgspecv1.Descriptor{missing}
	if err := writeArchive(ctx, seed, filepath.Join(dir, "bad.tar"), ""); err == nil {
		t.Errorf("writing a seed whose layer is neither staged nor in the base succeeded")
	}
}

func fileDigest(t *testing.T, path string) digest.Digest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := digest.FromReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
