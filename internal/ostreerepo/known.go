package ostreerepo

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"

	"golang.org/x/sys/unix"
)

// FileHash computes a file object's checksum as its content is written:
// the header (owner, mode, symlink target, xattrs) first, then the bytes.
type FileHash struct {
	h      hash.Hash
	header [32]byte
}

// NewFileHash starts the checksum of a regular file or symlink with this
// metadata; mode carries the file type bits (S_IFREG, S_IFLNK). xattrs
// must be sorted by name, as List gives them.
func NewFileHash(uid, gid, mode uint32, symlink string, xattrs []Xattr) *FileHash {
	header := fileHeader(uid, gid, mode, symlink, xattrs)
	return &FileHash{h: objectHash(header), header: sha256.Sum256(header)}
}

// objectHash starts a file object's checksum as ostree computes it: the
// header's size (big-endian, padded to 8 bytes), the header, then the
// content the caller writes.
func objectHash(header []byte) hash.Hash {
	h := sha256.New()
	var prefix [8]byte
	binary.BigEndian.PutUint32(prefix[:4], uint32(len(header)))
	h.Write(prefix[:])
	h.Write(header)
	return h
}

// Write adds content bytes.
func (f *FileHash) Write(p []byte) (int, error) { return f.h.Write(p) }

// Sum is the object's checksum, of the header and the bytes written.
func (f *FileHash) Sum() [32]byte {
	var sum [32]byte
	copy(sum[:], f.h.Sum(nil))
	return sum
}

// Known remembers the checksums of files that were checksummed as they
// were written (an unpack), so that a commit of the same files need not
// read them back. A checksum is used only for the same inode, unchanged
// since (the same change time and size) and with the same header; any
// other file is read as usual. Nothing may rewrite a file in place
// between the two (the change time can be as coarse as a clock tick):
// the deployer only renames and removes there. Safe for concurrent use.
type Known struct {
	mu   sync.Mutex
	m    map[uint64]knownFile
	hits int
}

type knownFile struct {
	dev    uint64
	ctime  unix.Timespec
	size   int64
	header [32]byte
	sum    [32]byte
}

// NewKnown makes an empty record.
func NewKnown() *Known { return &Known{m: map[uint64]knownFile{}} }

// Add records f's checksum for the file st describes, as it is once
// written whole, with its owner, mode, xattrs and times set. f's header
// may carry an SELinux label the file does not have yet, the one a commit
// that labels (Options.Labels) will give it: the commit looks its files
// up as they were before it labelled them.
func (k *Known) Add(st *unix.Stat_t, f *FileHash) {
	sum := f.Sum()
	k.mu.Lock()
	k.m[st.Ino] = knownFile{dev: st.Dev, ctime: st.Ctim, size: st.Size, header: f.header, sum: sum}
	k.mu.Unlock()
}

// Len is how many files are recorded.
func (k *Known) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// Hits is how many files commits took the recorded checksum of, rather
// than read.
func (k *Known) Hits() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.hits
}

// lookup returns the recorded checksum of the file st describes, when it
// has not changed since and header is the one it was checksummed with.
func (k *Known) lookup(st *unix.Stat_t, header []byte) ([32]byte, bool) {
	if k == nil {
		return [32]byte{}, false
	}
	k.mu.Lock()
	f, ok := k.m[st.Ino]
	k.mu.Unlock()
	if !ok || f.dev != st.Dev || f.ctime != st.Ctim || f.size != st.Size || f.header != sha256.Sum256(header) {
		return [32]byte{}, false
	}
	k.mu.Lock()
	k.hits++
	k.mu.Unlock()
	return f.sum, true
}
