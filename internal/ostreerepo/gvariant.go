package ostreerepo

import (
	"encoding/binary"
	"sort"
)

// The GVariant serialisations of the few ostree object types written here,
// in GVariant's normal form (see the GVariant specification): fixed-size
// members at their alignment, and the end offset of each variable-size
// member but the last appended, last first, each as wide as the container
// needs. ostree stores its integers big-endian.

// Xattr is an extended attribute as ostree keeps it.
type Xattr struct {
	Name  string
	Value []byte
}

// offsetSize is the width of the framing offsets of a container whose
// body is n bytes and which needs count offsets.
func offsetSize(n, count int) int {
	for _, s := range []int{1, 2, 4} {
		if n+count*s < 1<<(8*s) {
			return s
		}
	}
	return 8
}

func appendOffsets(body []byte, ends []int) []byte {
	s := offsetSize(len(body), len(ends))
	for _, e := range ends {
		switch s {
		case 1:
			body = append(body, byte(e))
		case 2:
			body = binary.LittleEndian.AppendUint16(body, uint16(e))
		case 4:
			body = binary.LittleEndian.AppendUint32(body, uint32(e))
		default:
			body = binary.LittleEndian.AppendUint64(body, uint64(e))
		}
	}
	return body
}

// tuple serialises members (each already serialised) of a tuple whose
// members are all byte-aligned and variable-size.
func tuple(members ...[]byte) []byte {
	var body []byte
	var ends []int
	for i, m := range members {
		body = append(body, m...)
		if i < len(members)-1 {
			ends = append(ends, len(body))
		}
	}
	reverse(ends)
	return appendOffsets(body, ends)
}

// array serialises an array of variable-size, byte-aligned elements.
func array(elems [][]byte) []byte {
	if len(elems) == 0 {
		return nil
	}
	var body []byte
	var ends []int
	for _, e := range elems {
		body = append(body, e...)
		ends = append(ends, len(body))
	}
	return appendOffsets(body, ends)
}

func reverse(s []int) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// str is a GVariant string: its bytes and a NUL.
func str(s string) []byte { return append([]byte(s), 0) }

// xattrsVariant is a(ayay); names are bytestrings with their NUL.
func xattrsVariant(x []Xattr) []byte {
	elems := make([][]byte, len(x))
	for i, a := range x {
		elems[i] = tuple(str(a.Name), a.Value)
	}
	return array(elems)
}

// be32 is four big-endian bytes, as ostree stores a u.
func be32(body []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(body, v) }

// fileHeader is (uuuusa(ayay)): uid, gid, mode, rdev (0), the symlink
// target ("" for a regular file) and the xattrs.
func fileHeader(uid, gid, mode uint32, symlink string, x []Xattr) []byte {
	body := be32(be32(be32(be32(nil, uid), gid), mode), 0)
	body = append(body, str(symlink)...)
	end := len(body)
	body = append(body, xattrsVariant(x)...)
	return appendOffsets(body, []int{end})
}

// dirMeta is (uuua(ayay)).
func dirMeta(uid, gid, mode uint32, x []Xattr) []byte {
	body := be32(be32(be32(nil, uid), gid), mode)
	return append(body, xattrsVariant(x)...)
}

// TreeFile and TreeDir are a dirtree's entries.
type TreeFile struct {
	Name     string
	Checksum [32]byte
}

type TreeDir struct {
	Name       string
	Tree, Meta [32]byte
}

// dirTree is (a(say)a(sayay)), each list in name order.
func dirTree(files []TreeFile, dirs []TreeDir) []byte {
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Name < dirs[j].Name })
	fe := make([][]byte, len(files))
	for i, f := range files {
		fe[i] = tuple(str(f.Name), f.Checksum[:])
	}
	de := make([][]byte, len(dirs))
	for i, d := range dirs {
		de[i] = tuple(str(d.Name), d.Tree[:], d.Meta[:])
	}
	return tuple(array(fe), array(de))
}

// commitVariant is (a{sv}aya(say)sstayay): no metadata, no parent, no
// related objects, subject and body, the timestamp, and the root's dirtree
// and dirmeta checksums.
func commitVariant(subject string, timestamp uint64, tree, meta [32]byte) []byte {
	// a{sv} empty, ay empty, a(say) empty: three zero-length members.
	var body []byte
	ends := []int{0, 0, 0}
	body = append(body, str(subject)...)
	ends = append(ends, len(body))
	body = append(body, str("")...)
	ends = append(ends, len(body))
	// t is 8-aligned.
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	body = binary.BigEndian.AppendUint64(body, timestamp)
	body = append(body, tree[:]...)
	ends = append(ends, len(body))
	body = append(body, meta[:]...)
	reverse(ends)
	return appendOffsets(body, ends)
}
