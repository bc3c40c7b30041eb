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

// entry is a tar entry and the path the unpack resolved it to.
type entry struct {
	h   *tar.Header
	rel string
}

// checkLast runs check over the entries, all but the last of which must
// pass, and checks that the last passes when ok says, or else fails with
// errLayersInOrder.
func checkLast(t *testing.T, check func(*tar.Header, string) error, entries []entry, ok bool) {
	t.Helper()
	var err error
	for i, e := range entries {
		err = check(e.h, e.rel)
		if i < len(entries)-1 && err != nil {
			t.Fatalf("check(%q) = %v before the entry tested", e.rel, err)
		}
	}
	if (err == nil) != ok || (err != nil && !errors.Is(err, errLayersInOrder)) {
		t.Errorf("the last entry: %v, want allowed %v", err, ok)
	}
}

func TestVarLayerChecks(t *testing.T) {
	dir := func(rel string) entry { return entry{&tar.Header{Typeflag: tar.TypeDir, Name: rel}, rel} }
	file := func(rel string) entry { return entry{&tar.Header{Typeflag: tar.TypeReg, Name: rel}, rel} }
	link := func(rel, to string) entry {
		return entry{&tar.Header{Typeflag: tar.TypeLink, Name: rel, Linkname: to}, rel}
	}
	// Through a symlink: named one way, resolved another.
	via := func(name, rel string) entry { return entry{&tar.Header{Typeflag: tar.TypeReg, Name: name}, rel} }
	for _, tc := range []struct {
		name string
		// entries of the /var layer: all but the last must pass.
		entries []entry
		ok      bool
	}{
		{"the var folder first", []entry{dir("var")}, true},
		{"files in listed folders", []entry{dir("var"), dir("var/lib"), file("var/lib/db")}, true},
		{"a file right under var, var unlisted", []entry{file("var/x")}, true},
		{"the var folder after another entry", []entry{file("var/x"), dir("var")}, false},
		{"a file as var", []entry{file("var")}, false},
		{"a file outside var", []entry{dir("var"), file("usr/bin/x")}, false},
		{"a name that starts like var", []entry{file("variant")}, false},
		{"the root", []entry{dir("")}, false},
		{"an unlisted folder", []entry{dir("var"), file("var/lib/db")}, false},
		{"through a symlink out of var", []entry{dir("var"), via("var/run/x", "run/x")}, false},
		{"a whiteout", []entry{dir("var"), dir("var/lib"), file("var/lib/.wh.db")}, false},
		{"an opaque folder", []entry{dir("var"), dir("var/lib"), file("var/lib/.wh..wh..opq")}, false},
		{"a hard link to a file of the layer", []entry{dir("var"), file("var/a"), link("var/b", "var/a")}, true},
		{"a hard link, ./-named", []entry{dir("var"), file("var/a"), link("var/b", "./var/a")}, true},
		{"a hard link to a file of another layer", []entry{dir("var"), link("var/b", "var/a")}, false},
		{"a hard link out of var", []entry{dir("var"), link("var/b", "usr/bin/x")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newVarLayerCheck()
			checkLast(t, c.check, tc.entries, tc.ok)
			select {
			case <-c.first:
			default:
				t.Errorf("first is not closed after %d entries", len(tc.entries))
			}
		})
	}
	later := []struct {
		name    string
		entries []entry
		ok      bool
	}{
		{"a file outside var", []entry{file("usr/bin/x")}, true},
		{"the root", []entry{dir("")}, true},
		{"a name that starts like var", []entry{file("variant")}, true},
		{"a whiteout elsewhere", []entry{file("etc/.wh.x")}, true},
		{"var itself", []entry{dir("var")}, false},
		{"a file in var", []entry{file("var/lib/x")}, false},
		{"named in var, resolved out of it", []entry{via("var/run/x", "run/x")}, false},
		{"named out of var, resolved into it", []entry{via("opt/x", "var/opt/x")}, false},
		{"a whiteout of var", []entry{file(".wh.var")}, false},
		{"an opaque root", []entry{file(".wh..wh..opq")}, false},
		{"a hard link to a file of a later layer", []entry{file("usr/a"), link("usr/b", "usr/a")}, true},
		{"a hard link to a file of an earlier layer", []entry{link("usr/b", "usr/a")}, false},
		{"a hard link into var", []entry{link("usr/b", "var/a")}, false},
	}
	for _, tc := range later {
		t.Run("later/"+tc.name, func(t *testing.T) {
			c := &laterLayersCheck{wrote: map[string]bool{}}
			checkLast(t, c.check, tc.entries, tc.ok)
		})
	}
}

// TestVarLayerAgrees: the /var layer's own entry for /var must leave the
// other layers' /var as it is, or the layers are applied in order.
func TestVarLayerAgrees(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	for _, tc := range []struct {
		name   string
		varDir *tar.Header
		noVar  bool
		ok     bool
	}{
		{"no entry for /var", nil, false, true},
		{"the same owner and mode", &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid}, false, true},
		{"another mode", &tar.Header{Typeflag: tar.TypeDir, Mode: 0o700, Uid: uid, Gid: gid}, false, false},
		{"another owner", &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid + 1, Gid: gid}, false, false},
		{"an xattr the other layers' /var lacks", &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid,
			PAXRecords: map[string]string{"SCHILY.xattr.user.seedbuild-test": "x"}}, false, false},
		{"the other layers have no /var", &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if !tc.noVar {
				if err := os.Mkdir(filepath.Join(root, "var"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(root, "var"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			a := &asideLayer{check: newVarLayerCheck(), done: make(chan struct{})}
			a.check.varDir = tc.varDir
			close(a.check.first)
			err := a.agrees(root)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errLayersInOrder)) {
				t.Errorf("agrees() = %v, want agreeing %v", err, tc.ok)
			}
		})
	}
	// A failure of the aside unpack already known is said.
	a := &asideLayer{check: newVarLayerCheck(), done: make(chan struct{}), err: errLayersInOrder}
	close(a.done)
	if err := a.agrees(t.TempDir()); !errors.Is(err, errLayersInOrder) {
		t.Errorf("agrees() after the aside unpack failed = %v", err)
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

// TestLabelPathAtUnpack checks which unpacked files the unpack labels
// ahead of the commit, and as which path: not /etc, whose place in the
// commit depends on the host's ostree, nor /var, which is not committed.
func TestLabelPathAtUnpack(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want string
		ok   bool
	}{
		{"usr/bin/bash", "/usr/bin/bash", true},
		{"opt/site/tool", "/opt/site/tool", true},
		{"etcetera", "/etcetera", true},
		{"etc", "", false},
		{"etc/hosts", "", false},
		{"usr/etc/hosts", "", false},
		{"var/lib/x", "", false},
	} {
		got, ok := labelPathAtUnpack(tc.rel)
		if got != tc.want || ok != tc.ok {
			t.Errorf("labelPathAtUnpack(%q) = %q, %v; want %q, %v", tc.rel, got, ok, tc.want, tc.ok)
		}
	}
}
