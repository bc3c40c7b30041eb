package seedimage

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"
)

// TestUnpackSkipLayerAndCheck leaves a layer out (a corrupt one: it is not
// even read), and checks that Check sees each entry's path with the
// symlinks above it followed, and that its error stops the unpack.
func TestUnpackSkipLayerAndCheck(t *testing.T) {
	l0 := layerOf(t, dirEntry("var", 0o755), dirEntry("var/opt", 0o755), entrySpec{name: "opt", typ: tar.TypeSymlink, link: "var/opt"})
	l1 := layerOf(t, dirEntry("var", 0o755), entrySpec{name: "var/lib/db", data: "state"})
	l2 := layerOf(t, entrySpec{name: "opt/tool", data: "x"}, entrySpec{name: "usr/bin/a", data: "a"})
	ctx := context.Background()
	sys := &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}
	// The archive's first layer is corrupt; it is the one left out here.
	ref := archiveRef(t, archiveOfLayers(true, l1, l0, l2))
	var seen []string
	root := filepath.Join(t.TempDir(), "root")
	_, err := Unpack(ctx, ref, sys, root, UnpackOptions{
		SkipLayer: func(i int) bool { return i == 0 },
		Check:     func(h *tar.Header, rel string) error { seen = append(seen, rel); return nil },
	})
	if err != nil {
		t.Fatalf("Unpack() leaving the corrupt layer out = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/db")); !os.IsNotExist(err) {
		t.Errorf("the layer left out was unpacked: var/lib/db: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "var/opt/tool")); err != nil || string(data) != "x" {
		t.Errorf("var/opt/tool (through the opt symlink) reads %q, %v", data, err)
	}
	want := []string{"var", "var/opt", "opt", "var/opt/tool", "usr/bin/a"}
	if !slices.Equal(seen, want) {
		t.Errorf("Check saw %q, want %q", seen, want)
	}

	stop := errors.New("stop here")
	root = filepath.Join(t.TempDir(), "root")
	_, err = Unpack(ctx, ref, sys, root, UnpackOptions{
		SkipLayer: func(i int) bool { return i == 0 },
		Check: func(h *tar.Header, rel string) error {
			if rel == "var/opt/tool" {
				return stop
			}
			return nil
		},
	})
	if !errors.Is(err, stop) {
		t.Errorf("Unpack() with a Check that fails = %v, want its error", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/bin/a")); !os.IsNotExist(err) {
		t.Errorf("the unpack went on after Check failed: usr/bin/a: %v", err)
	}
}

// TestReadLayerInBackground reads one layer, and only it.
func TestReadLayerInBackground(t *testing.T) {
	l0 := layerOf(t, entrySpec{name: "a", data: "0"})
	l1 := layerOf(t, entrySpec{name: "b", data: "1"})
	ctx := context.Background()
	sys := &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}
	// The first layer is corrupt: reading the second must not touch it.
	ref := archiveRef(t, archiveOfLayers(true, l0, l1))
	var names []string
	err := ReadLayerInBackground(ctx, ref, sys, 1, func(r io.Reader) error {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			names = append(names, h.Name)
		}
	})
	if err != nil || !slices.Equal(names, []string{"b"}) {
		t.Errorf("ReadLayerInBackground(1) read %q, %v; want [b]", names, err)
	}
	if err := ReadLayerInBackground(ctx, ref, sys, 2, func(io.Reader) error { return nil }); err == nil {
		t.Errorf("ReadLayerInBackground(2) of a 2-layer image succeeded")
	}
	if err := ReadLayerInBackground(ctx, ref, sys, 0, func(io.Reader) error { return nil }); err == nil {
		t.Errorf("ReadLayerInBackground(0) of a corrupt layer succeeded")
	}
}

func TestNameLayers(t *testing.T) {
	hist := func(created string, empty bool) imgspecv1.History {
		return imgspecv1.History{CreatedBy: created, EmptyLayer: empty}
	}
	for _, tc := range []struct {
		name    string
		layers  int
		history []imgspecv1.History
		want    []string
	}{
		{"one to one", 2, []imgspecv1.History{hist("base", false), hist("seedbuild create: var", false)}, []string{"base", "seedbuild create: var"}},
		{"empty layers skipped", 2, []imgspecv1.History{hist("base", false), hist("ENV x=1", true), hist("seedbuild create: var", false)}, []string{"base", "seedbuild create: var"}},
		{"fewer entries: none named", 3, []imgspecv1.History{hist("base", false), hist("seedbuild create: var", false)}, []string{"", "", ""}},
		{"more entries: none named", 1, []imgspecv1.History{hist("base", false), hist("seedbuild create: var", false)}, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := make([]Layer, tc.layers)
			nameLayers(layers, tc.history)
			var got []string
			for _, l := range layers {
				got = append(got, l.CreatedBy)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("nameLayers() = %q, want %q", got, tc.want)
			}
		})
	}
}
