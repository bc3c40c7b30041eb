// Package xattrs reads extended attributes of files without following
// symlinks, growing its buffers as the kernel asks.
package xattrs

import (
	"errors"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// SELinux is the xattr of SELinux labels.
const SELinux = "security.selinux"

// List returns the names of path's extended attributes, sorted, without
// following a symlink. A filesystem without xattrs gives none.
func List(path string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out, nil
	}
}

// Get returns the value of path's extended attribute name, without
// following a symlink.
func Get(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
