package frontend

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/seedbuild/seedbuild/internal/kargsd"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
)

// Rule IDs for images.
const (
	RuleVarRunLink   = "IM001"
	RuleKernels      = "IM002"
	RuleNonUTF8      = "IM003"
	RuleAPIDirs      = "IM004"
	RuleImageKargs   = "IM005"
	RuleEtcAndUsrEtc = "IM006"
	RuleDigestless   = "IM007"
)

// apiDirs are the folders a bootable root must have.
var apiDirs = []string{"dev", "proc", "sys", "run", "tmp", "var", "sysroot"}

// LintImage checks an image's root filesystem, mounted at root, against
// bootc's rules. name is what findings carry as their file.
func LintImage(root, name string) []Finding {
	l := &linter{file: name}
	if fi, err := os.Lstat(filepath.Join(root, "var/run")); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		l.add(RuleVarRunLink, Error, 0, "/var/run is not a symlink", "make /var/run a symlink to ../run")
	}
	if kernels, _ := filepath.Glob(filepath.Join(root, "usr/lib/modules/*/vmlinuz")); len(kernels) > 1 {
		var names []string
		for _, k := range kernels {
			names = append(names, filepath.Base(filepath.Dir(k)))
		}
		l.add(RuleKernels, Error, 0, fmt.Sprintf("%d kernels under /usr/lib/modules: %s", len(kernels), strings.Join(names, ", ")), "keep exactly one kernel in the image")
	}
	var missing []string
	for _, d := range apiDirs {
		if fi, err := os.Lstat(filepath.Join(root, d)); err != nil || (!fi.IsDir() && fi.Mode()&os.ModeSymlink == 0) {
			missing = append(missing, "/"+d)
		}
	}
	if len(missing) > 0 {
		l.add(RuleAPIDirs, Error, 0, "missing API folders: "+strings.Join(missing, ", "), "create them empty in the image")
	}
	tomls, _ := filepath.Glob(filepath.Join(root, labels.KargsDir, "*.toml"))
	for _, p := range tomls {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if _, _, err := kargsd.Parse(string(data)); err != nil {
			l.add(RuleImageKargs, Error, 0, fmt.Sprintf("%s/%s is invalid: %v", labels.KargsDir, filepath.Base(p), err), `write kargs = ["arg1", "arg2"]`)
		}
	}
	if populated(filepath.Join(root, "etc")) && populated(filepath.Join(root, "usr/etc")) {
		l.add(RuleEtcAndUsrEtc, Error, 0, "both /etc and /usr/etc have content", "ship defaults in /etc only; ostree moves it to /usr/etc")
	}
	lintContainersList(l, root)
	var bad []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !utf8.ValidString(d.Name()) {
			rel, _ := filepath.Rel(root, p)
			bad = append(bad, fmt.Sprintf("%q", "/"+rel))
		}
		return nil
	})
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
		}
		l.add(RuleNonUTF8, Error, 0, "non-UTF-8 path names: "+strings.Join(bad, ", "), "rename them; bootc refuses them")
	}
	return l.findings
}

func populated(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

// lintContainersList flags the images of a seed's precache list that are
// named by tag alone: a tag can move between the seed's making and the
// target's precache, which then pulls another image than the seed ran.
func lintContainersList(l *linter, root string) {
	for _, p := range []string{labels.SeedDir + "/" + labels.ContainersListFile, "/" + labels.ContainersListFile} {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		images := seedimage.ParseContainersList(string(data))
		if tagged := seedimage.ByTag(images); len(tagged) > 0 {
			shown := tagged
			if len(shown) > 5 {
				shown = append(append([]string{}, shown[:5]...), fmt.Sprintf("and %d more", len(tagged)-5))
			}
			l.add(RuleDigestless, Warning, 0, fmt.Sprintf("%s lists %d image(s), %d by tag alone: %s", p, len(images), len(tagged), strings.Join(shown, ", ")),
				"name each image by digest (IMAGE@sha256:...), as the node's store names them")
		}
		return
	}
}
