// Package standin holds what the test stand-ins for bootc and ostree-ext
// share: copying an image's root into a tree laid out as an ostree commit
// wants it, and installing that tree with the host's ostree command as a
// stateroot's default deployment. Only seedbuild's tests use it.
package standin

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Ostree runs the host's ostree command with args and returns its output.
type Ostree func(args ...string) (string, error)

// Install commits tree into the repo of the sysroot sys (as run sees
// it) under ref, as ostree-ext keeps an image, makes the stateroot unless
// it is there (local is the sysroot's path here), and deploys the commit
// as the stateroot's default deployment with kargs; with stage, as a
// staged deployment (ostree admin deploy --stage), which the node's
// ostree-finalize-staged writes at shutdown (see Stages).
//
// The stateroot's var is what the real ostree makes of it: from 2024.3 it
// fills an empty one from the commit's /var (FillsVar); tree holds the
// image's /var where ostree-ext would put it (VarPlace).
//
// With relabel, every file is labelled by tree's own SELinux policy, as
// ostree-ext relabels a merged tree (Relabels), not kept as tree has it.
//
// origin, when not "", is the new deployment's .origin (through
// --origin-file); else ostree writes its own, refspec=<commit>.
func Install(run Ostree, sys, local, tree, ref, stateroot, origin string, kargs []string, stage, relabel bool) error {
	commitArgs := []string{"commit", "--repo=" + sys + "/ostree/repo", "--branch=" + ref, "--consume"}
	if relabel {
		commitArgs = append(commitArgs, "--selinux-policy="+tree)
	}
	commit, err := run(append(commitArgs, "--tree=dir="+tree)...)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(local, "ostree/deploy", stateroot)); err != nil {
		if _, err := run("admin", "os-init", "--sysroot="+sys, stateroot); err != nil {
			return err
		}
	}
	args := []string{"admin", "deploy", "--sysroot=" + sys, "--os=" + stateroot}
	if stage {
		args = append(args, "--stage")
	}
	for _, k := range kargs {
		args = append(args, "--karg-append="+k)
	}
	if origin != "" {
		f, err := os.CreateTemp(filepath.Join(local, "ostree"), "standin-origin-")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(origin); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		args = append(args, "--origin-file="+filepath.Join(sys, "ostree", filepath.Base(f.Name())))
	}
	_, err = run(append(args, strings.TrimSpace(commit))...)
	return err
}

// PolicyName is the SELinux policy a tree laid out for a commit names
// (SELINUXTYPE= of its usr/etc/selinux/config), "" for none.
func PolicyName(tree string) string {
	data, err := os.ReadFile(filepath.Join(tree, "usr/etc/selinux/config"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SELINUXTYPE="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// VarPlace is where ostree-ext puts an image's /var in the commit it
// writes, for the libostree it runs with (RetainsVar).
func VarPlace(libostree string) string {
	if RetainsVar(libostree) {
		return "var"
	}
	return "usr/share/factory/var"
}

// CopyImageVar copies the image root's /var into tree at VarPlace.
func CopyImageVar(root, tree string, mounts map[string]bool, libostree string) error {
	dest := filepath.Join(tree, VarPlace(libostree))
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	return CopyVar(root, dest, mounts)
}

// OstreeVersion is the libostree version `ostree --version` names
// ("2022.7"), or "" when it names none.
func OstreeVersion(run Ostree) string {
	out, err := run("--version")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.Trim(strings.TrimSpace(v), "'")
		}
	}
	return ""
}

// CopyImage copies the image root at root into tree, its /etc as
// /usr/etc: the image's own /usr/etc and a mount point's content are left
// out (an empty folder stays), /var is left empty, and skip is left out.
func CopyImage(root, tree string, mounts map[string]bool, skip string) error {
	return Copy(root, "", mounts, func(rel string) (string, bool) {
		switch {
		case rel == skip, rel == "usr/etc":
			// The image's /etc becomes /usr/etc.
			return "", false
		case rel == "etc" || strings.HasPrefix(rel, "etc/"):
			return filepath.Join(tree, "usr", rel), true
		}
		return filepath.Join(tree, rel), true
	})
}

// CopyVar copies the var folder of the image root at root into dest
// (which exists), without the content of mount points.
func CopyVar(root, dest string, mounts map[string]bool) error {
	return Copy(root, "var", mounts, func(rel string) (string, bool) {
		return filepath.Join(dest, strings.TrimPrefix(rel, "var/")), true
	})
}

// Copy copies what is under root/start to where to says (false: not at
// all), keeping owners and modes. to gets paths relative to root. The
// content of mount points (mounts holds their full paths) is left out, and
// so is var's, but for a copy that starts there.
func Copy(root, start string, mounts map[string]bool, to func(rel string) (string, bool)) error {
	from := filepath.Join(root, start)
	return filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == from {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		dst, ok := to(rel)
		if !ok {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			// /etc comes before /usr: /usr may be there already.
			if err := os.MkdirAll(dst, fi.Mode().Perm()); err != nil {
				return err
			}
			mode, uid, gid := fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky), int(st.Uid), int(st.Gid)
			if mounts[p] {
				// What is mounted there hides the image's folder: image
				// folders are root's, 0755.
				mode, uid, gid = 0o755, 0, 0
			}
			if err := os.Chmod(dst, mode); err != nil {
				return err
			}
			if err := os.Lchown(dst, uid, gid); err != nil {
				return err
			}
			if mounts[p] || (rel == "var" && start != "var") {
				return filepath.SkipDir
			}
			return nil
		case mounts[p]:
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			// os-init made var/run and var/lock already.
			if err := os.Symlink(target, dst); err != nil && !os.IsExist(err) {
				return err
			}
			return os.Lchown(dst, int(st.Uid), int(st.Gid))
		case fi.Mode().IsRegular():
			return copyFile(p, dst, fi.Mode(), int(st.Uid), int(st.Gid))
		}
		return nil
	})
}

// copyFile copies a file with its owner, then its mode: a chown after the
// chmod would clear setuid.
func copyFile(src, dst string, mode os.FileMode, uid, gid int) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chown(uid, gid); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
