package builder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sys/unix"
)

// etcChanges is what a node changed in /etc against the OS defaults in
// /usr/etc, as `ostree admin config-diff` sees it.
type etcChanges struct {
	// changed lists the added or modified entries, relative to etc/,
	// parents before children.
	changed []string
	// deleted lists the defaults the node removed, relative to etc/, sorted.
	deleted []string
}

// diffEtc compares root/etc with root/usr/etc. excluded takes a
// root-relative path ("etc/hostname"). keepXattr picks the xattrs that
// count as a difference.
func diffEtc(root string, excluded func(rel string) bool, keepXattr func(string) bool) (etcChanges, error) {
	var out etcChanges
	etc, dflt := filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")
	err := walk(etc, ".", nil, func(hostPath, rel string, st *unix.Stat_t) (bool, error) {
		if rel == "." {
			return true, nil
		}
		rel = rel[2:]
		if excluded("etc/" + rel) {
			return false, nil
		}
		same, err := sameEntry(hostPath, filepath.Join(dflt, rel), st, keepXattr)
		if err != nil {
			return false, err
		}
		if !same {
			out.changed = append(out.changed, rel)
		}
		return true, nil
	})
	if err != nil {
		return out, err
	}
	err = walk(dflt, ".", nil, func(hostPath, rel string, st *unix.Stat_t) (bool, error) {
		if rel == "." {
			return true, nil
		}
		rel = rel[2:]
		// What is never captured is never deleted on the target either: a
		// default the node removed there is the target's business (its
		// network connections, say).
		if excluded("etc/" + rel) {
			return false, nil
		}
		var live unix.Stat_t
		if err := unix.Lstat(filepath.Join(etc, rel), &live); errors.Is(err, unix.ENOENT) {
			out.deleted = append(out.deleted, rel)
		}
		return true, nil
	})
	sort.Strings(out.deleted)
	return out, err
}

// sameEntry reports whether the live entry equals the default at dflt in
// type, mode, owner, xattrs, link target and content.
func sameEntry(live, dflt string, st *unix.Stat_t, keepXattr func(string) bool) (bool, error) {
	var ds unix.Stat_t
	if err := unix.Lstat(dflt, &ds); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("reading %q: %w", dflt, err)
	}
	if st.Mode != ds.Mode || st.Uid != ds.Uid || st.Gid != ds.Gid {
		return false, nil
	}
	if same, err := sameXattrs(live, dflt, keepXattr); err != nil || !same {
		return same, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		a, err := os.Readlink(live)
		if err != nil {
			return false, fmt.Errorf("reading link %q: %w", live, err)
		}
		b, err := os.Readlink(dflt)
		if err != nil {
			return false, fmt.Errorf("reading link %q: %w", dflt, err)
		}
		return a == b, nil
	case unix.S_IFREG:
		if st.Size != ds.Size {
			return false, nil
		}
		return sameContent(live, dflt)
	}
	return true, nil
}

func sameXattrs(a, b string, keep func(string) bool) (bool, error) {
	read := func(p string) (map[string]string, error) {
		names, err := xattrs.List(p)
		if err != nil {
			return nil, fmt.Errorf("listing xattrs of %q: %w", p, err)
		}
		m := map[string]string{}
		for _, n := range names {
			if keep(n) {
				v, err := xattrs.Get(p, n)
				if err != nil {
					return nil, fmt.Errorf("reading xattr %s of %q: %w", n, p, err)
				}
				m[n] = string(v)
			}
		}
		return m, nil
	}
	ma, err := read(a)
	if err != nil {
		return false, err
	}
	mb, err := read(b)
	if err != nil {
		return false, err
	}
	if len(ma) != len(mb) {
		return false, nil
	}
	for k, v := range ma {
		if w, ok := mb[k]; !ok || w != v {
			return false, nil
		}
	}
	return true, nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", a, err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", b, err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, fmt.Errorf("reading %q: %w", a, ea)
		}
		if eb != nil {
			return false, fmt.Errorf("reading %q: %w", b, eb)
		}
	}
}
