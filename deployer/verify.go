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
func (e *executor) verify(ctx context.Context, st Step, a map[string]string) (string, error) {
	dep := a[argDeployment]
	if fi, err := os.Stat(dep); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the new deployment %q is missing", dep)
	}
	var problems []string
	var said string
	varDir := filepath.Join(a[argSysroot], "ostree/deploy", a[argStateroot], "var")
	if a[argSeedEtc] != "" {
		etcProblems, rewritten := compareEtc(a[argSeedEtc], filepath.Join(dep, "etc"), a[argPolicyRefreshed] == "true")
		problems = append(problems, etcProblems...)
		if rewritten > 0 {
			said = fmt.Sprintf("%d file(s) of the seed's /etc were rewritten by ostree itself (%s), as expected", rewritten, ostreeWritesSummary)
		}
	}
	if a[argImageVar] != "" {
		problems = append(problems, compareVar(a[argImageVar], varDir)...)
	} else if entries, err := os.ReadDir(varDir); err != nil || len(entries) == 0 {
		problems = append(problems, "the stateroot's var is empty")
	}
	if a[argKind] != labels.Classic.String() {
		problems = append(problems, checkMountPoints(a[argImageRoot], a[argMountPoints], dep)...)
	}
	staged, err := e.isStaged(ctx, dep)
	if err != nil {
		return "", err
	}
	if staged {
		// ostree writes a staged deployment's boot entry, with its kernel
		// arguments, when ostree-finalize-staged runs at shutdown
		// (ostree-sysroot-deploy.c, _ostree_sysroot_finalize_staged):
		// until then, /run/ostree/staged-deployment names it.
		if !fileExists(e.host.Path(stagedDeploymentFile)) {
			problems = append(problems, "the deployment is staged, but "+stagedDeploymentFile+" is missing: ostree would not write it at shutdown")
		}
		if err := e.makes(st, map[string]string{varName(phStaged): "true"}); err != nil {
			return "", err
		}
	} else {
		entry, entryProblems := e.checkBootEntry(a[argSysroot], a[argStateroot])
		problems = append(problems, entryProblems...)
		if entry != "" {
			if err := e.makes(st, map[string]string{varName(phBootEntry): entry}); err != nil {
				return "", err
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return "", fmt.Errorf("verifying the deployment: %s", strings.Join(problems, "; "))
	}
	if said != "" {
		e.emit(Event{Type: EventInfo, Desc: said})
	}
	return "", nil
}

// stagedDeploymentFile is where ostree keeps what it needs to write a
// staged deployment at shutdown.
const stagedDeploymentFile = "/run/ostree/staged-deployment"

// isStaged says whether the deployment at dep is staged.
func (e *executor) isStaged(ctx context.Context, dep string) (bool, error) {
	all, err := e.deployments(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range all {
		if d.path(e.sysroot) == dep {
			return d.Staged, nil
		}
	}
	return false, nil
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

// compareEtc checks that every regular file of the seed's /etc state is
// in etc with the same content. A file ostree writes itself (ostreeWrites)
// is counted, not reported.
func compareEtc(seedEtc, etc string, policyRefreshed bool) (problems []string, rewritten int) {
	filepath.WalkDir(seedEtc, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(seedEtc, p)
		want, err1 := os.ReadFile(p)
		got, err2 := os.ReadFile(filepath.Join(etc, rel))
		if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			if ostreeWrites(rel, policyRefreshed) {
				rewritten++
			} else {
				problems = append(problems, "/etc/"+rel+" does not hold the seed's content")
			}
		}
		return nil
	})
	return problems, rewritten
}

// ostreeWritesSummary says which /etc files ostree writes itself.
const ostreeWritesSummary = "/etc/.updated, unlinked by every deploy; the SELinux policy built from the seed's module store, rebuilt by a merge deploy"

// ostreeWrites says whether ostree itself writes or removes /etc/rel when
// it deploys, so that the new deployment's copy may differ from the seed's
// without any seed state lost:
//   - .updated: every deploy unlinks it, so that systemd's
//     ConditionNeedsUpdate=/etc units run at the next boot
//     (ostree-sysroot-deploy.c, sysroot_finalize_deployment, v2022.7 and
//     v2025.2);
//   - with policyRefreshed, the SELinux policy under selinux/<type>/: a
//     merge deploy runs `semodule -N --rebuild-if-modules-changed` (v2022.7)
//     or `--refresh` (v2023.2 and later) in the new deployment
//     (sysroot_finalize_selinux_policy), which rebuilds the policy and the
//     files made from it (active/, policy/, contexts/). The module store it
//     is built from (selinux/<type>/active/modules/), selinux/config and
//     semanage.conf are the seed's input, and still compared.
func ostreeWrites(rel string, policyRefreshed bool) bool {
	if rel == ".updated" {
		return true
	}
	parts := strings.Split(rel, "/")
	if !policyRefreshed || len(parts) < 3 || parts[0] != "selinux" {
		return false
	}
	return !(len(parts) > 3 && parts[2] == "active" && parts[3] == "modules")
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
