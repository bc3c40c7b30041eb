package deployer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/progress"
	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sys/unix"
)

// copyTree copies the content of src into dst (which may exist) keeping
// type, mode, numeric owner, mtime, xattrs, hard links, symlinks and
// holes, as `cp -a` does, with a worker per core for file contents.
//
// What is in dst is replaced. An xattr (an SELinux label, say) that cannot
// be read or set fails the copy, naming the path, unless o.lost is set.
func copyTree(src, dst string, done *progress.Counter, o copyOptions) error {
	c := &treeCopier{links: map[[2]uint64]string{}, root: src, copyOptions: o}
	files := make(chan copyJob, 256)
	var wg sync.WaitGroup
	errs := make(chan error, runtime.NumCPU())
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range files {
				if err := c.copyFile(j.src, j.dst, &j.st); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				done.Add(1, j.st.Size)
			}
		}()
	}
	walkErr := c.walk(src, dst, files)
	close(files)
	wg.Wait()
	close(errs)
	if walkErr != nil {
		return walkErr
	}
	if err := <-errs; err != nil {
		return err
	}
	// Hard links and folder times last: both need the files in place.
	for _, l := range c.pendingLinks {
		if err := os.Remove(l[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replacing %q: %w", l[1], err)
		}
		if err := os.Link(l[0], l[1]); err != nil {
			return fmt.Errorf("linking %q: %w", l[1], err)
		}
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := setTimes(d.dst, &d.st); err != nil {
			return err
		}
	}
	return nil
}

type copyJob struct {
	src, dst string
	st       unix.Stat_t
}

// copyOptions are copyTree's choices.
type copyOptions struct {
	// lost, when set, counts each xattr that cannot be kept, and the copy
	// goes on.
	lost *xattrLoss
	// labels, when set, gives the SELinux labels by path relative to src
	// ("." for src itself), instead of src's files: a path it does not
	// name gets none of src's. (The seed's /etc is read from the new
	// deployment's /usr, whose commit labelled it as /usr.)
	labels map[string]string
	// unlinked copies files that share an inode in src as files of their
	// own: in an ostree checkout, a shared inode says two files have the
	// same content, not that the node linked them.
	unlinked bool
	// keepExisting leaves what dst already has as it is, folders' modes
	// and owners included, but for its label where labels gives one, and
	// copies only what it lacks.
	keepExisting bool
}

type treeCopier struct {
	copyOptions
	links        map[[2]uint64]string
	pendingLinks [][2]string
	dirs         []copyJob
	root         string
}

func (c *treeCopier) walk(src, dst string, files chan<- copyJob) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("reading %q: %w", src, err)
	}
	var there unix.Stat_t
	exists := c.keepExisting && unix.Lstat(dst, &there) == nil
	if exists {
		// What is there stays, but for its label, which the labels map
		// gives.
		if err := c.relabel(dst, src); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || there.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("making %q: %w", dst, err)
		}
		if !exists {
			if err := c.setMeta(dst, src, &st); err != nil {
				return err
			}
			c.dirs = append(c.dirs, copyJob{src: src, dst: dst, st: st})
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("reading %q: %w", src, err)
		}
		for _, e := range entries {
			if err := c.walk(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), files); err != nil {
				return err
			}
		}
		return nil
	case unix.S_IFREG:
		if st.Nlink > 1 && !c.unlinked {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := c.links[key]; ok {
				c.pendingLinks = append(c.pendingLinks, [2]string{first, dst})
				return nil
			}
			c.links[key] = dst
		}
		files <- copyJob{src: src, dst: dst, st: st}
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("reading link %q: %w", src, err)
		}
		os.Remove(dst)
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("making link %q: %w", dst, err)
		}
		return c.setMeta(dst, src, &st)
	default:
		os.Remove(dst)
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("making %q: %w", dst, err)
		}
		return c.setMeta(dst, src, &st)
	}
}

// copyFile copies a regular file's content, skipping holes, then its
// metadata.
func (c *treeCopier) copyFile(src, dst string, st *unix.Stat_t) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("reading %q: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("making %q: %w", dst, err)
	}
	if err := copyData(in, out, st.Size); err != nil {
		out.Close()
		return fmt.Errorf("copying %q: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %q: %w", dst, err)
	}
	if err := c.setMeta(dst, src, st); err != nil {
		return err
	}
	return setTimes(dst, st)
}

// copyData copies the data extents of in, leaving holes as holes.
func copyData(in, out *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	ifd := int(in.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // only a hole is left
			}
			// No SEEK_DATA here: copy it all.
			in.Seek(0, io.SeekStart)
			_, err := io.Copy(out, in)
			return err
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

// setMeta sets owner, mode and xattrs from src on dst.
func (c *treeCopier) setMeta(dst, src string, st *unix.Stat_t) error {
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("setting the owner of %q: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("setting the mode of %q: %w", dst, err)
		}
	}
	if c.labels == nil {
		return copyXattrs(src, dst, c.lost, nil)
	}
	if err := copyXattrs(src, dst, c.lost, func(name string) bool { return name != selinuxXattr }); err != nil {
		return err
	}
	return c.relabel(dst, src)
}

// relabel gives dst the label the labels map has for src, if any.
func (c *treeCopier) relabel(dst, src string) error {
	if c.labels == nil {
		return nil
	}
	rel, err := filepath.Rel(c.root, src)
	if err != nil {
		return err
	}
	label, ok := c.labels[rel]
	if !ok {
		return nil
	}
	if err := unix.Lsetxattr(dst, selinuxXattr, []byte(label), 0); err != nil {
		return c.lost.or(fmt.Errorf("setting the SELinux label %q of %q: %w; the copy would lose it (pass --allow-xattr-loss to go on without it)", label, dst, err))
	}
	return nil
}

// selinuxXattr is the xattr of SELinux labels.
const selinuxXattr = xattrs.SELinux

// readLabels returns the SELinux label of every path under root that has
// one, by path relative to root ("." for root itself).
func readLabels(root string) (map[string]string, error) {
	labels := map[string]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		val, err := xattrs.Get(p, selinuxXattr)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the SELinux label of %q: %w", p, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		labels[rel] = string(val)
		return nil
	})
	return labels, err
}

func setTimes(dst string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting the times of %q: %w", dst, err)
	}
	return nil
}

// copyXattrs copies src's xattrs to dst, those keep says yes to when it is
// not nil.
func copyXattrs(src, dst string, lost *xattrLoss, keep func(name string) bool) error {
	names, err := xattrs.List(src)
	if err != nil {
		return lost.or(fmt.Errorf("reading the xattrs of %q: %w", src, err))
	}
	for _, name := range names {
		if keep != nil && !keep(name) {
			continue
		}
		val, err := xattrs.Get(src, name)
		if err == nil {
			err = unix.Lsetxattr(dst, name, val, 0)
		}
		if err != nil {
			if err := lost.or(fmt.Errorf("copying xattr %s to %q: %w; the copy would lose it (pass --allow-xattr-loss to go on without it)", name, dst, err)); err != nil {
				return err
			}
		}
	}
	return nil
}

// xattrLoss counts the xattrs a copy told to go on could not keep.
type xattrLoss struct {
	mu    sync.Mutex
	count int
	first string
}

// newXattrLoss is a tally of lost xattrs where their loss is allowed, or
// nil: none may be lost.
func newXattrLoss(allowed bool) *xattrLoss {
	if !allowed {
		return nil
	}
	return &xattrLoss{}
}

// warn says on w how many xattrs could not be kept doing what, if any.
func (x *xattrLoss) warn(w io.Writer, doing string) {
	if x == nil || x.count == 0 {
		return
	}
	fmt.Fprintf(w, "Warning: %d xattr(s) could not be kept %s (--allow-xattr-loss); the first: %s\n", x.count, doing, x.first)
}

// or returns err when no loss is allowed (x is nil); else it counts the
// loss and returns nil.
func (x *xattrLoss) or(err error) error {
	if x == nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.count == 0 {
		x.first = err.Error()
	}
	x.count++
	return nil
}

// treeSize is the bytes of the regular files under root, each hard-linked
// file once: the total a copyTree of root will count. It gives up when stop
// is closed.
func treeSize(root string, stop <-chan struct{}) (int64, error) {
	var total int64
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		select {
		case <-stop:
			return progress.ErrStopped
		default:
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += info.Size()
		return nil
	})
	return total, err
}
