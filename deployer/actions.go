package deployer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/progress"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/internal/selabel"
	"github.com/seedbuild/seedbuild/internal/xattrs"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
	"golang.org/x/sys/unix"
)

// skipList is what the ostree commit of an image's root leaves out.
var skipList = []string{"/etc", "/var", "/run", "/tmp", "/proc", "/sys", "/dev"}

func (e *executor) registerActions() {
	e.actions = map[string]actionFunc{
		ActionClearStateroot:  e.clearStateroot,
		ActionRemoveStateroot: e.removeStateroot,
		ActionUndeploy:        e.undeployAction,
		ActionUndeployPath:    e.undeployPath,
		ActionPrepareRoot:     e.prepareRoot,
		ActionCommitTree:      e.commitTree,
		ActionRemoveCommit:    e.removeCommit,
		ActionFindDeployment:  e.findDeployment,
		ActionStageUsrEtc:     e.stageUsrEtc,
		ActionUnstageUsrEtc:   e.unstageUsrEtc,
		ActionTempDir:         e.tempDirAction,
		ActionRemoveTempDir:   e.removeTempDir,
		ActionClassicCommit:   e.classicCommit,
		ActionCopyTree:        e.copyTreeAction,
		ActionApplyDeletions:  e.applyDeletions,
		ActionWriteFile:       e.writeFile,
		ActionCopySeedFiles:   e.copySeedFiles,
		ActionUnpackArchive:   e.unpackArchive,
		ActionVerify:          e.verify,
		ActionBootcInstall:    e.bootcInstall,
		ActionMergeVar:        e.mergeVar,
	}
}

func (e *executor) clearStateroot(ctx context.Context, _ Step, a map[string]string) (string, error) {
	all, err := e.deployments(ctx)
	if err != nil {
		return "", err
	}
	var mine []deployment
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Stateroot == a[argStateroot] {
			mine = append(mine, all[i])
		}
	}
	if err := e.undeploy(ctx, mine); err != nil {
		return "", err
	}
	// What was undeployed is gone for good: the undo journal starts now.
	if e.before, err = e.deployments(ctx); err != nil {
		return "", err
	}
	varDir := filepath.Join(a[argSysroot], "ostree/deploy", a[argStateroot], "var")
	entries, _ := os.ReadDir(varDir)
	for _, en := range entries {
		if err := os.RemoveAll(filepath.Join(varDir, en.Name())); err != nil {
			return "", fmt.Errorf("clearing %q: %w", varDir, err)
		}
	}
	return "", nil
}

func (e *executor) removeStateroot(ctx context.Context, _ Step, a map[string]string) (string, error) {
	fresh, err := e.newDeployments(ctx, a[argStateroot], e.before)
	if err != nil {
		return "", err
	}
	if err := e.undeploy(ctx, fresh); err != nil {
		return "", err
	}
	dir := filepath.Join(a[argSysroot], "ostree/deploy", a[argStateroot])
	if err := clearImmutable(filepath.Join(dir, "deploy")); err != nil {
		return "", fmt.Errorf("removing the stateroot %s: %w", a[argStateroot], err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("removing the stateroot %s: %w", a[argStateroot], err)
	}
	return "", e.removeNewImageRefs(ctx, a)
}

// fsImmutable is FS_IMMUTABLE_FL (linux/fs.h), which x/sys/unix lacks.
const fsImmutable = 0x10

// clearImmutable takes off the immutable flag ostree gives each
// deployment's root folder (ostree-sysroot-deploy.c, after the checkout)
// from every deployment folder in dir, a stateroot's deploy/, as ostree's
// own cleanup does before it removes one (ostree-sysroot-cleanup.c): a
// deploy cut off after its checkout, before the boot configuration named
// it, leaves such a folder that no undeploy removes. The flight-recorder
// test of flush points found it (tests/flushpoints_test.go).
func clearImmutable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, en := range entries {
		if !en.IsDir() {
			continue
		}
		p := filepath.Join(dir, en.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", p, err)
		}
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err == nil && flags&fsImmutable != 0 {
			err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^fsImmutable))
		}
		unix.Close(fd)
		// A file system without the flags (ENOTTY) has nothing to clear.
		if err != nil && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("clearing the immutable flag of %s: %w", p, err)
		}
	}
	return nil
}

// imageRefPrefix is where bootc and ostree-ext keep the images they import
// (ostree/container/image/..., ostree/container/blob/...).
const imageRefPrefix = "ostree/container"

// imageRefs lists the sysroot repo's refs under imageRefPrefix.
func (e *executor) imageRefs(ctx context.Context) ([]string, error) {
	var out, errb strings.Builder
	repo := "--repo=" + filepath.Join(e.sysroot, "ostree/repo")
	// --list keeps the prefix in the names.
	if err := e.runner.Run(ctx, []string{"ostree", "refs", repo, "--list", imageRefPrefix}, &out, &errb); err != nil {
		return nil, fmt.Errorf("listing the image refs of %s: %w %s", repo, err, strings.TrimSpace(errb.String()))
	}
	refs := []string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			refs = append(refs, line)
		}
	}
	return refs, nil
}

// removeNewImageRefs deletes, for an undo of the bootc or ostree-ext
// routes (a[imageRefsArg]), the image refs the run added (the image they
// imported for the stateroot), then prunes the objects only they held.
// Safe to run again. A journal from a seedbuild that did not list the refs
// (nil) deletes none: the node's own image refs stay.
func (e *executor) removeNewImageRefs(ctx context.Context, a map[string]string) error {
	if a[imageRefsArg] != imageRefsNew || e.beforeImageRefs == nil {
		return nil
	}
	now, err := e.imageRefs(ctx)
	if err != nil {
		return err
	}
	repo := filepath.Join(e.sysroot, "ostree/repo")
	removed := false
	for _, ref := range now {
		if slices.Contains(e.beforeImageRefs, ref) {
			continue
		}
		var out, errb strings.Builder
		if err := e.runner.Run(ctx, []string{"ostree", "refs", "--repo=" + repo, "--delete", ref}, &out, &errb); err != nil {
			return fmt.Errorf("deleting the image ref %q the run imported: %w %s", ref, err, strings.TrimSpace(errb.String()))
		}
		removed = true
	}
	if !removed {
		return nil
	}
	_, err = e.removeCommit(ctx, Step{}, map[string]string{argRepo: repo})
	return err
}

// removeCommit deletes a branch when it is there, then prunes the objects
// no ref holds. Safe to run when the commit never finished.
func (e *executor) removeCommit(ctx context.Context, _ Step, a map[string]string) (string, error) {
	repo := "--repo=" + a[argRepo]
	var out, errb strings.Builder
	if ref := a[argRef]; ref != "" && e.runner.Run(ctx, []string{"ostree", "rev-parse", repo, ref}, &out, &errb) == nil {
		errb.Reset()
		if err := e.runner.Run(ctx, []string{"ostree", "refs", repo, "--delete", ref}, &out, &errb); err != nil {
			return "", fmt.Errorf("deleting the branch %q: %w %s", ref, err, strings.TrimSpace(errb.String()))
		}
	}
	errb.Reset()
	if err := e.runner.Run(ctx, []string{"ostree", "prune", repo, "--refs-only"}, &out, &errb); err != nil {
		return "", fmt.Errorf("pruning %q: %w %s", a[argRepo], err, strings.TrimSpace(errb.String()))
	}
	return "", nil
}

func (e *executor) undeployAction(ctx context.Context, _ Step, a map[string]string) (string, error) {
	fresh, err := e.newDeployments(ctx, a[argStateroot], e.before)
	if err != nil {
		return "", err
	}
	if err := e.undeploy(ctx, fresh); err != nil {
		return "", err
	}
	return "", e.removeNewImageRefs(ctx, a)
}

// prepareRoot lays an unpacked image root out for ostree commit, in place:
// its /etc becomes /usr/etc, and the content of its /var is moved into
// a[argVar] (the new stateroot's var, on the same file system), or removed
// when there is no a[argVar]. Moving is a rename: nothing is copied.
func (e *executor) prepareRoot(_ context.Context, _ Step, a map[string]string) (string, error) {
	root := a[argRoot]
	// The labels of what the /etc apply will copy, read before the commit
	// relabels them for where they are in the image.
	if a[argLabelsOf] != "" {
		if err := saveLabels(a[argLabelsOf], a[argLabelsTo]); err != nil {
			return "", err
		}
	}
	// What the image has of the mount points, with their modes, for
	// verify: the commit takes the root over.
	var points []string
	modes := mountPointModes(root)
	for _, name := range mountPoints {
		if mode, ok := modes[name]; ok {
			points = append(points, fmt.Sprintf("%s:%04o", name, mode))
		}
	}
	etc, usrEtc := filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")
	if fileExists(etc) {
		// The image's /etc is what becomes the defaults, as bootc and
		// ostree-ext make it; a /usr/etc beside it (lint IM006) gives way.
		if err := os.RemoveAll(usrEtc); err != nil {
			return "", fmt.Errorf("laying the image's /etc out as /usr/etc: %w", err)
		}
		if err := os.Rename(etc, usrEtc); err != nil {
			return "", fmt.Errorf("laying the image's /etc out as /usr/etc: %w", err)
		}
	}
	lost := newXattrLoss(e.allowXattrLoss)
	varDir := filepath.Join(root, "var")
	if a[argVar] == "" {
		entries, err := os.ReadDir(varDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("reading the image's /var: %w", err)
		}
		for _, en := range entries {
			if err := os.RemoveAll(filepath.Join(varDir, en.Name())); err != nil {
				return "", fmt.Errorf("leaving the image's /var out of the commit: %w", err)
			}
		}
	} else if err := moveVarInto(varDir, a[argVar], lost); err != nil {
		return "", fmt.Errorf("moving the image's /var into %q: %w", a[argVar], err)
	}
	lost.warn(e.log, "moving the image's /var")
	return strings.Join(points, " "), nil
}

// saveLabels writes the SELinux labels under dir, as JSON, to file; a
// missing dir has none.
func saveLabels(dir, file string) error {
	labels := map[string]string{}
	if fileExists(dir) {
		var err error
		if labels, err = readLabels(dir); err != nil {
			return err
		}
	}
	data, err := json.Marshal(labels)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return fmt.Errorf("saving the SELinux labels of %q: %w", dir, err)
	}
	return nil
}

// moveInto renames src to dst; where both are folders, it moves src's
// entries into dst one by one, so what dst already has (the folders
// os-init makes) stays, and what src brings wins.
func moveInto(src, dst string, lost *xattrLoss) error {
	sfi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	dfi, err := os.Lstat(dst)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.Rename(src, dst)
	case err != nil:
		return err
	case sfi.IsDir() && dfi.IsDir():
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, en := range entries {
			if err := moveInto(filepath.Join(src, en.Name()), filepath.Join(dst, en.Name()), lost); err != nil {
				return err
			}
		}
		// The folder itself is the image's: its owner, mode and xattrs
		// (its SELinux label) win over those os-init gave it.
		st := sfi.Sys().(*syscall.Stat_t)
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("setting the mode of %q: %w", dst, err)
		}
		if err := copyXattrs(src, dst, lost, nil); err != nil {
			return err
		}
		return os.Remove(src)
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(src, dst)
}

// undeployPath removes the deployment whose folder is a[argDeployment].
func (e *executor) undeployPath(ctx context.Context, _ Step, a map[string]string) (string, error) {
	all, err := e.deployments(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range all {
		if d.path(a[argSysroot]) == a[argDeployment] {
			return "", e.undeploy(ctx, []deployment{d})
		}
	}
	return "", nil
}

func (e *executor) findDeployment(ctx context.Context, st Step, a map[string]string) (string, error) {
	fresh, err := e.newDeployments(ctx, a[argStateroot], e.before)
	if err != nil {
		return "", err
	}
	if len(fresh) == 0 {
		return "", errNoDeployment
	}
	d := fresh[len(fresh)-1]
	if err := e.makes(st, map[string]string{varName(phChecksum): d.Checksum, varName(phDeploymentIndex): strconv.Itoa(d.Index)}); err != nil {
		return "", err
	}
	return d.path(a[argSysroot]), nil
}

// stageUsrEtc makes a tree whose usr/etc is the image's etc (a bind
// mount), to lay over the image root in the commit, and a skip list.
func (e *executor) stageUsrEtc(_ context.Context, _ Step, a map[string]string) (string, error) {
	root := a[argRoot]
	d, err := scratch.New(e.tempDir, "deploy")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		unstage(d.Path)
		return "", err
	}
	usr := filepath.Join(d.Path, "tree/usr")
	if err := os.MkdirAll(filepath.Join(usr, "etc"), 0o755); err != nil {
		return fail(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "usr"), &st); err != nil {
		return fail(fmt.Errorf("reading the image's /usr: %w", err))
	}
	if err := os.Chmod(usr, os.FileMode(st.Mode&0o777)); err != nil {
		return fail(err)
	}
	if err := os.Lchown(usr, int(st.Uid), int(st.Gid)); err != nil {
		return fail(err)
	}
	if err := unix.Mount(filepath.Join(root, "etc"), filepath.Join(usr, "etc"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fail(fmt.Errorf("exposing the image's /etc as /usr/etc: %w", err))
	}
	// ostree refuses skip-list entries the tree does not have. What is
	// skipped stays in the commit as an empty folder with its mode and
	// owner: a root without /dev, /proc, /sys, /run, /tmp or /var does not
	// boot (systemd finds no mount points and stays in the initrd).
	var skip []string
	for _, p := range skipList {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			continue
		}
		skip = append(skip, p)
		if p == "/etc" || !fi.IsDir() {
			continue
		}
		if err := emptyDirLike(filepath.Join(d.Path, "tree", p), fi); err != nil {
			return fail(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.Path, "skip-list"), []byte(strings.Join(skip, "\n")+"\n"), 0o644); err != nil {
		return fail(err)
	}
	return d.Path, nil
}

// emptyDirLike makes an empty folder at dst with the mode and owner of fi.
func emptyDirLike(dst string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("reading the owner of %q", fi.Name())
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("making the mount point %q: %w", dst, err)
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("setting the owner of %q: %w", dst, err)
	}
	// Chmod after chown, which clears set-id bits; the sticky bit of /tmp
	// needs os.ModeSticky.
	if err := os.Chmod(dst, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid)); err != nil {
		return fmt.Errorf("setting the mode of %q: %w", dst, err)
	}
	return nil
}

func (e *executor) unstageUsrEtc(_ context.Context, _ Step, a map[string]string) (string, error) {
	return "", unstage(a[argStage])
}

func unstage(dir string) error {
	if dir == "" {
		return nil
	}
	return scratch.RemoveAll(dir)
}

func (e *executor) tempDirAction(context.Context, Step, map[string]string) (string, error) {
	d, err := scratch.New(e.tempDir, "deploy")
	if err != nil {
		return "", err
	}
	return d.Path, nil
}

func (e *executor) removeTempDir(_ context.Context, _ Step, a map[string]string) (string, error) {
	return "", scratch.RemoveAll(a[argDir])
}

// classicCommit finds the commit a classic seed's repo carries: the booted
// one of rpm-ostree.json when present, else the repo's only ref.
func (e *executor) classicCommit(ctx context.Context, _ Step, a map[string]string) (string, error) {
	if data, err := os.ReadFile(a[argRpmOstree]); err == nil {
		var doc struct {
			Deployments []struct {
				Checksum string `json:"checksum"`
				Booted   bool   `json:"booted"`
			} `json:"deployments"`
		}
		if json.Unmarshal(data, &doc) == nil {
			for _, d := range doc.Deployments {
				if d.Booted && d.Checksum != "" {
					return d.Checksum, nil
				}
			}
		}
	}
	var out, errb strings.Builder
	if err := e.runner.Run(ctx, []string{"ostree", "refs", "--repo=" + a[argRepo]}, &out, &errb); err != nil {
		return "", fmt.Errorf("listing refs of the seed's repo: %w %s", err, errb.String())
	}
	refs := strings.Fields(out.String())
	if len(refs) != 1 {
		return "", fmt.Errorf("the seed's ostree repo has %d refs, want exactly one: %v", len(refs), refs)
	}
	out.Reset()
	if err := e.runner.Run(ctx, []string{"ostree", "rev-parse", "--repo=" + a[argRepo], refs[0]}, &out, &errb); err != nil {
		return "", fmt.Errorf("resolving %q: %w %s", refs[0], err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// copyTreeAction copies a folder's content with every attribute.
func (e *executor) copyTreeAction(_ context.Context, _ Step, a map[string]string) (string, error) {
	if _, err := os.Stat(a[argFrom]); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err := os.MkdirAll(a[argTo], 0o755); err != nil {
		return "", err
	}
	var done progress.Counter
	stopShow := progress.Show(e.log, "Copying", "Copied", &done,
		func(stop <-chan struct{}) (int64, error) { return treeSize(a[argFrom], stop) })
	o := copyOptions{unlinked: a[argLinks] == "unlinked", keepExisting: a[argKeep] == keepExisting, lost: newXattrLoss(e.allowXattrLoss)}
	if a[argLabels] != "" {
		data, err := os.ReadFile(a[argLabels])
		if err == nil {
			err = json.Unmarshal(data, &o.labels)
		}
		if err != nil {
			stopShow()
			return "", fmt.Errorf("reading the SELinux labels of %q: %w", a[argFrom], err)
		}
	}
	err := copyTree(a[argFrom], a[argTo], &done, o)
	lost := o.lost
	stopShow()
	if err != nil {
		return "", fmt.Errorf("copying %q to %q: %w", a[argFrom], a[argTo], err)
	}
	lost.warn(e.log, "copying "+a[argFrom])
	return "", nil
}

// applyDeletions removes the /etc paths the seed node deleted.
func (e *executor) applyDeletions(_ context.Context, _ Step, a map[string]string) (string, error) {
	f, err := os.Open(a[argList])
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rel, ok := strings.CutPrefix(line, "/etc/")
		if !ok || rel == "" {
			continue
		}
		p, err := safeJoin(a[argEtc], rel)
		if err != nil {
			return "", err
		}
		if err := os.RemoveAll(p); err != nil {
			return "", fmt.Errorf("removing %q: %w", p, err)
		}
	}
	return "", sc.Err()
}

// writeFile writes a file: content, or the content of the file from.
func (e *executor) writeFile(_ context.Context, _ Step, a map[string]string) (string, error) {
	content := []byte(a[argContent])
	if from := a[argFrom]; from != "" {
		var err error
		if content, err = os.ReadFile(from); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(a[argPath], content, 0o644); err != nil {
		return "", err
	}
	// The file takes its folder's SELinux label, as the policy labels a
	// plain file there (the stamp in /etc: etc_t), not the one the running
	// process would give it.
	if label, err := xattrs.Get(filepath.Dir(a[argPath]), selinuxXattr); err == nil {
		if err := unix.Lsetxattr(a[argPath], selinuxXattr, label, 0); err != nil && !e.allowXattrLoss {
			return "", fmt.Errorf("setting the SELinux label of %q: %w", a[argPath], err)
		}
	}
	return "", nil
}

// unpackArchive extracts a seed's tarball, keeping owners, modes, xattrs,
// SELinux labels and ACLs as tar xzf with tarOpts does.
func (e *executor) unpackArchive(ctx context.Context, _ Step, a map[string]string) (string, error) {
	var o seedimage.UnpackOptions
	if e.allowXattrLoss {
		o.LabelLost = warnLabelLost(e.log)
	}
	if _, err := seedimage.UnpackArchive(ctx, a[argFile], a[argTo], o); err != nil {
		return "", err
	}
	return "", nil
}

// copySeedFiles copies containers.list and manifest.json, when present.
func (e *executor) copySeedFiles(_ context.Context, _ Step, a map[string]string) (string, error) {
	if err := os.MkdirAll(a[argTo], 0o1777); err != nil {
		return "", err
	}
	for _, n := range []string{labels.ContainersListFile, labels.ClusterInfoFile} {
		data, err := os.ReadFile(filepath.Join(a[argFrom], n))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(a[argTo], n), data, 0o644); err != nil {
			return "", err
		}
	}
	return "", nil
}

// commitTree commits the laid-out root into the repo, taking its files
// over; with argLabelPolicy, every file labelled by that tree's SELinux
// policy.
func (e *executor) commitTree(ctx context.Context, st Step, a map[string]string) (string, error) {
	o := ostreerepo.Options{Known: e.known}
	// A step that makes the aside value also writes the cut-down commit
	// deployed aside.
	aside := slices.Contains(st.Makes, varName(phAside))
	if aside {
		o.CutDown = asideTree
	}
	if tree := a[argLabelPolicy]; tree != "" {
		policy, err := selabel.Load(tree)
		if err != nil {
			return "", fmt.Errorf("reading the SELinux policy of %s: %w", tree, err)
		}
		if policy != nil {
			defer policy.Close()
			policy.UsrEtcAsEtc = a[argUsrEtcAsEtc] == "true"
			o.Labels = policy
		}
	}
	sum, cut, err := ostreerepo.CommitWith(ctx, a[argRepo], a[argRoot], a[argRef], "seedbuild", o)
	if err != nil {
		return "", fmt.Errorf("committing %s into %s: %w", a[argRoot], a[argRepo], err)
	}
	if !aside {
		return sum, nil
	}
	return sum, e.makes(st, map[string]string{varName(phAside): cut})
}

// asideTree cuts a tree down to what the deployment made aside is read
// for: ostree admin deploy (the kernel and initramfs beside each
// kernel's modules, not the modules; /usr/lib/ostree-boot; /usr/lib/ostree;
// the OS release; /usr/etc, with the SELinux policy that labels the
// deployment's /etc), and the plan's /etc steps (the seed's files). All
// outside /usr is kept. Checking out the whole OS image aside, and
// removing it again, took longer than the rest of the deploy's ostree work.
func asideTree(rel string, dir bool) ostreerepo.Keep {
	for _, w := range asideWhole {
		switch {
		case rel == w:
			return ostreerepo.Whole
		case strings.HasPrefix(w, rel+"/"):
			return ostreerepo.Descend
		}
	}
	if !strings.HasPrefix(rel, "usr/") {
		return ostreerepo.Whole
	}
	if rel == "usr/lib/modules" {
		return ostreerepo.Descend
	}
	if k, ok := strings.CutPrefix(rel, "usr/lib/modules/"); ok {
		// A kernel's folder, and in it its files (vmlinuz,
		// initramfs.img, .vmlinuz.hmac) and devicetrees.
		_, name, inside := strings.Cut(k, "/")
		switch {
		case !inside:
			return ostreerepo.Descend
		case !dir || name == "dtb":
			return ostreerepo.Whole
		}
	}
	return ostreerepo.Drop
}

// asideWhole are the paths asideTree keeps whole; their parents are kept
// with only what leads to them.
var asideWhole = []string{"usr/etc", "usr/lib/os-release", "usr/lib/ostree", "usr/lib/ostree-boot", strings.TrimPrefix(labels.SeedDir, "/")}
