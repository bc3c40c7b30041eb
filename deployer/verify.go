package deployer

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seedbuild/seedbuild/labels"
)

// verify checks the new deployment: it exists, its /etc holds the seed's
// /etc changes, the stateroot's var holds the seed's /var, and its boot
// entry carries the kernel arguments.
//
// Args: sysroot, stateroot, kind; image-root, the image's root to compare
// the mount points with ("" checks that the usual ones are there);
// seed-etc, the seed's /etc state; image-var, the image's /var.
func (e *executor) verify(_ context.Context, st Step, a map[string]string) (string, error) {
	dep := a[argDeployment]
	if fi, err := os.Stat(dep); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the new deployment %q is missing", dep)
	}
	var problems []string
	varDir := filepath.Join(a[argSysroot], "ostree/deploy", a[argStateroot], "var")
	if a[argSeedEtc] != "" {
		problems = append(problems, compareEtc(a[argSeedEtc], filepath.Join(dep, "etc"))...)
	}
	if a[argImageVar] != "" {
		problems = append(problems, compareVar(a[argImageVar], varDir)...)
	} else if entries, err := os.ReadDir(varDir); err != nil || len(entries) == 0 {
		problems = append(problems, "the stateroot's var is empty")
	}
	if a[argKind] != labels.Classic.String() {
		problems = append(problems, checkMountPoints(a[argImageRoot], a[argMountPoints], dep)...)
	}
	entry, entryProblems := e.checkBootEntry(a[argSysroot], a[argStateroot])
	problems = append(problems, entryProblems...)
	if entry != "" {
		if err := e.makes(st, map[string]string{varName(phBootEntry): entry}); err != nil {
			return "", err
		}
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return "", fmt.Errorf("verifying the deployment: %s", strings.Join(problems, "; "))
	}
	return "", nil
}

// dirMode is a folder's permission bits with the sticky bit, as chmod
// spells them (1777 for /tmp).
func dirMode(fi os.FileInfo) uint32 {
	m := uint32(fi.Mode().Perm())
	if fi.Mode()&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// mountPoints are the folders of an OS root that stay empty in an image and
// that the booted system mounts over; a deployment without them does not
// boot.
var mountPoints = []string{"dev", "proc", "sys", "run", "tmp", "var"}

// mountPointModes are the mount points root has as folders, with their
// modes (dirMode).
func mountPointModes(root string) map[string]uint32 {
	modes := map[string]uint32{}
	for _, name := range mountPoints {
		if fi, err := os.Lstat(filepath.Join(root, name)); err == nil && fi.IsDir() {
			modes[name] = dirMode(fi)
		}
	}
	return modes
}

// checkMountPoints checks that the deployment keeps every mount point the
// image's root has, as a folder with the image's mode. With no image root
// to read, points lists them as NAME:MODE (octal, sticky bit included).
func checkMountPoints(imageRoot, points, dep string) []string {
	want := map[string]uint32{}
	if imageRoot != "" {
		want = mountPointModes(imageRoot)
	}
	for _, p := range strings.Fields(points) {
		name, mode, _ := strings.Cut(p, ":")
		if m, err := strconv.ParseUint(mode, 8, 32); err == nil {
			want[name] = uint32(m)
		}
	}
	var problems []string
	for _, name := range mountPoints {
		w, ok := want[name]
		if !ok {
			continue
		}
		got, err := os.Lstat(filepath.Join(dep, name))
		switch {
		case err != nil || !got.IsDir():
			problems = append(problems, "the mount point /"+name+" is missing from the deployment")
		case dirMode(got) != w:
			problems = append(problems, fmt.Sprintf("the mount point /%s has mode %04o, the image's has %04o", name, dirMode(got), w))
		}
	}
	return problems
}

func compareEtc(seedEtc, etc string) []string {
	var problems []string
	filepath.WalkDir(seedEtc, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(seedEtc, p)
		want, err1 := os.ReadFile(p)
		got, err2 := os.ReadFile(filepath.Join(etc, rel))
		if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			problems = append(problems, "/etc/"+rel+" does not hold the seed's content")
		}
		return nil
	})
	return problems
}

func compareVar(seedVar, varDir string) []string {
	var problems []string
	filepath.WalkDir(seedVar, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(seedVar, p)
		if _, err := os.Lstat(filepath.Join(varDir, rel)); err != nil {
			problems = append(problems, "var/"+rel+" is missing")
		}
		return nil
	})
	return problems
}

// checkBootEntry finds the stateroot's boot entry and checks its options.
// It returns the entry's path when it is right.
func (e *executor) checkBootEntry(sysroot, stateroot string) (string, []string) {
	entries, _ := filepath.Glob(filepath.Join(sysroot, "boot/loader/entries/*.conf"))
	for _, f := range entries {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var options string
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "options "); ok {
				options = v
			}
		}
		if !strings.Contains(options, "/"+stateroot+"/") {
			continue
		}
		have := map[string]bool{}
		for _, o := range strings.Fields(options) {
			have[o] = true
		}
		var missing []string
		for _, k := range e.kargs {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return "", []string{fmt.Sprintf("boot entry %s lacks kernel arguments %q", filepath.Base(f), missing)}
		}
		return f, nil
	}
	return "", []string{"no boot entry for stateroot " + stateroot}
}
