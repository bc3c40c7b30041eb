// Package mounts reads the mount table of this process.
package mounts

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Under lists the mount points strictly under dir, deepest first, with the
// octal escapes of the mount table (\040 for a space) undone.
func Under(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	return under(string(data), dir), nil
}

func under(mountinfo, dir string) []string {
	dir = filepath.Clean(dir)
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := unescape(f[4]); mp != dir && strings.HasPrefix(mp, prefix) {
			out = append(out, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// unescape undoes the \NNN octal escapes the kernel writes for spaces,
// tabs, newlines and backslashes in mount points.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
