package seedimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/selabel"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// entrySpec is one tar entry of a test layer.
type entrySpec struct {
	name, link string
	typ        byte
	mode       int64
	uid        int
	data       string
	xattrs     map[string]string
}

// layerOf is a gzip layer of the entries.
func layerOf(t *testing.T, entries ...entrySpec) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid,
			Size: int64(len(e.data)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "git archive"}}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()
	return gz.Bytes()
}

func dirEntry(name string, mode int64) entrySpec {
	return entrySpec{name: name, typ: tar.TypeDir, mode: mode}
}

// unpackLayers unpacks an OCI archive of the layers into a new folder.
func unpackLayers(t *testing.T, o UnpackOptions, layers ...[]byte) (string, Unpacked, error) {
	t.Helper()
	ref := archiveRef(t, archiveOfLayers(false, layers...))
	root := filepath.Join(t.TempDir(), "root")
	u, err := Unpack(context.Background(), ref, &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}, root, o)
	return root, u, err
}

// TestUnpackLayers applies layers with every kind of entry and change, and
// checks what each path ends as.
func TestUnpackLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	big := strings.Repeat("0123456789abcdef", (unpackInFlight/4)/16+1)
	l1 := layerOf(t,
		dirEntry("usr/", 0o755), dirEntry("usr/lib/", 0o755), dirEntry("var/", 0o755),
		entrySpec{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		entrySpec{name: "esc", typ: tar.TypeSymlink, link: "/"},
		entrySpec{name: "usr/bin/su", mode: 0o4755, data: "suid\n"},
		entrySpec{name: "usr/lib/owned", uid: 1000, data: "mine\n", xattrs: map[string]string{"user.b": "2", "user.a": "1"}},
		entrySpec{name: "usr/lib/big", data: big},
		entrySpec{name: "usr/lib/hard", typ: tar.TypeLink, link: "usr/lib/owned"},
		entrySpec{name: "var/gone", data: "x"},
		dirEntry("var/dir/", 0o700), entrySpec{name: "var/dir/a", data: "a"},
		dirEntry("var/opq/", 0o755), entrySpec{name: "var/opq/old", data: "old"},
		entrySpec{name: "var/becomes-dir", data: "file"},
		dirEntry("var/becomes-file/", 0o755), entrySpec{name: "var/becomes-file/x", data: "x"},
		entrySpec{name: "var/fifo", typ: tar.TypeFifo},
	)
	l2 := layerOf(t,
		entrySpec{name: "var/.wh.gone"}, entrySpec{name: "var/.wh.dir"},
		dirEntry("var/opq/", 0o755), entrySpec{name: "var/opq/.wh..wh..opq"}, entrySpec{name: "var/opq/new", data: "new"},
		dirEntry("var/becomes-dir/", 0o750), entrySpec{name: "var/becomes-file", data: "now a file"},
		entrySpec{name: "lib/through-link", data: "via lib"},
		entrySpec{name: "esc/etc/escaped", data: "inside"},
		entrySpec{name: "../../outside", data: "clamped"},
		entrySpec{name: "usr/bin/su", mode: 0o4755, data: "suid again\n"},
	)
	known := ostreerepo.NewKnown()
	root, u, err := unpackLayers(t, UnpackOptions{Known: known}, l1, l2)
	if err != nil {
		t.Fatalf("Unpack() = %v", err)
	}
	type want struct {
		path    string
		content string // "" for none; "-" for absent
		mode    uint32
		uid     uint32
	}
	for _, w := range []want{
		{"usr/bin/su", "suid again\n", unix.S_IFREG | 0o4755, 0},
		{"usr/lib/owned", "mine\n", unix.S_IFREG | 0o644, 1000},
		{"usr/lib/big", big, unix.S_IFREG | 0o644, 0},
		{"usr/lib/through-link", "via lib", unix.S_IFREG | 0o644, 0},
		{"etc/escaped", "inside", unix.S_IFREG | 0o644, 0},
		{"outside", "clamped", unix.S_IFREG | 0o644, 0},
		{"var/gone", "-", 0, 0},
		{"var/dir", "-", 0, 0},
		{"var/opq/old", "-", 0, 0},
		{"var/opq/new", "new", unix.S_IFREG | 0o644, 0},
		{"var/becomes-dir", "", unix.S_IFDIR | 0o750, 0},
		{"var/becomes-file", "now a file", unix.S_IFREG | 0o644, 0},
		{"var/fifo", "", unix.S_IFIFO | 0o644, 0},
		{"lib", "", unix.S_IFLNK | 0o777, 0},
	} {
		t.Run(w.path, func(t *testing.T) {
			p := filepath.Join(root, w.path)
			var st unix.Stat_t
			err := unix.Lstat(p, &st)
			if w.content == "-" {
				if err == nil {
					t.Errorf("%s is there; the layers removed it", w.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode != w.mode || st.Uid != w.uid {
				t.Errorf("%s: mode %o uid %d, want %o uid %d", w.path, st.Mode, st.Uid, w.mode, w.uid)
			}
			if st.Mtim.Sec != 1700000000 {
				t.Errorf("%s: mtime %d, want the layer's 1700000000", w.path, st.Mtim.Sec)
			}
			if w.content != "" {
				if data, err := os.ReadFile(p); err != nil || string(data) != w.content {
					t.Errorf("%s reads %.20q..., %v; want %.20q...", w.path, data, err, w.content)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "outside")); err == nil {
		t.Errorf("an entry named ../../outside was written outside the root")
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(root, "usr/lib/owned"), &a)
	unix.Lstat(filepath.Join(root, "usr/lib/hard"), &b)
	if a.Ino != b.Ino {
		t.Errorf("usr/lib/hard is not a hard link of usr/lib/owned")
	}
	if v, err := unix.Lgetxattr(filepath.Join(root, "usr/lib/owned"), "user.a", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("usr/lib/owned lost its xattr user.a: %v", err)
	}
	if want := int64(len(big)) + 60; u.Size < want {
		t.Errorf("Unpacked.Size = %d, want at least %d", u.Size, want)
	}
	if known.Len() < 8 {
		t.Errorf("Known holds %d checksums, want one for each file and symlink", known.Len())
	}
}

// TestUnpackChecksumsMatchOstree unpacks the same layers twice: ostree
// commit of one tree and a commit of the other with the checksums the
// unpack computed must give the same commit.
func TestUnpackChecksumsMatchOstree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Fatal("ostree is not installed (make test installs it)")
	}
	layers := [][]byte{
		layerOf(t, dirEntry("usr/", 0o755), dirEntry("usr/bin/", 0o755),
			entrySpec{name: "usr/bin/tool", mode: 0o755, uid: 7, data: "#!/bin/sh\n", xattrs: map[string]string{"user.z": "z", "user.a": "a"}},
			entrySpec{name: "usr/bin/link", typ: tar.TypeSymlink, link: "tool", xattrs: map[string]string{"trusted.x": "on a symlink"}},
			entrySpec{name: "usr/bin/again", typ: tar.TypeLink, link: "usr/bin/tool"},
			entrySpec{name: "usr/empty"}),
		layerOf(t, entrySpec{name: "usr/bin/tool", mode: 0o750, data: "replaced\n"}),
	}
	var sums []string
	for _, withKnown := range []bool{false, true} {
		dir := t.TempDir()
		repo := filepath.Join(dir, "repo")
		if out, err := exec.Command("ostree", "init", "--mode=bare", "--repo="+repo).CombinedOutput(); err != nil {
			t.Fatalf("ostree init: %v\n%s", err, out)
		}
		var known *ostreerepo.Known
		if withKnown {
			known = ostreerepo.NewKnown()
		}
		o := UnpackOptions{Known: known}
		if withKnown {
			// As the deployer unpacks: the files get the objects' times.
			o.ObjectTimes = func(string) bool { return true }
		}
		root, _, err := unpackLayers(t, o, layers...)
		if err != nil {
			t.Fatal(err)
		}
		var sum string
		if withKnown {
			sum, err = ostreerepo.Commit(context.Background(), repo, root, "t", "", known)
		} else {
			var out []byte
			out, err = exec.Command("ostree", "commit", "--repo="+repo, "--consume", "--branch=t", "--tree=dir="+root).CombinedOutput()
			sum = strings.TrimSpace(string(out))
		}
		if err != nil {
			t.Fatalf("commit: %v %s", err, sum)
		}
		ls, err := exec.Command("ostree", "ls", "-R", "-C", "-X", "--repo="+repo, sum).CombinedOutput()
		if err != nil {
			t.Fatalf("ostree ls: %v\n%s", err, ls)
		}
		sums = append(sums, string(ls))
	}
	if sums[0] != sums[1] {
		t.Errorf("the trees differ; ostree commit:\n%s\nCommit with the unpack's checksums:\n%s", sums[0], sums[1])
	}
}

// TestUnpackObjectTimes checks that the files and symlinks ObjectTimes
// names get the times 0 of ostree's objects, and the rest the layer's.
func TestUnpackObjectTimes(t *testing.T) {
	layer := layerOf(t, dirEntry("usr/", 0o755), dirEntry("var/", 0o755),
		entrySpec{name: "usr/tool", data: "tool\n"},
		entrySpec{name: "usr/link", typ: tar.TypeSymlink, link: "tool"},
		entrySpec{name: "var/state", data: "state\n"},
		entrySpec{name: "var/link", typ: tar.TypeSymlink, link: "state"})
	notVar := func(rel string) bool { return rel != "var" && !strings.HasPrefix(rel, "var/") }
	layerTime := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name    string
		objects func(string) bool
		want    map[string]time.Time
	}{
		{"unset", nil, map[string]time.Time{"usr/tool": layerTime, "usr/link": layerTime, "var/state": layerTime, "var/link": layerTime}},
		{"all but var", notVar, map[string]time.Time{"usr/tool": epoch, "usr/link": epoch, "var/state": layerTime, "var/link": layerTime}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _, err := unpackLayers(t, UnpackOptions{ObjectTimes: tc.objects, Known: ostreerepo.NewKnown()}, layer)
			if err != nil {
				t.Fatal(err)
			}
			for rel, want := range tc.want {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
					t.Fatal(err)
				}
				if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
					t.Errorf("%s: mtime %v, want %v", rel, got, want)
				}
				if got := time.Unix(st.Atim.Unix()); !got.Equal(want) {
					t.Errorf("%s: atime %v, want %v", rel, got, want)
				}
			}
		})
	}
}

// TestUnpackLabelLoss unpacks a labelled layer onto ramfs, which keeps no
// xattrs: it fails naming the path, unless told to go on.
func TestUnpackLabelLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting ramfs needs root (make test runs as root)")
	}
	layer := labelledLayer(t, [][2]string{{"etc/", "system_u:object_r:etc_t:s0"}, {"etc/f", "system_u:object_r:etc_t:s0"}})
	for _, goOn := range []bool{false, true} {
		ram := t.TempDir()
		if err := unix.Mount("ramfs", ram, "ramfs", 0, ""); err != nil {
			t.Fatalf("mounting ramfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(ram, unix.MNT_DETACH) })
		var lost []string
		o := UnpackOptions{}
		if goOn {
			o.LabelLost = func(p string, _ error) error { lost = append(lost, p); return nil }
		}
		ref := archiveRef(t, archiveOfLayers(false, layer))
		u, err := Unpack(context.Background(), ref, &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}, filepath.Join(ram, "root"), o)
		switch {
		case !goOn && (err == nil || !strings.Contains(err.Error(), filepath.Join(ram, "root/etc"))):
			t.Errorf("Unpack() onto ramfs = %v, want an error naming the path", err)
		case goOn && (err != nil || len(lost) != 2 || u.Labels != 2):
			t.Errorf("Unpack() going on = %v, lost %v, %d labels; want nil, both paths and 2", err, lost, u.Labels)
		}
	}
}

// TestUnpackRefusesContent: dest must start empty.
func TestUnpackRefusesContent(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "x"), nil, 0o644)
	ref := archiveRef(t, archiveOfLayers(false, layerOf(t, entrySpec{name: "a", data: "a"})))
	if _, err := Unpack(context.Background(), ref, &types.SystemContext{BigFilesTemporaryDir: t.TempDir()}, root, UnpackOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Unpack() into a folder with content = %v, want a refusal", err)
	}
}

// TestUnpackStaysInside gives symlinks that lead out of dest, to a folder
// outside it, and entries through them, to a layer and to a tarball
// extracted into a folder with content: each is refused or lands inside
// dest, and nothing outside changes.
func TestUnpackStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "b"), 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host's"), 0o600)
	old := time.Unix(1600000000, 0)
	os.Chtimes(filepath.Join(outside, "b"), old, old)
	toOutside := entrySpec{name: "var/x", typ: tar.TypeSymlink, link: outside}
	attacks := map[string][]entrySpec{
		"file through an absolute symlink":     {dirEntry("var/", 0o755), toOutside, {name: "var/x/evil", data: "escaped"}},
		"file deeper through it":               {dirEntry("var/", 0o755), toOutside, {name: "var/x/b/evil", data: "escaped"}},
		"file through a relative symlink":      {dirEntry("var/", 0o755), {name: "var/rel", typ: tar.TypeSymlink, link: "../../../../../../../.." + outside}, {name: "var/rel/evil", data: "escaped"}},
		"hard link to a file through it":       {dirEntry("var/", 0o755), toOutside, {name: "var/h", typ: tar.TypeLink, link: "var/x/secret"}},
		"folder times after its parent turned": {dirEntry("a/", 0o755), dirEntry("a/b/", 0o755), {name: "a", typ: tar.TypeSymlink, link: outside}},
	}
	for name, entries := range attacks {
		for _, mode := range []string{"layer", "tarball"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				if mode == "layer" {
					unpackLayers(t, UnpackOptions{}, layerOf(t, entries...))
				} else {
					dest := filepath.Join(t.TempDir(), "stateroot")
					os.MkdirAll(filepath.Join(dest, "var/x/b"), 0o755) // the tarball's var/x replaces it
					archive := filepath.Join(t.TempDir(), "var.tgz")
					os.WriteFile(archive, layerOf(t, entries...), 0o644)
					UnpackArchive(context.Background(), archive, dest, UnpackOptions{})
				}
				for _, n := range []string{"evil", "b/evil"} {
					if _, err := os.Lstat(filepath.Join(outside, n)); err == nil {
						os.Remove(filepath.Join(outside, n))
						t.Errorf("%s was written outside dest", n)
					}
				}
				var st unix.Stat_t
				if unix.Stat(filepath.Join(outside, "secret"), &st); st.Nlink != 1 {
					t.Errorf("a hard link to the file outside was made (%d links)", st.Nlink)
				}
				if fi, err := os.Stat(filepath.Join(outside, "b")); err != nil || !fi.ModTime().Equal(old) {
					t.Errorf("the folder outside got new times: %v, %v", fi.ModTime(), err)
				}
			})
		}
	}
}

// TestUnpackOddEntries: a pax global header is no file; a whiteout that
// names nothing is refused, not taken for its folder.
func TestUnpackOddEntries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	global := entrySpec{name: "pax_global_header", typ: tar.TypeXGlobalHeader}
	root, _, err := unpackLayers(t, UnpackOptions{}, layerOf(t, global, entrySpec{name: "a", data: "a"}))
	if err != nil {
		t.Fatalf("Unpack() of a layer with a pax global header = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "pax_global_header")); err == nil {
		t.Errorf("the pax global header was written as a file")
	}
	for _, name := range []string{"d/.wh.", "d/.wh..", "d/.wh..."} {
		_, _, err := unpackLayers(t, UnpackOptions{}, layerOf(t, dirEntry("d/", 0o755), entrySpec{name: "d/f", data: "f"}),
			layerOf(t, entrySpec{name: name}))
		if err == nil || !strings.Contains(err.Error(), "whiteout") {
			t.Errorf("Unpack() with the whiteout %q = %v, want a refusal", name, err)
		}
	}
}

// TestUnpackOpaqueAfterChildren: an opaque marker after entries of the
// same layer keeps those, and empties a folder the layer lists of what
// the layers below put there.
func TestUnpackOpaqueAfterChildren(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	l1 := layerOf(t, dirEntry("o/", 0o755), dirEntry("o/sub/", 0o755), entrySpec{name: "o/sub/old", data: "old"},
		entrySpec{name: "o/gone", data: "gone"}, dirEntry("o/deep/", 0o755), dirEntry("o/deep/er/", 0o755))
	l2 := layerOf(t, dirEntry("o/", 0o755), dirEntry("o/sub/", 0o755), entrySpec{name: "o/sub/new", data: "new"},
		entrySpec{name: "o/deep/er/f", data: "f"}, entrySpec{name: "o/.wh..wh..opq"})
	root, _, err := unpackLayers(t, UnpackOptions{}, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"o/sub/new": true, "o/deep/er/f": true, "o/sub/old": false, "o/gone": false} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s there: %v, want %v", p, err == nil, want)
		}
	}
}

// TestUnpackExtract: a file named in Extract is extracted into its folder
// straight from the layer, and not written; a later layer's copy replaces
// what the first gave; a corrupt one fails the unpack.
func TestUnpackExtract(t *testing.T) {
	repo := func(files ...string) string {
		var entries []entrySpec
		for _, f := range files {
			entries = append(entries, entrySpec{name: "./" + f, data: "content of " + f})
		}
		return string(layerOf(t, entries...))
	}
	corrupt := []byte(repo("objects/ab/cd.file"))
	corrupt[len(corrupt)-6] ^= 0xff // the gzip CRC
	tests := []struct {
		name    string
		layers  [][]byte
		want    []string // files in the extracted folder
		wantErr string
	}{
		{"one archive", [][]byte{layerOf(t, entrySpec{name: "ostree.tgz", data: repo("config", "objects/ab/cd.file")}, entrySpec{name: "var.tgz", data: "x"})},
			[]string{"config", "objects/ab/cd.file"}, ""},
		{"replaced by a later layer", [][]byte{
			layerOf(t, entrySpec{name: "ostree.tgz", data: repo("config", "old")}),
			layerOf(t, entrySpec{name: "ostree.tgz", data: repo("config", "new")})},
			[]string{"config", "new"}, ""},
		{"corrupt", [][]byte{layerOf(t, entrySpec{name: "ostree.tgz", data: string(corrupt)})}, nil, "ostree.tgz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			into := filepath.Join(t.TempDir(), "repo")
			root, _, err := unpackLayers(t, UnpackOptions{Extract: map[string]string{"ostree.tgz": into}}, tt.layers...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unpack = %v, want an error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(root, "ostree.tgz")); !os.IsNotExist(err) {
				t.Errorf("ostree.tgz was written into the root (%v), want it only extracted", err)
			}
			var got []string
			filepath.WalkDir(into, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					rel, _ := filepath.Rel(into, p)
					got = append(got, rel)
				}
				return nil
			})
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("extracted %v, want %v", got, tt.want)
			}
			for _, f := range tt.want {
				if data, _ := os.ReadFile(filepath.Join(into, f)); string(data) != "content of "+f {
					t.Errorf("%s holds %q", f, data)
				}
			}
		})
	}
}

// TestUnpackDiff writes one layer as an overlay diff: its files as they
// are, its whiteouts recorded (a 0/0 character device owned as the entry,
// the opaque xattr on the folder) and not applied; every entry is shown to
// OnEntry, and the stream is read to its end.
func TestUnpackDiff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners and make devices (make test runs as root)")
	}
	const opaque = "user.seedbuild-test.opaque"
	var layer bytes.Buffer
	zr, err := gzip.NewReader(bytes.NewReader(layerOf(t,
		dirEntry("d/", 0o750), entrySpec{name: "d/f", data: "content", uid: 7, mode: 0o640},
		entrySpec{name: "d/.wh.gone", uid: 9}, entrySpec{name: "o/.wh..wh..opq"},
		entrySpec{name: "o/kept", data: "k"}, entrySpec{name: "l", typ: tar.TypeLink, link: "d/f"},
		entrySpec{name: "s", typ: tar.TypeSymlink, link: "d/f"})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layer.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	layer.Write(make([]byte, 4096)) // padding after the tar's end
	dest := filepath.Join(t.TempDir(), "diff")
	var seen []string
	r := bytes.NewReader(layer.Bytes())
	if _, err := UnpackDiff(context.Background(), r, dest, opaque, UnpackOptions{OnEntry: func(h *tar.Header) { seen = append(seen, h.Name) }}); err != nil {
		t.Fatalf("UnpackDiff() = %v", err)
	}
	if r.Len() != 0 {
		t.Errorf("UnpackDiff left %d bytes of the stream unread", r.Len())
	}
	if want := []string{"d/", "d/f", "d/.wh.gone", "o/.wh..wh..opq", "o/kept", "l", "s"}; strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("OnEntry saw %q, want %q", seen, want)
	}
	stat := func(rel string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dest, rel), &st); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		return st
	}
	for _, c := range []struct {
		rel       string
		mode, uid uint32
	}{
		{"d", unix.S_IFDIR | 0o750, 0},
		{"d/f", unix.S_IFREG | 0o640, 7},
		{"d/gone", unix.S_IFCHR, 9},
		{"o", unix.S_IFDIR | 0o755, 0},
		{"o/kept", unix.S_IFREG | 0o644, 0},
		{"s", unix.S_IFLNK | 0o777, 0},
	} {
		if st := stat(c.rel); st.Mode != c.mode || st.Uid != c.uid || (c.mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev != 0) {
			t.Errorf("%s: mode %o uid %d rdev %d, want mode %o uid %d", c.rel, st.Mode, st.Uid, st.Rdev, c.mode, c.uid)
		}
	}
	if stat("l").Ino != stat("d/f").Ino {
		t.Errorf("l is not a hard link of d/f")
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dest, "o"), opaque, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("o's %s = %q, %v; want \"y\"", opaque, buf[:max(n, 0)], err)
	}
	if n, err := unix.Lgetxattr(filepath.Join(dest, "d"), opaque, buf); err == nil {
		t.Errorf("d, not opaque, has %s = %q", opaque, buf[:n])
	}
}

// policyEntries are the tar entries of the selabel package's test policy,
// as the image's etc/selinux, folders first; with local, its
// file_contexts.local is that instead.
func policyEntries(t *testing.T, local string) []entrySpec {
	t.Helper()
	src := "../internal/selabel/testdata"
	var out []entrySpec
	err := filepath.WalkDir(filepath.Join(src, "etc/selinux"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			out = append(out, dirEntry(rel+"/", 0o755))
			return nil
		}
		data, err := os.ReadFile(p)
		if strings.HasSuffix(rel, "file_contexts.local") && local != "" {
			data = []byte(local)
		}
		out = append(out, entrySpec{name: rel, data: string(data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return append([]entrySpec{dirEntry("etc/", 0o755)}, out...)
}

// TestUnpackGuessesPolicyLabels unpacks layers whose image carries an
// SELinux policy, with PolicyLabels as the deployer gives them, commits
// the root labelled by its policy as the deployer does, and checks that
// the commit took the files the unpack labelled from Known (and read the
// others), and that the tree is the one ostree commit --selinux-policy
// makes of the same layers.
func TestUnpackGuessesPolicyLabels(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners and labels (make test runs as root)")
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Fatal("ostree is not installed (make test installs it)")
	}
	usr := []entrySpec{dirEntry("usr/", 0o755), dirEntry("usr/bin/", 0o755),
		{name: "usr/bin/bash", mode: 0o755, data: "#!/bin/sh\n"},
		{name: "usr/bin/sh", typ: tar.TypeSymlink, link: "bash"}}
	opt := []entrySpec{dirEntry("opt/", 0o755), dirEntry("opt/site/", 0o755), {name: "opt/site/tool", mode: 0o755, data: "tool\n"}}
	cat := func(parts ...[]entrySpec) []entrySpec {
		var out []entrySpec
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	policy := policyEntries(t, "")
	var otherLocal entrySpec
	for _, e := range policyEntries(t, "/opt/site(/.*)?\tsystem_u:object_r:usr_t:s0\n") {
		if strings.HasSuffix(e.name, "file_contexts.local") {
			otherLocal = e
		}
	}
	for _, tc := range []struct {
		name     string
		layers   [][]byte
		labelled bool
		// hits is how many files the commit took from Known (the
		// policy's own, under /etc, are not labelled by the unpack).
		hits int
	}{
		// Sorted as a layer usually is: /etc before /opt and /usr.
		{"policy first", [][]byte{layerOf(t, cat(policy, opt, usr)...)}, true, 3},
		// Only what follows the policy was checksummed with its labels.
		{"policy after some files", [][]byte{layerOf(t, cat(usr, policy, opt)...)}, true, 1},
		// The commit labels by the final policy: /opt/site/tool, labelled
		// otherwise by the first layer's, is read again.
		{"a later layer changes the policy", [][]byte{layerOf(t, cat(policy, opt, usr)...), layerOf(t, otherLocal)}, true, 2},
		// No policy: nothing to guess, every file as the layer left it.
		{"no policy", [][]byte{layerOf(t, cat(opt, usr)...)}, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trees := map[string]string{}
			for _, how := range []string{"ostree", "seedbuild"} {
				repo := filepath.Join(t.TempDir(), "repo")
				if out, err := exec.Command("ostree", "init", "--mode=bare", "--repo="+repo).CombinedOutput(); err != nil {
					t.Fatalf("ostree init: %v\n%s", err, out)
				}
				known := ostreerepo.NewKnown()
				o := UnpackOptions{Known: known, ObjectTimes: func(string) bool { return true },
					Labels: &PolicyLabels{Load: loadTestPolicy, Path: func(rel string) (string, bool) {
						return "/" + rel, !strings.HasPrefix(rel+"/", "etc/")
					}}}
				root, _, err := unpackLayers(t, o, tc.layers...)
				if err != nil {
					t.Fatal(err)
				}
				var sum string
				if how == "ostree" {
					args := []string{"commit", "--repo=" + repo, "--consume", "--branch=t", "--tree=dir=" + root}
					if tc.labelled {
						args = append(args, "--selinux-policy="+root)
					}
					out, err := exec.Command("ostree", args...).CombinedOutput()
					if err != nil {
						t.Fatalf("ostree commit: %v\n%s", err, out)
					}
					sum = strings.TrimSpace(string(out))
				} else {
					p, err := selabel.Load(root)
					if err != nil || (p != nil) != tc.labelled {
						t.Fatalf("the policy of the unpacked root: %v, %v", p, err)
					}
					opts := ostreerepo.Options{Known: known}
					if p != nil {
						defer p.Close()
						opts.Labels = p
					}
					if sum, _, err = ostreerepo.CommitWith(context.Background(), repo, root, "t", "", opts); err != nil {
						t.Fatal(err)
					}
					if got, want := known.Hits(), tc.hits; got != want {
						t.Errorf("the commit took %d files' checksums from the unpack, want %d", got, want)
					}
				}
				ls, err := exec.Command("ostree", "ls", "-R", "-C", "-X", "--repo="+repo, sum).CombinedOutput()
				if err != nil {
					t.Fatalf("ostree ls: %v\n%s", err, ls)
				}
				trees[how] = string(ls)
			}
			if trees["ostree"] != trees["seedbuild"] {
				t.Errorf("the trees differ; ostree commit:\n%s\nseedbuild's:\n%s", trees["ostree"], trees["seedbuild"])
			}
			if tc.labelled && !strings.Contains(trees["seedbuild"], "shell_exec_t") {
				t.Errorf("/usr/bin/bash is not labelled by the policy:\n%s", trees["seedbuild"])
			}
		})
	}
}

// loadTestPolicy is PolicyLabels.Load as the deployer's.
func loadTestPolicy(root string) (PolicyLabeler, error) {
	p, err := selabel.Load(root)
	if p == nil {
		return nil, err
	}
	return p, err
}
