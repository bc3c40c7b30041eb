package seedimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/xattrs"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// Unpacked is what Unpack wrote.
type Unpacked struct {
	// Size is the bytes of file content.
	Size int64
	// Labels counts the SELinux labels the layers carry.
	Labels int
}

// UnpackOptions are Unpack's choices.
type UnpackOptions struct {
	// OnLayer is told each layer's index before it is applied.
	OnLayer func(i int)
	// LabelLost decides about an SELinux label that cannot be set: nil
	// fails the unpack naming the path; a func returning nil goes on. It
	// is called from one goroutine at a time.
	LabelLost func(path string, err error) error
	// Known, when set, is given the ostree checksum of every regular file
	// and symlink, computed as it is written, so a commit of the tree need
	// not read it back.
	Known *ostreerepo.Known
	// Extract names regular files of the image (root-relative paths) that
	// are archives, such as a classic seed's ostree.tgz, and the folder
	// each is extracted into, as UnpackArchive would, straight from the
	// layer: the archive itself is not written.
	Extract map[string]string
	// OnEntry, when set, is given each entry's header (whiteouts too) as
	// it is read, from the one goroutine that reads the stream.
	OnEntry func(h *tar.Header)
	// Check, when set, is given each entry's header (whiteouts too) and
	// its path relative to the root, with the symlinks of the folders
	// above it followed ("" for the root itself; the last element as the
	// entry names it, ".wh." prefix and all), before it is applied, from
	// the one goroutine that reads the stream. The folders above it may
	// have been made. An error it returns stops the unpack, and is
	// returned.
	Check func(h *tar.Header, rel string) error
	// SkipLayer, when set, says which layers (0 is the bottom one) Unpack
	// leaves out: they are not even fetched.
	SkipLayer func(i int) bool
	// ObjectTimes, when set, says which regular files and symlinks (by
	// root-relative path) a commit will take over: they get the times 0
	// that ostree's objects have, not the layer's, so that the commit
	// need not set them again.
	ObjectTimes func(rel string) bool
	// Labels, with Known, has the files it labels checksummed for Known
	// as a commit that labels by the image's SELinux policy will have
	// them (ostreerepo.Options.Labels), not as the layers leave them on
	// disk, so that such a commit need not read them back.
	Labels *PolicyLabels
}

// PolicyLabels reads the image's SELinux policy while the image unpacks.
// Once a layer has gone past a folder etc/selinux or usr/etc/selinux (in a
// sorted layer, before the bulk of /usr), the policy is loaded from the
// root unpacked so far, and each regular file and symlink written after
// that, which its layer gives no label, is checksummed with the label the
// policy gives it. This is only a guess at what the commit will hash, and
// costs nothing when wrong: the commit looks every label up again by the
// final tree's policy (a later layer may change it), and reads back any
// file whose header differs from the one recorded, such as every file
// written before the policy was loaded.
type PolicyLabels struct {
	// Load reads the policy of the root unpacked so far; nil when it has
	// none that labels.
	Load func(root string) (PolicyLabeler, error)
	// Path is the rooted path the commit labels a file of the image
	// (root-relative) as, or false for a file the unpack should not
	// guess the label of.
	Path func(rel string) (string, bool)
}

// PolicyLabeler labels paths, as the commit does, and is closed when the
// unpack ends.
type PolicyLabeler interface {
	ostreerepo.Labeler
	Close()
}

// epoch is the time ostree's objects have.
var epoch = time.Unix(0, 0)

// selinuxXattr is the xattr of SELinux labels.
const selinuxXattr = xattrs.SELinux

// Unpack lays the image's root file system out in dest, applying each
// layer in order with its whiteouts, owners, modes, xattrs (SELinux labels
// among them), times and hard links. dest must be empty or absent.
//
// Each layer is read once, straight from the transport: one goroutine
// decompresses and parses it and makes the folders, links and whiteouts,
// in order; regular files are written, and checksummed for Known, by a few
// workers at once. Whatever depends on earlier entries being on disk (a
// hard link, a whiteout, a path replaced) waits for the files in flight.
func Unpack(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, dest string, o UnpackOptions) (Unpacked, error) {
	if err := makeEmptyDest(dest); err != nil {
		return Unpacked{}, err
	}
	u := newUnpacker(ctx, dest, o, false)
	defer u.stop()
	err := eachLayer(ctx, ref, sys, o.SkipLayer, Decompress, func(i int, layer io.Reader) error {
		if o.OnLayer != nil {
			o.OnLayer(i)
		}
		return u.applyLayer(layer)
	})
	if err == nil {
		err = u.wait()
	}
	return u.total, err
}

// makeEmptyDest makes dest, or checks that the folder there is empty.
func makeEmptyDest(dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", dest, err)
	}
	if entries, err := os.ReadDir(dest); err != nil {
		return fmt.Errorf("reading %s: %w", dest, err)
	} else if len(entries) > 0 {
		return fmt.Errorf("unpacking into %s: the folder is not empty", dest)
	}
	return nil
}

// UnpackDiff writes one layer's tar stream into dest as an overlay
// layer's diff, the way containers-storage's overlay driver keeps one: the
// files as the layer has them, and its whiteouts recorded, not applied: a
// removed path as a 0/0 character device, a folder whose lower content is
// hidden by the xattr opaqueXattr set to "y". It reads the stream to its
// end. dest must be empty or absent. As Unpack, it writes regular files
// with several workers.
func UnpackDiff(ctx context.Context, layer io.Reader, dest, opaqueXattr string, o UnpackOptions) (Unpacked, error) {
	return unpackOne(ctx, layer, dest, opaqueXattr, o)
}

// UnpackLayer applies one layer's tar stream to dest, which must be empty
// or absent, as Unpack applies each layer (a whiteout there removes
// nothing), and reads the stream to its end.
func UnpackLayer(ctx context.Context, layer io.Reader, dest string, o UnpackOptions) (Unpacked, error) {
	return unpackOne(ctx, layer, dest, "", o)
}

// unpackOne is UnpackDiff, or UnpackLayer where opaqueXattr is "".
func unpackOne(ctx context.Context, layer io.Reader, dest, opaqueXattr string, o UnpackOptions) (Unpacked, error) {
	if err := makeEmptyDest(dest); err != nil {
		return Unpacked{}, err
	}
	u := newUnpacker(ctx, dest, o, false)
	u.opaqueXattr = opaqueXattr
	defer u.stop()
	if err := u.applyLayer(layer); err != nil {
		return u.total, err
	}
	if _, err := io.Copy(io.Discard, layer); err != nil {
		return u.total, fmt.Errorf("reading the layer's end: %w", err)
	}
	return u.total, nil
}

// UnpackArchive extracts a plain tar archive, compressed or not (as GNU
// tar writes them: ./-relative names, --selinux, --xattrs and --acls
// records), into dest, which may have content: what the archive holds
// replaces what is there, and folders are merged. As Unpack, it writes
// regular files with several workers.
func UnpackArchive(ctx context.Context, file, dest string, o UnpackOptions) (Unpacked, error) {
	f, err := os.Open(file)
	if err != nil {
		return Unpacked{}, fmt.Errorf("opening %s: %w", file, err)
	}
	defer f.Close()
	got, err := extractArchive(ctx, f, dest, o)
	if err != nil {
		return got, fmt.Errorf("extracting %s into %s: %w", file, dest, err)
	}
	return got, nil
}

// extractArchive extracts the archive r holds into dest (UnpackArchive),
// reading it to its end, so that a compressed one's checksum is checked.
func extractArchive(ctx context.Context, r io.Reader, dest string, o UnpackOptions) (Unpacked, error) {
	plain, err := Decompress(r)
	if err != nil {
		return Unpacked{}, err
	}
	defer plain.Close()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return Unpacked{}, fmt.Errorf("making %s: %w", dest, err)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		return Unpacked{}, fmt.Errorf("reading %s: %w", dest, err)
	}
	u := newUnpacker(ctx, dest, o, true)
	u.merge = len(entries) > 0
	defer u.stop()
	if err := u.applyLayer(plain); err != nil {
		return u.total, err
	}
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return u.total, err
	}
	return u.total, nil
}

// unpackWorkers write regular files at once; the folders above them are
// made first, by the one goroutine that reads the layer.
const unpackWorkers = 4

// unpackInFlight bounds the bytes of file content read but not yet
// written; a bigger file is written by the reading goroutine itself.
const unpackInFlight = 64 << 20

// fileJob is one regular file for a worker to write.
type fileJob struct {
	path   string
	rel    string
	h      *tar.Header
	xattrs []ostreerepo.Xattr
	drop   []string
	data   []byte
}

// unpacker applies layers to dest.
type unpacker struct {
	ctx  context.Context
	dest string
	o    UnpackOptions
	// kinds is every path in the tree so far (relative to dest, "" for
	// dest) and its type flag; only paths typed dir are ever used as
	// folders without resolving them.
	kinds map[string]byte
	// plain says the stream is a plain archive, not an image layer: no
	// whiteouts. merge says dest may have content: a path kinds does not
	// know is looked up on disk.
	plain, merge bool
	// opaqueXattr, when set, says dest is a layer's overlay diff: its
	// whiteouts are recorded as overlay keeps them (see UnpackDiff).
	opaqueXattr string
	// layer is the paths the current layer wrote, which an opaque
	// whiteout keeps.
	layer map[string]bool
	// defaultACL is the folders given a default ACL, which what is made
	// in them inherits unless its entry says otherwise.
	defaultACL map[string]bool
	dirTimes   []dirTime
	total      Unpacked

	jobs     chan fileJob
	inFlight chan struct{} // one token per MiB of content in flight
	pending  sync.WaitGroup
	workers  sync.WaitGroup
	errMu    sync.Mutex
	err      error
	lostMu   sync.Mutex

	// policy labels the files written once it is loaded (see
	// PolicyLabels); inPolicy says the last entry was in the folders it
	// is read from.
	policy   PolicyLabeler
	inPolicy bool
}

type dirTime struct {
	rel   string
	atime unix.Timespec
	mtime unix.Timespec
}

func newUnpacker(ctx context.Context, dest string, o UnpackOptions, plain bool) *unpacker {
	u := &unpacker{ctx: ctx, dest: dest, o: o, kinds: map[string]byte{"": tar.TypeDir}, plain: plain, defaultACL: map[string]bool{},
		jobs: make(chan fileJob, 64), inFlight: make(chan struct{}, unpackInFlight>>20)}
	for range unpackWorkers {
		u.workers.Add(1)
		go func() {
			defer u.workers.Done()
			for j := range u.jobs {
				if u.failed() == nil {
					u.fail(u.writeFile(j.path, j.rel, j.h, j.xattrs, j.drop, bytes.NewReader(j.data)))
				}
				for range tokens(len(j.data)) {
					<-u.inFlight
				}
				u.pending.Done()
			}
		}()
	}
	return u
}

// tokens is how many in-flight tokens n bytes take.
func tokens(n int) int { return (n + 1<<20 - 1) >> 20 }

func (u *unpacker) fail(err error) {
	if err == nil {
		return
	}
	u.errMu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.errMu.Unlock()
}

func (u *unpacker) failed() error {
	u.errMu.Lock()
	defer u.errMu.Unlock()
	return u.err
}

// wait waits for the files in flight and returns the first error.
func (u *unpacker) wait() error {
	u.pending.Wait()
	return u.failed()
}

// stop ends the workers.
func (u *unpacker) stop() {
	close(u.jobs)
	u.workers.Wait()
	if u.policy != nil {
		u.policy.Close()
		u.policy = nil
	}
}

// watchPolicy loads the image's SELinux policy (UnpackOptions.Labels) when
// the entry name is the first past the folders it is read from, with the
// files in flight on disk first. A policy that cannot be read yet is left
// for the commit to read, and to say what is wrong with it.
func (u *unpacker) watchPolicy(name string) error {
	l := u.o.Labels
	if l == nil || u.o.Known == nil || u.policy != nil {
		return nil
	}
	was := u.inPolicy
	u.inPolicy = inPolicyFolder(name)
	if u.inPolicy || !was {
		return nil
	}
	if err := u.wait(); err != nil {
		return err
	}
	if p, err := l.Load(u.dest); err == nil && p != nil {
		u.policy = p
	}
	return nil
}

// inPolicyFolder says the image path name is in a folder an SELinux
// policy is read from (selabel.Load).
func inPolicyFolder(name string) bool {
	for _, d := range []string{"etc/selinux", "usr/etc/selinux"} {
		if name == d || strings.HasPrefix(name, d+"/") {
			return true
		}
	}
	return false
}

// fileHash starts the checksum Known is given for the regular file or
// symlink rel: with the label the policy gives it when it is loaded and
// the layer gives the file none (see PolicyLabels).
func (u *unpacker) fileHash(rel string, h *tar.Header, mode uint32, symlink string, x []ostreerepo.Xattr) *ostreerepo.FileHash {
	if u.policy != nil && !slices.ContainsFunc(x, func(a ostreerepo.Xattr) bool { return a.Name == selinuxXattr }) {
		if p, ok := u.o.Labels.Path(rel); ok {
			// A lookup that fails fails the commit's lookup too, which
			// says so: here the file is checksummed as it is.
			if label, ok, err := u.policy.Label(p, mode); err == nil && ok {
				x = ostreerepo.WithLabel(x, label)
			}
		}
	}
	return ostreerepo.NewFileHash(uint32(h.Uid), uint32(h.Gid), mode, symlink, x)
}

// applyLayer applies one layer's tar stream.
func (u *unpacker) applyLayer(layer io.Reader) error {
	u.layer = map[string]bool{}
	u.dirTimes = u.dirTimes[:0]
	tr := tar.NewReader(layer)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := u.ctx.Err(); err != nil {
			return err
		}
		if err := u.failed(); err != nil {
			return err
		}
		if err := u.entry(h, tr); err != nil {
			return err
		}
	}
	if err := u.wait(); err != nil {
		return err
	}
	// Folder times last, deepest first: writing into a folder changes its.
	for i := len(u.dirTimes) - 1; i >= 0; i-- {
		d := u.dirTimes[i]
		// A folder removed or replaced since is skipped: only one still
		// there, reached through folders only, gets its times.
		if !u.realDir(d.rel) {
			continue
		}
		p := filepath.Join(u.dest, d.rel)
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{d.atime, d.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting the times of %s: %w", p, err)
		}
	}
	return nil
}

// entry applies one tar entry: the checks and the preparation every
// entry has, then what its type asks for.
func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax defaults for what follows, not a file
	}
	if u.o.OnEntry != nil {
		u.o.OnEntry(h)
	}
	name := EntryPath(h.Name)
	if err := u.watchPolicy(name); err != nil {
		return err
	}
	if name == "" {
		// The root itself: its metadata, as a folder's.
		if err := u.check(h, ""); err != nil {
			return err
		}
		return u.dir("", filepath.Clean(u.dest), h)
	}
	dirName, base := path.Split(name)
	parent, err := u.parent(strings.TrimSuffix(dirName, "/"))
	if err != nil {
		return err
	}
	if err := u.check(h, path.Join(parent, base)); err != nil {
		return err
	}
	if !u.plain && strings.HasPrefix(base, ".wh.") {
		return u.whiteout(h, name, parent, base)
	}
	e, err := u.place(h, name, parent, base)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return u.dir(e.rel, e.p, e.h)
	case tar.TypeReg: // archive/tar reads the old TypeRegA as TypeReg
		return u.regular(e, r)
	case tar.TypeSymlink:
		return u.symlink(e)
	case tar.TypeLink:
		return u.hardLink(e)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return u.device(e)
	default:
		return fmt.Errorf("unpacking %s: unknown tar entry type %q", name, h.Typeflag)
	}
}

// placedEntry is an entry that is not a whiteout, where it goes: rel,
// relative to dest, in the folder parent (its symlinks resolved), and p
// on disk. Its header h carries the times it gets.
type placedEntry struct {
	h              *tar.Header
	name           string // as the entry names it
	parent, rel, p string
}

// place readies the path of the entry h, named base in the folder parent:
// what is there goes (but a folder stays for a folder), the path counts as
// this layer's, and a file a commit takes over gets an object's times.
func (u *unpacker) place(h *tar.Header, name, parent, base string) (placedEntry, error) {
	rel := path.Join(parent, base)
	if old, ok := u.kind(rel); ok && !(old == tar.TypeDir && h.Typeflag == tar.TypeDir) {
		if err := u.remove(rel); err != nil {
			return placedEntry{}, err
		}
	}
	for p := rel; p != "." && p != "" && !u.layer[p]; p = path.Dir(p) {
		u.layer[p] = true
	}
	if (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink) && u.o.ObjectTimes != nil && u.o.ObjectTimes(rel) {
		object := *h
		object.ModTime, object.AccessTime = epoch, epoch
		h = &object
	}
	return placedEntry{h: h, name: name, parent: parent, rel: rel, p: filepath.Join(u.dest, rel)}, nil
}

// whiteout applies the whiteout entry h, named base (".wh." and all) in
// the folder parent: an opaque folder's, a removed path's, or aufs
// metadata, which is not content.
func (u *unpacker) whiteout(h *tar.Header, name, parent, base string) error {
	gone := strings.TrimPrefix(base, ".wh.")
	switch {
	case base == ".wh..wh..opq":
		if u.opaqueXattr != "" {
			return u.overlayOpaque(parent)
		}
		return u.opaque(parent)
	case strings.HasPrefix(base, ".wh..wh."):
		return nil
	case gone == "" || gone == "." || gone == "..":
		return fmt.Errorf("unpacking %s: a whiteout that names no file", name)
	case u.opaqueXattr != "":
		return u.overlayWhiteout(path.Join(parent, gone), h)
	default:
		return u.remove(path.Join(parent, gone))
	}
}

// xattrsOf is the entry's xattrs (entryXattrs), its SELinux label counted.
func (u *unpacker) xattrsOf(h *tar.Header) ([]ostreerepo.Xattr, error) {
	x, err := entryXattrs(h)
	if err != nil {
		return nil, err
	}
	u.countLabel(x)
	return x, nil
}

// regular writes a regular file, whose content r gives: handed to a
// worker, or written here when it is too big to hold, or extracted when it
// is an archive UnpackOptions.Extract names.
func (u *unpacker) regular(e placedEntry, r io.Reader) error {
	if into, ok := u.o.Extract[e.rel]; ok {
		return u.extract(e.rel, into, r)
	}
	u.kinds[e.rel] = tar.TypeReg
	u.total.Size += e.h.Size
	x, err := u.xattrsOf(e.h)
	if err != nil {
		return err
	}
	drop := u.inherited(e.parent, e.h, x)
	if e.h.Size > unpackInFlight/4 {
		// Too big to hold: written here, as it is read.
		return u.writeFile(e.p, e.rel, e.h, x, drop, r)
	}
	data := make([]byte, e.h.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return fmt.Errorf("reading %s from the layer: %w", e.name, err)
	}
	for range tokens(len(data)) {
		u.inFlight <- struct{}{}
	}
	u.pending.Add(1)
	u.jobs <- fileJob{path: e.p, rel: e.rel, h: e.h, xattrs: x, drop: drop, data: data}
	return nil
}

// symlink makes a symlink, and with Known set, records its checksum.
func (u *unpacker) symlink(e placedEntry) error {
	u.kinds[e.rel] = tar.TypeSymlink
	x, err := u.xattrsOf(e.h)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(e.h.Linkname, unix.AT_FDCWD, e.p); err != nil {
		return fmt.Errorf("making the symlink %s: %w", e.p, err)
	}
	if err := u.setMeta(e.p, e.h, x, u.inherited(e.parent, e.h, x), -1); err != nil {
		return err
	}
	if u.o.Known != nil {
		return u.record(e.p, -1, u.fileHash(e.rel, e.h, unix.S_IFLNK|0o777, e.h.Linkname, x))
	}
	return nil
}

// hardLink links the entry's path to the file it names, inside dest.
func (u *unpacker) hardLink(e placedEntry) error {
	// The file linked to must be whole on disk first.
	if err := u.wait(); err != nil {
		return err
	}
	linkDir, linkBase := path.Split(EntryPath(e.h.Linkname))
	targetDir, err := u.resolveDir(strings.TrimSuffix(linkDir, "/"))
	if err != nil {
		return err
	}
	target := path.Join(targetDir, linkBase)
	if err := unix.Linkat(unix.AT_FDCWD, filepath.Join(u.dest, target), unix.AT_FDCWD, e.p, 0); err != nil {
		return fmt.Errorf("linking %s to %s: %w", e.p, e.h.Linkname, err)
	}
	kind, _ := u.kind(target)
	u.kinds[e.rel] = kind
	return nil
}

// device makes a character or block device, or a FIFO.
func (u *unpacker) device(e placedEntry) error {
	u.kinds[e.rel] = e.h.Typeflag
	mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[e.h.Typeflag]
	if err := unix.Mknod(e.p, mode|0o600, int(unix.Mkdev(uint32(e.h.Devmajor), uint32(e.h.Devminor)))); err != nil {
		return fmt.Errorf("making %s: %w", e.p, err)
	}
	x, err := u.xattrsOf(e.h)
	if err != nil {
		return err
	}
	return u.setMeta(e.p, e.h, x, u.inherited(e.parent, e.h, x), -1)
}

// check asks o.Check about the entry h, whose path in the tree is rel.
func (u *unpacker) check(h *tar.Header, rel string) error {
	if u.o.Check == nil {
		return nil
	}
	return u.o.Check(h, rel)
}

// extract extracts the archive at rel into the folder into (see
// UnpackOptions.Extract), in place of writing it. An archive that comes
// again in a later layer replaces what the first one gave.
func (u *unpacker) extract(rel, into string, r io.Reader) error {
	// The files in flight first: one LabelLost call at a time.
	if err := u.wait(); err != nil {
		return err
	}
	if err := os.RemoveAll(into); err != nil {
		return fmt.Errorf("clearing %s for %s: %w", into, rel, err)
	}
	o := u.o
	o.Extract, o.Known, o.Labels, o.OnLayer, o.Check, o.SkipLayer = nil, nil, nil, nil, nil, nil
	got, err := extractArchive(u.ctx, r, into, o)
	u.total.Size += got.Size
	u.total.Labels += got.Labels
	if err != nil {
		return fmt.Errorf("extracting %s into %s: %w", rel, into, err)
	}
	return nil
}

// dir makes a folder, or sets the metadata of the one there.
func (u *unpacker) dir(rel, p string, h *tar.Header) error {
	if _, ok := u.kind(rel); !ok {
		if err := unix.Mkdir(p, 0o700); err != nil {
			return fmt.Errorf("making %s: %w", p, err)
		}
		u.kinds[rel] = tar.TypeDir
	}
	x, err := u.xattrsOf(h)
	if err != nil {
		return err
	}
	parent := strings.TrimSuffix(path.Dir(rel), ".")
	if err := u.setMeta(p, h, x, u.inherited(parent, h, x), -1); err != nil {
		return err
	}
	if slices.ContainsFunc(x, func(a ostreerepo.Xattr) bool { return a.Name == aclDefaultXattr }) {
		u.defaultACL[rel] = true
	} else {
		delete(u.defaultACL, rel)
	}
	u.dirTimes = append(u.dirTimes, dirTime{rel: rel, atime: timespec(h.AccessTime, h.ModTime), mtime: timespec(h.ModTime, h.ModTime)})
	return nil
}

// inherited is the ACL xattrs an entry made in parent would inherit from
// its default ACL but does not have itself: they are removed, so it ends
// with exactly what its entry says, as GNU tar --acls leaves it.
func (u *unpacker) inherited(parent string, h *tar.Header, x []ostreerepo.Xattr) []string {
	if !u.defaultACL[parent] || h.Typeflag == tar.TypeSymlink {
		return nil
	}
	names := []string{aclAccessXattr}
	if h.Typeflag == tar.TypeDir {
		names = append(names, aclDefaultXattr)
	}
	var drop []string
	for _, n := range names {
		if !slices.ContainsFunc(x, func(a ostreerepo.Xattr) bool { return a.Name == n }) {
			drop = append(drop, n)
		}
	}
	return drop
}

// kind returns the type of what is at rel, from kinds or, when merging
// into a folder with content, from the disk.
func (u *unpacker) kind(rel string) (byte, bool) {
	k, ok := u.kinds[rel]
	if ok || !u.merge || rel == "" {
		return k, ok
	}
	// Looked up on disk only below a folder known to be one (not a
	// symlink), part by part: a symlink on the way is never followed.
	if !u.realDir(strings.TrimSuffix(path.Dir(rel), ".")) {
		return 0, false
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(u.dest, rel), &st); err != nil {
		return 0, false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		k = tar.TypeDir
	case unix.S_IFREG:
		k = tar.TypeReg
	case unix.S_IFLNK:
		k = tar.TypeSymlink
	default:
		k = tar.TypeFifo
	}
	u.kinds[rel] = k
	return k, true
}

func (u *unpacker) isDir(rel string) bool {
	k, _ := u.kind(rel)
	return k == tar.TypeDir
}

// realDir says rel is a folder and so is every folder above it, up to
// dest: a path through them follows no symlink.
func (u *unpacker) realDir(rel string) bool {
	for ; rel != "" && rel != "."; rel = path.Dir(rel) {
		if !u.isDir(rel) {
			return false
		}
	}
	return true
}

// parent returns where the folder dir (relative to dest) really is,
// resolving symlinks in it inside dest, and makes what is missing of it.
func (u *unpacker) parent(dir string) (string, error) {
	real, err := u.resolveDir(dir)
	if err != nil || u.realDir(real) {
		return real, err
	}
	// Folders the layer does not list: made as containers-storage makes
	// them, owned by root, 0755.
	parts := strings.Split(real, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		switch kind, ok := u.kind(sub); {
		case ok && kind == tar.TypeDir:
			continue
		case ok:
			return "", fmt.Errorf("unpacking under %s: %s is not a folder", dir, sub)
		}
		if err := os.Mkdir(filepath.Join(u.dest, sub), 0o755); err != nil {
			return "", fmt.Errorf("making %s: %w", filepath.Join(u.dest, sub), err)
		}
		u.kinds[sub] = tar.TypeDir
	}
	return real, nil
}

// resolveDir returns the path the folder dir leads to, relative to dest,
// with its symlinks followed inside dest: a layer's symlink never leads
// out of it.
func (u *unpacker) resolveDir(dir string) (string, error) {
	if u.realDir(dir) {
		return dir, nil
	}
	abs, err := securejoin.SecureJoin(u.dest, dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s under %s: %w", dir, u.dest, err)
	}
	r, err := filepath.Rel(u.dest, abs)
	if err != nil {
		return "", fmt.Errorf("resolving %s under %s: %w", dir, u.dest, err)
	}
	if r == "." {
		return "", nil
	}
	return filepath.ToSlash(r), nil
}

// remove deletes rel and what is under it, from disk and from the record,
// once the files in flight are down.
func (u *unpacker) remove(rel string) error {
	if err := u.wait(); err != nil {
		return err
	}
	kind, ok := u.kind(rel)
	if !ok {
		return nil
	}
	p := filepath.Join(u.dest, rel)
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	delete(u.kinds, rel)
	if kind == tar.TypeDir {
		for name := range u.kinds {
			if strings.HasPrefix(name, rel+"/") {
				delete(u.kinds, name)
			}
		}
	}
	return nil
}

// opaque empties the folder dir of what earlier layers put there.
func (u *unpacker) opaque(dir string) error {
	if err := u.wait(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(u.dest, dir))
	if err != nil {
		return fmt.Errorf("reading %s: %w", filepath.Join(u.dest, dir), err)
	}
	for _, e := range entries {
		rel := path.Join(dir, e.Name())
		switch {
		case !u.layer[rel]:
			if err := u.remove(rel); err != nil {
				return err
			}
		case u.kinds[rel] == tar.TypeDir:
			// A folder this layer lists (or writes into) keeps only what
			// this layer puts in it, as the opaque folder does.
			if err := u.opaque(rel); err != nil {
				return err
			}
		}
	}
	return nil
}

// overlayWhiteout records that rel is removed, in a layer's overlay diff:
// a 0/0 character device in its place, owned as the whiteout entry is.
func (u *unpacker) overlayWhiteout(rel string, h *tar.Header) error {
	if _, ok := u.kind(rel); ok {
		if err := u.remove(rel); err != nil {
			return err
		}
	}
	p := filepath.Join(u.dest, rel)
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("making the whiteout %s: %w", p, err)
	}
	u.kinds[rel] = tar.TypeChar
	if err := unix.Lchown(p, h.Uid, h.Gid); err != nil {
		return fmt.Errorf("setting the owner of the whiteout %s: %w", p, err)
	}
	return nil
}

// overlayOpaque marks the folder dir opaque, in a layer's overlay diff:
// what lower layers have in it is hidden.
func (u *unpacker) overlayOpaque(dir string) error {
	p := filepath.Join(u.dest, dir)
	if err := unix.Lsetxattr(p, u.opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("marking %s opaque: %w", p, err)
	}
	return nil
}

// writeFile writes one regular file whole: content, owner, mode, xattrs,
// times; with Known set, it checksums the content as it goes.
func (u *unpacker) writeFile(p, rel string, h *tar.Header, x []ostreerepo.Xattr, drop []string, r io.Reader) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var w io.Writer = f
	var sum *ostreerepo.FileHash
	if u.o.Known != nil {
		sum = u.fileHash(rel, h, unix.S_IFREG|uint32(h.Mode&0o7777), "", x)
		w = io.MultiWriter(f, sum)
	}
	if n, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	} else if n != h.Size {
		return fmt.Errorf("writing %s: the layer gave %d of its %d bytes", p, n, h.Size)
	}
	if err := u.setMeta(p, h, x, drop, fd); err != nil {
		return err
	}
	if sum != nil {
		return u.record(p, fd, sum)
	}
	return nil
}

// setMeta gives p (through fd when >= 0) the entry's owner, mode, xattrs
// and, but for a folder (see applyLayer), times.
func (u *unpacker) setMeta(p string, h *tar.Header, x []ostreerepo.Xattr, drop []string, fd int) error {
	var err error
	for _, name := range drop {
		if fd >= 0 {
			err = unix.Fremovexattr(fd, name)
		} else {
			err = unix.Lremovexattr(p, name)
		}
		if err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("removing the inherited ACL of %s: %w", p, err)
		}
	}
	if fd >= 0 {
		err = unix.Fchown(fd, h.Uid, h.Gid)
	} else {
		err = unix.Lchown(p, h.Uid, h.Gid)
	}
	if err != nil {
		return fmt.Errorf("setting the owner of %s: %w", p, err)
	}
	// The mode after the owner: chown clears set-id bits.
	if h.Typeflag != tar.TypeSymlink {
		if fd >= 0 {
			err = unix.Fchmod(fd, uint32(h.Mode&0o7777))
		} else {
			err = unix.Fchmodat(unix.AT_FDCWD, p, uint32(h.Mode&0o7777), 0)
		}
		if err != nil {
			return fmt.Errorf("setting the mode of %s: %w", p, err)
		}
	}
	for _, a := range x {
		if fd >= 0 {
			err = unix.Fsetxattr(fd, a.Name, a.Value, 0)
		} else {
			err = unix.Lsetxattr(p, a.Name, a.Value, 0)
		}
		if err == nil {
			continue
		}
		err = fmt.Errorf("setting the xattr %s (%q) of %s: %w", a.Name, a.Value, p, err)
		if a.Name != selinuxXattr || u.o.LabelLost == nil {
			return err
		}
		u.lostMu.Lock()
		err = u.o.LabelLost(p, err)
		u.lostMu.Unlock()
		if err != nil {
			return err
		}
	}
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	ts := []unix.Timespec{timespec(h.AccessTime, h.ModTime), timespec(h.ModTime, h.ModTime)}
	if fd >= 0 {
		err = futimens(fd, ts)
	} else {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("setting the times of %s: %w", p, err)
	}
	return nil
}

// futimens sets the times of the file open as fd, as utimensat does with
// no path: without looking the path up again (x/sys/unix's Futimes goes
// through /proc/self/fd).
func futimens(fd int, ts []unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// record gives Known the checksum of the file at p (fd when >= 0), as it
// is now, whole.
func (u *unpacker) record(p string, fd int, sum *ostreerepo.FileHash) error {
	var st unix.Stat_t
	var err error
	if fd >= 0 {
		err = unix.Fstat(fd, &st)
	} else {
		err = unix.Lstat(p, &st)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	u.o.Known.Add(&st, sum)
	return nil
}

// countLabel counts an SELinux label among x.
func (u *unpacker) countLabel(x []ostreerepo.Xattr) {
	for _, a := range x {
		if a.Name == selinuxXattr {
			u.total.Labels++
		}
	}
}

// entryXattrs is the entry's xattrs, sorted by name as ostree keeps them:
// its SCHILY.xattr records, and GNU tar's records of SELinux labels
// (--selinux) and ACLs (--acls), as the xattrs they stand for.
func entryXattrs(h *tar.Header) ([]ostreerepo.Xattr, error) {
	var x []ostreerepo.Xattr
	have := map[string]bool{}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			x = append(x, ostreerepo.Xattr{Name: name, Value: []byte(v)})
			have[name] = true
		}
	}
	if label, ok := h.PAXRecords["RHT.security.selinux"]; ok {
		// GNU tar --selinux sets it as libselinux does, with a NUL at the
		// end, over any xattr record of it.
		x = slices.DeleteFunc(x, func(a ostreerepo.Xattr) bool { return a.Name == selinuxXattr })
		x = append(x, ostreerepo.Xattr{Name: selinuxXattr, Value: append([]byte(label), 0)})
	}
	for record, name := range map[string]string{"SCHILY.acl.access": aclAccessXattr, "SCHILY.acl.default": aclDefaultXattr} {
		text, ok := h.PAXRecords[record]
		if !ok || have[name] {
			continue
		}
		value, err := aclXattr(text)
		if err != nil {
			return nil, fmt.Errorf("reading the ACL of %s: %w", h.Name, err)
		}
		x = append(x, ostreerepo.Xattr{Name: name, Value: value})
	}
	sort.Slice(x, func(i, j int) bool { return x[i].Name < x[j].Name })
	return x, nil
}

// timespec is t, or fallback when t is unset (a tar without atimes).
func timespec(t, fallback time.Time) unix.Timespec {
	if t.IsZero() {
		t = fallback
	}
	return unix.NsecToTimespec(t.UnixNano())
}
