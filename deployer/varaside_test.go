package deployer

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
)

func TestVarLayerChecks(t *testing.T) {
	dir := func() *tar.Header { return &tar.Header{Typeflag: tar.TypeDir} }
	file := func() *tar.Header { return &tar.Header{Typeflag: tar.TypeReg} }
	link := func(to string) *tar.Header { return &tar.Header{Typeflag: tar.TypeLink, Linkname: to} }
	for _, tc := range []struct {
		name string
		h    *tar.Header
		rel  string
		// onlyVar: may the /var layer hold it; later: may a later layer.
		onlyVar, later bool
	}{
		{"the var folder", dir(), "var", true, false},
		{"a file in var", file(), "var/lib/db", true, false},
		{"a folder in var", dir(), "var/lib", true, false},
		{"a file outside var", file(), "usr/bin/x", false, true},
		{"a name that starts like var", file(), "variant", false, true},
		{"the root", dir(), "", false, true},
		{"a file as var", file(), "var", false, false},
		{"a whiteout in var", file(), "var/lib/.wh.db", false, false},
		{"an opaque folder in var", file(), "var/lib/.wh..wh..opq", false, false},
		{"a whiteout of var", file(), ".wh.var", false, false},
		{"an opaque root", file(), ".wh..wh..opq", false, false},
		{"a whiteout elsewhere", file(), "etc/.wh.x", false, true},
		{"a hard link inside var", link("var/lib/a"), "var/lib/b", true, false},
		{"a hard link from var out of it", link("usr/bin/x"), "var/lib/b", false, false},
		{"a hard link into var", link("var/lib/a"), "usr/bin/b", false, false},
		{"a hard link into var, ./-named", link("./var/lib/a"), "usr/bin/b", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := onlyVar(tc.h, tc.rel)
			if (err == nil) != tc.onlyVar || (err != nil && !errors.Is(err, errLayersInOrder)) {
				t.Errorf("onlyVar(%q) = %v, want allowed %v", tc.rel, err, tc.onlyVar)
			}
			err = touchesVar(tc.h, tc.rel)
			if (err == nil) != tc.later || (err != nil && !errors.Is(err, errLayersInOrder)) {
				t.Errorf("touchesVar(%q) = %v, want allowed %v", tc.rel, err, tc.later)
			}
		})
	}
}

func TestVarLayerIndex(t *testing.T) {
	native := labels.Seed{FormatVersion: labels.FormatNative}
	layers := func(made ...string) []seedimage.Layer {
		var out []seedimage.Layer
		for _, m := range made {
			out = append(out, seedimage.Layer{CreatedBy: m})
		}
		return out
	}
	v := labels.LayerHistory + labels.VarLayer
	for _, tc := range []struct {
		name string
		desc seedimage.Description
		want int
	}{
		{"create's native seed", seedimage.Description{Seed: native, Layers: layers("base", v, "seedbuild create: etc", "seedbuild create: seed")}, 1},
		{"built on by a Containerfile", seedimage.Description{Seed: native, Layers: layers("base", v, "seedbuild create: etc", "seedbuild create: seed", "RUN x")}, 1},
		{"no history", seedimage.Description{Seed: native, Layers: layers("", "", "")}, -1},
		{"the bottom layer is never it", seedimage.Description{Seed: native, Layers: layers(v)}, -1},
		{"not a native seed", seedimage.Description{Layers: layers("base", v)}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := varLayerIndex(&tc.desc); got != tc.want {
				t.Errorf("varLayerIndex() = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMoveVarInto moves an unpacked /var over the stateroot's: files
// replace, folders merge, and what only the stateroot has stays.
func TestMoveVarInto(t *testing.T) {
	src, dest := filepath.Join(t.TempDir(), "var"), t.TempDir()
	for p, data := range map[string]string{"lib/db": "new", "lib/new": "n", "cache/c": "c"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), []byte(data), 0o644)
	}
	for p, data := range map[string]string{"lib/db": "old", "lib/kept": "k", "tmp/t": "t"} {
		os.MkdirAll(filepath.Join(dest, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dest, p), []byte(data), 0o644)
	}
	if err := moveVarInto(src, dest, nil); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"lib/db": "new", "lib/new": "n", "cache/c": "c", "lib/kept": "k", "tmp/t": "t"} {
		if data, err := os.ReadFile(filepath.Join(dest, p)); err != nil || string(data) != want {
			t.Errorf("%s reads %q, %v; want %q", p, data, err, want)
		}
	}
	if err := moveVarInto(filepath.Join(t.TempDir(), "absent"), dest, nil); err != nil {
		t.Errorf("moveVarInto() of a missing folder = %v", err)
	}
}
