// Package ostreerepo writes a folder into a bare ostree repository as a
// commit, in Go: each file's content object is checksummed as ostree does
// and the file itself renamed into the repo (as `ostree commit --consume`
// does), with the folders' dirtree and dirmeta objects and the commit
// object. It keeps every file's owner, mode and xattrs as they are on disk,
// but for the SELinux label when a Labeler is given: then each path gets
// the label it gives, as ostree commit --selinux-policy does.
package ostreerepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// node is one entry of the tree being committed.
type node struct {
	path     string
	name     string
	uid, gid uint32
	mode     uint32
	xattrs   []Xattr
	symlink  string
	st       unix.Stat_t
	children []*node
	csum     [32]byte // a file's content checksum
	tree     [32]byte // a folder's dirtree checksum
	meta     [32]byte // a folder's dirmeta checksum
}

func (n *node) dir() bool { return n.mode&unix.S_IFMT == unix.S_IFDIR }

// Commit takes the tree at root over into the bare repo at repo as a new
// commit with subject, and points ref at it; it returns the commit's
// checksum. The files are renamed into the repo's objects (root must be on
// its file system); the folders stay behind, empty. Only regular files,
// symlinks and folders may be in the tree. A file known (may be nil)
// holds, unchanged since, is not read again: its checksum is taken from
// there.
func Commit(ctx context.Context, repo, root, ref, subject string, known *Known) (string, error) {
	sum, _, err := CommitWith(ctx, repo, root, ref, subject, Options{Known: known})
	return sum, err
}

// Labeler gives the SELinux label of a path of the tree (rooted: "/",
// "/usr/bin/sh") of the given mode (type and permission bits), or false
// when it gives none. selabel.Policy is one. It is called from several
// goroutines at once.
type Labeler interface {
	Label(rel string, mode uint32) (string, bool, error)
}

// Options are what CommitWith may be given besides the tree.
type Options struct {
	// Known holds checksums of files read before (may be nil).
	Known *Known
	// CutDown, when set, has a second, cut-down commit written (see
	// CommitWithCutDown).
	CutDown func(rel string, dir bool) Keep
	// Labels, when set, labels every path of the tree: the security.selinux
	// xattr it gives replaces the one on disk (a path it gives none keeps
	// its own), as ostree commit --selinux-policy does
	// (ostree-repo-commit.c, get_final_xattrs). The xattrs stay sorted by
	// name, as ostree keeps them from v2025.2 (an older ostree appended
	// the label after the others).
	Labels Labeler
}

// CommitWith is Commit with options; it returns the cut-down commit's
// checksum too when o.CutDown is set.
func CommitWith(ctx context.Context, repo, root, ref, subject string, o Options) (full, cut string, err error) {
	return commit(ctx, repo, root, ref, subject, o)
}

// Keep says what a cut-down commit keeps of one entry of the tree.
type Keep int

const (
	// Drop leaves the entry out.
	Drop Keep = iota
	// Whole keeps the entry and everything under it.
	Whole
	// Descend keeps the folder, with what the rule says of each entry in
	// it.
	Descend
)

// CommitWithCutDown is Commit that also writes a second commit of the same
// tree, cut down by keep (called with each entry's path relative to root
// and whether it is a folder, from the top down), and returns both
// checksums. The second commit names only objects of the first, and new
// dirtree objects for the folders it cuts; no ref names it, so the next
// prune removes it once nothing deploys it. It costs a few small objects:
// no file is read or written again.
func CommitWithCutDown(ctx context.Context, repo, root, ref, subject string, known *Known, keep func(rel string, dir bool) Keep) (full, cut string, err error) {
	if keep == nil {
		return "", "", errors.New("a cut-down commit needs a rule")
	}
	return commit(ctx, repo, root, ref, subject, Options{Known: known, CutDown: keep})
}

func commit(ctx context.Context, repo, root, ref, subject string, o Options) (string, string, error) {
	known, keep := o.Known, o.CutDown
	if err := requireBare(repo); err != nil {
		return "", "", err
	}
	// As an ostree transaction does, hold the repo's lock shared: a prune
	// (which holds it exclusive) cannot remove the new objects before the
	// ref names them.
	unlock, err := lockShared(repo)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	w := &writer{repo: repo, made: map[string]bool{}, known: known, queued: map[string]bool{}}
	defer w.discard()
	// No object gets its name before its content is on the disk: a power
	// cut in between would leave an object whose name its content does
	// not give, which a later commit of the same object would take as
	// it is (the flush-point test, tests/flushpoints_test.go, found such
	// objects). The files' data, written by the unpack, is written out
	// while they are scanned and labelled, and they are moved into the
	// repo once it is; the tree objects and then the commit objects are
	// written under temporary names, synced, and renamed (publish).
	early := make(chan error, 1)
	go func() { early <- w.syncfs() }()
	waited := false
	waitEarly := func() error {
		if waited {
			return nil
		}
		waited = true
		return <-early
	}
	defer waitEarly()
	top, files, err := scan(root)
	if err != nil {
		return "", "", err
	}
	if o.Labels != nil {
		if err := labelTree(ctx, root, top, o.Labels); err != nil {
			return "", "", err
		}
	}
	// Every file's checksum first, from w.known or read: then the trees
	// are written while the files are moved into the repo. Each file is
	// looked up as scanned, before labelTree set its label (which changes
	// its change time), with the header that label gives it.
	unknown := files
	if w.known != nil {
		unknown = nil
		for _, f := range files {
			if sum, ok := w.known.lookup(&f.st, f.header()); ok {
				f.csum = sum
			} else {
				unknown = append(unknown, f)
			}
		}
	}
	if err := inParallel(ctx, unknown, (*node).checksum); err != nil {
		return "", "", err
	}
	if err := waitEarly(); err != nil {
		return "", "", err
	}
	var cutTree [32]byte
	trees := make(chan error, 1)
	go func() {
		err := w.writeTrees(top)
		if err == nil && keep != nil {
			cutTree, err = w.writeCutTree(top, "", keep)
		}
		trees <- err
	}()
	err = inParallel(ctx, files, w.moveFile)
	if terr := <-trees; err == nil {
		err = terr
	}
	if err != nil {
		return "", "", err
	}
	// The tree objects are on disk before their names, and the files'
	// and trees' names before a commit names them.
	if err := w.publish(); err != nil {
		return "", "", err
	}
	now := uint64(time.Now().Unix())
	sum, err := w.writeCommit(subject, now, top.tree, top.meta)
	if err != nil {
		return "", "", err
	}
	var cut string
	if keep != nil {
		if cut, err = w.writeCommit(subject+" (cut down)", now, cutTree, top.meta); err != nil {
			return "", "", err
		}
	}
	// The commit objects, then their names, before a ref names them.
	if err := w.publish(); err != nil {
		return "", "", err
	}
	if err := w.syncfs(); err != nil {
		return "", "", err
	}
	if ref != "" {
		if err := writeRef(repo, ref, sum); err != nil {
			return "", "", err
		}
	}
	return sum, cut, nil
}

// writeCommit writes a commit object of the tree and returns its checksum.
func (w *writer) writeCommit(subject string, timestamp uint64, tree, meta [32]byte) (string, error) {
	c := commitVariant(subject, timestamp, tree, meta)
	sum := sha256.Sum256(c)
	if err := w.writeMeta(sum, "commit", c); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// writeCutTree writes the dirtree of n (a folder whose trees writeTrees
// wrote) cut down by keep, and returns its checksum; rel is n's path. A
// folder keeps its dirmeta.
func (w *writer) writeCutTree(n *node, rel string, keep func(string, bool) Keep) ([32]byte, error) {
	var files []TreeFile
	var dirs []TreeDir
	for _, c := range n.children {
		crel := c.name
		if rel != "" {
			crel = rel + "/" + c.name
		}
		switch k := keep(crel, c.dir()); {
		case k == Drop:
		case !c.dir():
			files = append(files, TreeFile{Name: c.name, Checksum: c.csum})
		case k == Whole:
			dirs = append(dirs, TreeDir{Name: c.name, Tree: c.tree, Meta: c.meta})
		default:
			sub, err := w.writeCutTree(c, crel, keep)
			if err != nil {
				return sub, err
			}
			dirs = append(dirs, TreeDir{Name: c.name, Tree: sub, Meta: c.meta})
		}
	}
	tree := dirTree(files, dirs)
	sum := sha256.Sum256(tree)
	return sum, w.writeMeta(sum, "dirtree", tree)
}

// requireBare refuses a repo whose mode is not bare: the objects written
// here are those of a bare repo (a sysroot's is).
func requireBare(repo string) error {
	data, err := os.ReadFile(filepath.Join(repo, "config"))
	if err != nil {
		return fmt.Errorf("reading the config of the ostree repo %s: %w", repo, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(key) == "mode" {
			if v := strings.TrimSpace(value); v != "bare" {
				return fmt.Errorf("the ostree repo %s is in mode %s; seedbuild commits only into a bare repo", repo, v)
			}
			return nil
		}
	}
	return fmt.Errorf("the ostree repo %s has no mode in its config; seedbuild commits only into a bare repo", repo)
}

// lockShared takes the repo's lock (its .lock file) shared, as libostree
// does for a transaction: an open file description lock, waiting for an
// exclusive holder (a prune) to finish.
func lockShared(repo string) (func(), error) {
	p := filepath.Join(repo, ".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock of the ostree repo %s: %w", repo, err)
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLKW, &lk); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the ostree repo %s: %w", repo, err)
	}
	return func() { f.Close() }, nil
}

// scan reads the tree's metadata: the root node, and every file and
// symlink in it.
func scan(root string) (*node, []*node, error) {
	var files []*node
	var walk func(p, name string) (*node, error)
	walk = func(p, name string) (*node, error) {
		n, err := readNode(p, name)
		if err != nil {
			return nil, err
		}
		switch n.mode & unix.S_IFMT {
		case unix.S_IFDIR:
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			for _, e := range entries {
				c, err := walk(filepath.Join(p, e.Name()), e.Name())
				if err != nil {
					return nil, err
				}
				n.children = append(n.children, c)
			}
		case unix.S_IFLNK, unix.S_IFREG:
			files = append(files, n)
		default:
			return nil, fmt.Errorf("committing %s: ostree keeps no device, fifo or socket (mode %o)", p, n.mode)
		}
		return n, nil
	}
	top, err := walk(root, "")
	if err != nil {
		return nil, nil, err
	}
	if !top.dir() {
		return nil, nil, fmt.Errorf("committing %s: not a folder", root)
	}
	return top, files, nil
}

// readNode reads what a commit checksums of the path p (named name in its
// folder), but for a file's content: its owner, mode and xattrs, and a
// symlink's target.
func readNode(p, name string) (*node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	n := &node{path: p, name: name, uid: st.Uid, gid: st.Gid, mode: st.Mode, st: st}
	x, err := readXattrs(p)
	if err != nil {
		return nil, err
	}
	n.xattrs = x
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if n.symlink, err = os.Readlink(p); err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
	}
	return n, nil
}

// ChecksumFile is the checksum a commit gives the regular file or symlink
// at p, as a bare repo's file object (a bare repo's objects/ holds such
// files under their checksums).
func ChecksumFile(p string) ([32]byte, error) {
	n, err := readNode(p, "")
	if err != nil {
		return [32]byte{}, err
	}
	if t := n.mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFLNK {
		return [32]byte{}, fmt.Errorf("checksumming %s: not a file or symlink (mode %o)", p, n.mode)
	}
	err = n.checksum()
	return n.csum, err
}

// selinuxXattr is the xattr that holds a path's SELinux label.
const selinuxXattr = "security.selinux"

// labelTree gives every node of the tree under top (the folder root) the
// label l gives its path, on every core.
func labelTree(ctx context.Context, root string, top *node, l Labeler) error {
	var all []*node
	var walk func(n *node)
	walk = func(n *node) {
		all = append(all, n)
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(top)
	root = filepath.Clean(root) // the children's paths are cleaned joins
	return inParallel(ctx, all, func(n *node) error {
		rel := "/" + strings.TrimLeft(strings.TrimPrefix(n.path, root), "/")
		label, ok, err := l.Label(rel, n.mode)
		if err != nil || !ok {
			return err
		}
		value := labelValue(label)
		if i := slices.IndexFunc(n.xattrs, func(x Xattr) bool { return x.Name == selinuxXattr }); i >= 0 && bytes.Equal(n.xattrs[i].Value, value) {
			return nil
		}
		n.xattrs = withXattr(n.xattrs, selinuxXattr, value)
		if n.dir() {
			return nil // a folder's xattrs are in its dirmeta object
		}
		// A bare repo's file object carries its xattrs itself.
		if err := unix.Lsetxattr(n.path, selinuxXattr, value, 0); err != nil {
			return fmt.Errorf("labelling %s %s: %w", n.path, label, err)
		}
		return nil
	})
}

// labelValue is the security.selinux value of a label: NUL-terminated,
// as the kernel gives it and ostree keeps it.
func labelValue(label string) []byte { return append([]byte(label), 0) }

// WithLabel is xs (sorted by name) with the SELinux label set, as a commit
// that labels (Options.Labels) gives a file that label.
func WithLabel(xs []Xattr, label string) []Xattr {
	return withXattr(xs, selinuxXattr, labelValue(label))
}

// withXattr is xs (sorted by name) with name set to value, still sorted.
func withXattr(xs []Xattr, name string, value []byte) []Xattr {
	i := sort.Search(len(xs), func(i int) bool { return xs[i].Name >= name })
	if i < len(xs) && xs[i].Name == name {
		out := slices.Clone(xs)
		out[i].Value = value
		return out
	}
	return slices.Insert(slices.Clone(xs), i, Xattr{Name: name, Value: value})
}

// readXattrs reads a path's xattrs (not following a symlink), in the order
// ostree keeps them: by name, bytewise (xattrs.List sorts them so).
func readXattrs(p string) ([]Xattr, error) {
	names, err := xattrs.List(p)
	if err != nil {
		return nil, fmt.Errorf("listing the xattrs of %s: %w", p, err)
	}
	var out []Xattr
	for _, name := range names {
		val, err := xattrs.Get(p, name)
		if err != nil {
			return nil, fmt.Errorf("reading the xattr %s of %s: %w", name, p, err)
		}
		out = append(out, Xattr{Name: name, Value: val})
	}
	return out, nil
}

// writer puts objects into the repo.
type writer struct {
	repo  string
	known *Known
	mu    sync.Mutex
	made  map[string]bool // objects/XX folders known to exist
	// pending are the metadata objects written under temporary names,
	// which publish renames; queued, the objects among them.
	pending []pendingObject
	queued  map[string]bool
}

// pendingObject is an object written under a temporary name in the
// repo's tmp, to be renamed to its own once its content is on disk.
type pendingObject struct{ tmp, obj string }

// publish syncs the objects written so far, then gives the pending ones
// their names.
func (w *writer) publish() error {
	if err := w.syncfs(); err != nil {
		return err
	}
	w.mu.Lock()
	pending := w.pending
	w.pending = nil
	w.mu.Unlock()
	for i, p := range pending {
		if err := os.Rename(p.tmp, p.obj); err != nil {
			w.mu.Lock()
			w.pending = append(w.pending, pending[i:]...)
			w.mu.Unlock()
			return fmt.Errorf("writing %s: %w", p.obj, err)
		}
	}
	return nil
}

// discard removes the temporary files of objects not published.
func (w *writer) discard() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pending {
		os.Remove(p.tmp)
	}
	w.pending = nil
}

// objectPath is where an object of kind (file, dirtree, dirmeta, commit)
// lives, making its folder.
func (w *writer) objectPath(sum [32]byte, kind string) (string, error) {
	h := hex.EncodeToString(sum[:])
	dir := filepath.Join(w.repo, "objects", h[:2])
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.made[dir] {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("making %s: %w", dir, err)
		}
		w.made[dir] = true
	}
	return filepath.Join(dir, h[2:]+"."+kind), nil
}

// inParallel calls fn on every node, a few at once, and returns the first
// error; once one fails, the rest are not started.
func inParallel(ctx context.Context, nodes []*node, fn func(*node) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU() + 1)
	for _, n := range nodes {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(n)
		})
	}
	return g.Wait()
}

// header is the node's file header, as ostree checksums it.
func (n *node) header() []byte { return fileHeader(n.uid, n.gid, n.mode, n.symlink, n.xattrs) }

// moveFile sets the time of a checksummed file or symlink to 0, as
// ostree's objects have (unless it is already), and renames it into the
// repo, or removes it when the repo holds that object already.
func (w *writer) moveFile(n *node) error {
	obj, err := w.objectPath(n.csum, "file")
	if err != nil {
		return err
	}
	zero := []unix.Timespec{{}, {}}
	if n.st.Atim != zero[0] || n.st.Mtim != zero[1] {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, n.path, zero, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting the time of %s: %w", n.path, err)
		}
	}
	err = unix.Renameat2(unix.AT_FDCWD, n.path, unix.AT_FDCWD, obj, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		err = os.Remove(n.path)
	}
	if err != nil {
		return fmt.Errorf("moving %s into the repo: %w", n.path, err)
	}
	return nil
}

// checksum reads the file to checksum it with its header.
func (n *node) checksum() error {
	h := objectHash(n.header())
	if n.symlink == "" {
		f, err := os.Open(n.path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", n.path, err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", n.path, err)
		}
	}
	copy(n.csum[:], h.Sum(nil))
	return nil
}

// writeTrees writes the dirmeta and dirtree objects of n and every folder
// under it, deepest first.
func (w *writer) writeTrees(n *node) error {
	var files []TreeFile
	var dirs []TreeDir
	for _, c := range n.children {
		if c.dir() {
			if err := w.writeTrees(c); err != nil {
				return err
			}
			dirs = append(dirs, TreeDir{Name: c.name, Tree: c.tree, Meta: c.meta})
		} else {
			files = append(files, TreeFile{Name: c.name, Checksum: c.csum})
		}
	}
	meta := dirMeta(n.uid, n.gid, n.mode, n.xattrs)
	n.meta = sha256.Sum256(meta)
	if err := w.writeMeta(n.meta, "dirmeta", meta); err != nil {
		return err
	}
	tree := dirTree(files, dirs)
	n.tree = sha256.Sum256(tree)
	return w.writeMeta(n.tree, "dirtree", tree)
}

// writeMeta writes a metadata object under a temporary name, for publish
// to rename once it is on disk, unless the repo has it or it is queued.
func (w *writer) writeMeta(sum [32]byte, kind string, data []byte) error {
	obj, err := w.objectPath(sum, kind)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(obj); err == nil {
		return nil
	}
	w.mu.Lock()
	dup := w.queued[obj]
	w.queued[obj] = true
	w.mu.Unlock()
	if dup {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(w.repo, "tmp"), "seedbuild-object-")
	if err != nil {
		return fmt.Errorf("writing an object into %s: %w", w.repo, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	w.mu.Lock()
	w.pending = append(w.pending, pendingObject{tmp: tmp.Name(), obj: obj})
	w.mu.Unlock()
	return nil
}

func (w *writer) syncfs() error {
	f, err := os.Open(w.repo)
	if err != nil {
		return fmt.Errorf("syncing the file system of %s: %w", w.repo, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing the file system of %s: %w", w.repo, err)
	}
	return nil
}

// writeRef points refs/heads/REF at checksum, atomically and durably: the
// new content is written and synced in the repo's tmp (where no ref is
// read from), renamed over the ref, and the ref's folder synced.
func writeRef(repo, ref, checksum string) error {
	p := filepath.Join(repo, "refs/heads", ref)
	if err := writeRefFile(repo, p, checksum); err != nil {
		return fmt.Errorf("writing the ref %s of %s: %w", ref, repo, err)
	}
	return nil
}

func writeRefFile(repo, p, checksum string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(repo, "tmp"), "seedbuild-ref-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(checksum + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
