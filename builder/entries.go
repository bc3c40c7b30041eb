package builder

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/seedbuild/seedbuild/internal/progress"
	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sys/unix"
)

// Skipped is a path left out of a layer, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// tally counts what went into the layers.
type tally struct {
	progress.Counter
	mu      sync.Mutex
	skipped []Skipped
	badUTF8 []string
}

func (t *tally) skip(path, reason string) {
	t.mu.Lock()
	t.skipped = append(t.skipped, Skipped{Path: path, Reason: reason})
	t.mu.Unlock()
}

func (t *tally) nonUTF8(path string) {
	t.mu.Lock()
	t.badUTF8 = append(t.badUTF8, path)
	t.mu.Unlock()
}

type devIno struct{ dev, ino uint64 }

// entryWriter writes host files into a tar stream, keeping mode, numeric
// owners, mtime, xattrs, hard links and symlinks.
type entryWriter struct {
	tw        *tar.Writer
	clamp     time.Time // zero: no clamping
	keepXattr func(name string) bool
	specials  bool // write FIFOs and device nodes; else skip them
	links     map[devIno]string
	tally     *tally
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func newEntryWriter(w io.Writer, clamp time.Time, keepXattr func(string) bool, specials bool, t *tally) *entryWriter {
	return &entryWriter{
		tw: tar.NewWriter(w), clamp: clamp, keepXattr: keepXattr, specials: specials,
		links: map[devIno]string{}, tally: t,
	}
}

// Close finishes the tar stream.
func (w *entryWriter) Close() error { return w.tw.Close() }

// native keeps user xattrs, ACLs, file capabilities and SELinux labels:
// the seed node's /var and /etc files keep the labels they had there, as
// the upstream agent's tar --selinux keeps them.
func keepNativeXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "system.posix_acl_") || name == "security.capability" || name == xattrs.SELinux
}

// keepAllXattr keeps every xattr, as tar --xattrs --selinux --acls does.
func keepAllXattr(string) bool { return true }

// dir writes a synthetic directory entry.
func (w *entryWriter) dir(name string, mode int64, mtime time.Time) error {
	return w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: strings.TrimSuffix(name, "/") + "/", Mode: mode, ModTime: w.clampTime(mtime),
		Format: tar.FormatPAX,
	})
}

// file writes a synthetic regular file.
func (w *entryWriter) file(name string, mode int64, mtime time.Time, data []byte) error {
	if err := w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: w.clampTime(mtime),
		Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err := w.tw.Write(data)
	return err
}

// symlink writes a synthetic symbolic link.
func (w *entryWriter) symlink(name, target string, mtime time.Time) error {
	return w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: w.clampTime(mtime),
		Format: tar.FormatPAX,
	})
}

func (w *entryWriter) clampTime(t time.Time) time.Time {
	if !w.clamp.IsZero() && t.After(w.clamp) {
		t = w.clamp
	}
	return t.Truncate(time.Second)
}

// add writes the host entry at hostPath as the member name. It returns
// false for entries it left out (and recorded why).
func (w *entryWriter) add(hostPath, name string, st *unix.Stat_t) (bool, error) {
	if !utf8.ValidString(name) {
		w.tally.nonUTF8(hostPath)
		return false, nil
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: w.clampTime(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name = strings.TrimSuffix(name, "/") + "/"
	case unix.S_IFLNK:
		target, err := os.Readlink(hostPath)
		if err != nil {
			return false, fmt.Errorf("reading link %q: %w", hostPath, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFREG:
		key := devIno{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			w.links[key] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if !w.specials {
			w.tally.skip(hostPath, specialReason(st.Mode))
			return false, nil
		}
		hdr.Typeflag = map[uint32]byte{unix.S_IFIFO: tar.TypeFifo, unix.S_IFCHR: tar.TypeChar, unix.S_IFBLK: tar.TypeBlock}[st.Mode&unix.S_IFMT]
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	default:
		w.tally.skip(hostPath, specialReason(st.Mode))
		return false, nil
	}
	if err := w.addXattrs(hostPath, hdr); err != nil {
		return false, err
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return false, fmt.Errorf("writing %q: %w", name, err)
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		if err := w.copyContent(hostPath, hdr.Size); err != nil {
			return false, err
		}
	}
	w.tally.Add(1, 0) // its bytes were counted as they were read
	return true, nil
}

func (w *entryWriter) copyContent(hostPath string, size int64) error {
	f, err := os.OpenFile(hostPath, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening %q: %w", hostPath, err)
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(w.tw, w.tally.Reader(io.LimitReader(f, size)), *bp)
	if err != nil {
		return fmt.Errorf("reading %q: %w", hostPath, err)
	}
	if n != size {
		// The file shrank while we read it: pad, so the tar stays valid.
		if _, err := io.CopyN(w.tw, zeroReader{}, size-n); err != nil {
			return fmt.Errorf("padding %q: %w", hostPath, err)
		}
		w.tally.Add(0, size-n)
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func (w *entryWriter) addXattrs(hostPath string, hdr *tar.Header) error {
	names, err := xattrs.List(hostPath)
	if err != nil {
		return fmt.Errorf("listing xattrs of %q: %w", hostPath, err)
	}
	for _, n := range names {
		if !w.keepXattr(n) {
			continue
		}
		v, err := xattrs.Get(hostPath, n)
		if err != nil {
			return fmt.Errorf("reading xattr %s of %q: %w", n, hostPath, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+n] = string(v)
	}
	return nil
}

func specialReason(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "fifo: cannot go into an ostree-imported layer"
	case unix.S_IFSOCK:
		return "socket: cannot be archived"
	case unix.S_IFCHR:
		return "character device: cannot go into an ostree-imported layer"
	case unix.S_IFBLK:
		return "block device: cannot go into an ostree-imported layer"
	}
	return "unsupported file type"
}

// walkFunc is called for each entry under a walked folder, parents first,
// in sorted order. rel is root-relative with forward slashes.
type walkFunc func(hostPath, rel string, st *unix.Stat_t) (descend bool, err error)

// walk visits dir (root-relative) and everything under it, skipping mount
// points listed in mounts (host paths).
func walk(root, rel string, mounts map[string]bool, fn walkFunc) error {
	hostPath := filepath.Join(root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(hostPath, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("reading %q: %w", hostPath, err)
	}
	descend, err := fn(hostPath, rel, &st)
	if err != nil || !descend || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return err
	}
	entries, err := os.ReadDir(hostPath) // sorted by name
	if err != nil {
		return fmt.Errorf("reading folder %q: %w", hostPath, err)
	}
	for _, e := range entries {
		child := rel + "/" + e.Name()
		if mounts[filepath.Join(root, child)] {
			continue
		}
		if err := walk(root, child, mounts, fn); err != nil {
			return err
		}
	}
	return nil
}
