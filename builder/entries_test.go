package builder

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// tarEntry is what a test checks of a tar member.
type tarEntry struct {
	Name, Linkname string
	Type           byte
	Mode           int64
	UID, GID       int
	Size           int64
	ModTime        time.Time
	Xattrs         map[string]string
	Data           string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %q: %v", hdr.Name, err)
		}
		e := tarEntry{Name: hdr.Name, Linkname: hdr.Linkname, Type: hdr.Typeflag, Mode: hdr.Mode,
			UID: hdr.Uid, GID: hdr.Gid, Size: hdr.Size, ModTime: hdr.ModTime, Data: string(data)}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		out = append(out, e)
	}
}

func TestEntryWriterAdd(t *testing.T) {
	old := time.Unix(1_600_000_000, 0)
	recent := time.Unix(1_700_000_000, 987654321)
	stamp := time.Unix(1_650_000_000, 0)
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	put(t, p("d/f"), "hello", 0o640)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		must(t, os.Lchown(p("d/f"), 1234, 5678))
		uid, gid = 1234, 5678
	}
	setxattr(t, p("d/f"), "user.keep", "v")
	setxattr(t, p("d/f"), "user.keep2", "w")
	setxattr(t, p("d/f"), "user.drop", "x")
	must(t, os.Link(p("d/f"), p("d/h")))
	must(t, os.Symlink("f", p("d/l")))
	must(t, unix.Mkfifo(p("d/p"), 0o600))
	put(t, p("bad-\xff"), "x", 0o644)
	must(t, os.Chtimes(p("d/f"), recent, recent))
	must(t, os.Chtimes(p("d/p"), old, old))
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p("d/l"), ts, unix.AT_SYMLINK_NOFOLLOW))
	must(t, os.Chmod(p("d"), 0o750))
	must(t, os.Chtimes(p("d"), old, old))

	me, mine := os.Getuid(), os.Getgid()
	dir := tarEntry{Name: "d/", Type: tar.TypeDir, Mode: 0o750, UID: me, GID: mine, ModTime: old}
	file := tarEntry{Name: "d/f", Type: tar.TypeReg, Mode: 0o640, UID: uid, GID: gid, Size: 5,
		ModTime: recent.Truncate(time.Second), Xattrs: map[string]string{"user.keep": "v", "user.keep2": "w"}, Data: "hello"}
	link := file
	link.Name, link.Type, link.Linkname, link.Size, link.Data = "d/h", tar.TypeLink, "d/f", 0, ""
	tests := []struct {
		name        string
		clamp       time.Time
		specials    bool
		add         []string // root-relative paths, written under the same names
		wantOK      bool
		want        []tarEntry
		wantSkipped []Skipped // paths relative to root
		wantBadUTF8 []string
	}{
		{name: "folder, file with xattrs, hard link, symlink", add: []string{"d", "d/f", "d/h", "d/l"}, wantOK: true,
			want: []tarEntry{dir, file, link, {Name: "d/l", Type: tar.TypeSymlink, Linkname: "f", Mode: 0o777, UID: me, GID: mine, ModTime: old}}},
		{name: "first name of a hard link holds the content", add: []string{"d/h", "d/f"}, wantOK: true,
			want: []tarEntry{
				{Name: "d/h", Type: tar.TypeReg, Mode: 0o640, UID: uid, GID: gid, Size: 5, ModTime: file.ModTime, Xattrs: file.Xattrs, Data: "hello"},
				{Name: "d/f", Type: tar.TypeLink, Linkname: "d/h", Mode: 0o640, UID: uid, GID: gid, ModTime: file.ModTime, Xattrs: file.Xattrs},
			}},
		{name: "mtimes clamped to the timestamp", clamp: stamp, add: []string{"d", "d/f"}, wantOK: true,
			want: []tarEntry{dir, func() tarEntry { f := file; f.ModTime = stamp; return f }()}},
		{name: "fifo skipped without specials", add: []string{"d/p"},
			wantSkipped: []Skipped{{Path: "d/p", Reason: "fifo: cannot go into an ostree-imported layer"}}},
		{name: "fifo written with specials", specials: true, add: []string{"d/p"}, wantOK: true,
			want: []tarEntry{{Name: "d/p", Type: tar.TypeFifo, Mode: 0o600, UID: me, GID: mine, ModTime: old}}},
		{name: "non-UTF-8 name left out", add: []string{"bad-\xff"}, wantBadUTF8: []string{"bad-\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tl := &tally{}
			w := newEntryWriter(&buf, tt.clamp, func(n string) bool { return strings.HasPrefix(n, "user.keep") }, tt.specials, tl)
			for _, rel := range tt.add {
				var st unix.Stat_t
				must(t, unix.Lstat(p(rel), &st))
				ok, err := w.add(p(rel), rel, &st)
				if err != nil || ok != tt.wantOK {
					t.Errorf("add(%q) = %v, %v; want %v, nil", rel, ok, err, tt.wantOK)
				}
			}
			must(t, w.Close())
			if diff := cmp.Diff(tt.want, readTar(t, &buf)); diff != "" {
				t.Errorf("add(%q) wrote entries (-want +got):\n%s", tt.add, diff)
			}
			var wantSkipped []Skipped
			for _, s := range tt.wantSkipped {
				wantSkipped = append(wantSkipped, Skipped{Path: p(s.Path), Reason: s.Reason})
			}
			if !cmp.Equal(tl.skipped, wantSkipped) {
				t.Errorf("add(%q) skipped %v, want %v", tt.add, tl.skipped, wantSkipped)
			}
			var wantBad []string
			for _, b := range tt.wantBadUTF8 {
				wantBad = append(wantBad, p(b))
			}
			if !cmp.Equal(tl.badUTF8, wantBad) {
				t.Errorf("add(%q) non-UTF-8 paths = %q, want %q", tt.add, tl.badUTF8, wantBad)
			}
		})
	}
}
