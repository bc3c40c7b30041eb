package builder

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/seedbuild/seedbuild/internal/command"
	"github.com/seedbuild/seedbuild/internal/hostroot"
	"github.com/seedbuild/seedbuild/labels"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// tarballLayers makes the upstream agent's layout: var.tgz, etc.tgz,
// etc.deletions, the JSON files and, for classic seeds, ostree.tgz, in
// one layer. The tarballs are compressed already, so the layer is stored
// gzip, which copies and registries pass through as it is.
func (b *build) tarballLayers(ctx context.Context, c *capture, changes etcChanges) ([]namedLayer, error) {
	dir := filepath.Join(b.stage.Path, "seed-files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making %q: %w", dir, err)
	}
	names, err := b.writeTarballs(ctx, dir, c, changes)
	if err != nil {
		return nil, err
	}
	files, err := b.seedJSONFiles()
	if err != nil {
		return nil, err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	layer, err := b.tarballLayer(ctx, dir, names)
	if err != nil {
		return nil, fmt.Errorf("writing seed layer: %w", err)
	}
	return []namedLayer{{"seed", layer}}, nil
}

// writeTarballs writes var.tgz, etc.tgz, etc.deletions and, for a classic
// seed, ostree.tgz into dir, and returns their names.
func (b *build) writeTarballs(ctx context.Context, dir string, c *capture, changes etcChanges) ([]string, error) {
	names := []string{labels.VarArchive, labels.EtcArchive, deletionsName}
	// A classic seed's lean repo is pulled while /var and /etc are
	// captured: the pull is mostly the kernel's (links and small writes),
	// the captures mostly compression.
	var lean errgroup.Group
	defer lean.Wait()
	var repoDir string
	if b.opts.Layout == labels.Classic {
		lean.Go(func() (err error) {
			repoDir, err = b.leanRepo(ctx)
			return err
		})
	}
	if err := writeTgz(ctx, filepath.Join(dir, labels.VarArchive), b.clamp(), b.tally, func(ew *entryWriter) error {
		return c.tree(ew, "var", func(rel string) string { return rel })
	}); err != nil {
		return nil, fmt.Errorf("capturing /var: %w", err)
	}
	if err := writeTgz(ctx, filepath.Join(dir, labels.EtcArchive), b.clamp(), b.tally, func(ew *entryWriter) error {
		for _, rel := range changes.changed {
			if err := c.addEtc(ew, rel, "etc/", map[string]bool{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("capturing /etc changes: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, deletionsName), deletionsList(changes.deleted), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", deletionsName, err)
	}
	if b.opts.Layout != labels.Classic {
		return names, nil
	}
	if err := lean.Wait(); err != nil {
		return nil, err
	}
	// The repo's files count in the capture's progress (and its report),
	// and its size in the total once a walk beside the capture has it.
	repo := &capture{root: repoDir, excl: newExcluder(nil), tally: b.tally, creds: &credentialScan{}}
	sized := make(chan struct{})
	defer close(sized)
	go func() {
		if n, err := repo.estimate(sized, "."); err == nil {
			b.tally.AddTotal(n)
		}
	}()
	if err := writeTgz(ctx, filepath.Join(dir, labels.OstreeArchive), b.clamp(), repo.tally, func(ew *entryWriter) error {
		return repo.tree(ew, ".", func(rel string) string {
			if rel == "." {
				return "./"
			}
			return rel
		})
	}); err != nil {
		return nil, fmt.Errorf("capturing ostree repo: %w", err)
	}
	return append(names, labels.OstreeArchive), nil
}

// tarballLayer is the one layer that carries the files names in dir: at
// the root for a classic seed, under the seed folder for a bootc-tarball
// one.
func (b *build) tarballLayer(ctx context.Context, dir string, names []string) (layerResult, error) {
	prefix := ""
	if b.opts.Layout == labels.BootcTarball {
		prefix = seedDir + "/"
	}
	return b.dest.layer(ctx, storedGzip, func(w io.Writer) error {
		ew := newEntryWriter(ctxWriter{ctx, w}, b.clamp(), keepNativeXattr, false, &tally{})
		if prefix != "" {
			if err := b.seedDirs(ew); err != nil {
				return err
			}
		}
		for _, n := range names {
			if err := ew.fileFrom(prefix+n, 0o644, b.created(), filepath.Join(dir, n)); err != nil {
				return err
			}
		}
		return ew.Close()
	})
}

// writeTgz writes a gzip-compressed tar of what fill adds, as GNU tar
// --xattrs --selinux --acls would (every xattr, FIFOs and devices kept).
func writeTgz(ctx context.Context, path string, clamp time.Time, t *tally, fill func(*entryWriter) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	comp, err := newCompressor(Gzip, f)
	if err != nil {
		return err
	}
	ew := newEntryWriter(ctxWriter{ctx, comp}, clamp, keepAllXattr, true, t)
	if err := fill(ew); err != nil {
		return err
	}
	if err := ew.Close(); err != nil {
		return err
	}
	if err := comp.Close(); err != nil {
		return err
	}
	return f.Close()
}

// fileFrom writes the host file at hostPath as a regular file with fixed
// metadata.
func (w *entryWriter) fileFrom(name string, mode int64, mtime time.Time, hostPath string) error {
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return fmt.Errorf("reading %q: %w", hostPath, err)
	}
	if err := w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size, ModTime: w.clampTime(mtime), Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	return w.copyContent(hostPath, st.Size)
}

// leanRepo pulls only the commit the node runs into a fresh repo, so a
// classic seed does not carry the node's whole ostree history. The commit
// is the booted deployment's (b.node), else the repo's only ref, else
// --ostree-ref; b.node is completed from it. The fresh repo's refs point
// at the commit under the names its ref binding allows, so that the
// agent's `ostree pull-local REPO`, which pulls every ref, accepts it.
func (b *build) leanRepo(ctx context.Context) (string, error) {
	src := filepath.Join(b.opts.Rootfs, "ostree/repo")
	run := func(args ...string) (string, error) {
		return command.Output(ctx, b.opts.Host.Runner(), append([]string{"ostree"}, args...)...)
	}
	commit := ""
	if b.node.known && b.opts.OstreeRef == "" {
		commit = b.node.dep.Checksum
	}
	if commit == "" {
		refs, err := run("refs", "--repo="+src)
		if err != nil {
			return "", err
		}
		list := strings.Fields(refs)
		ref := ""
		switch {
		case b.opts.OstreeRef != "":
			ref = b.opts.OstreeRef
		case len(list) == 1:
			ref = list[0]
		default:
			return "", fmt.Errorf("cannot tell which commit of %q the node runs: it has %d refs, no rpm-ostree.json and no single deployment; give --ostree-ref", src, len(list))
		}
		if commit, err = run("rev-parse", "--repo="+src, ref); err != nil {
			return "", err
		}
		if b.node.dep.Checksum != commit {
			b.node.known = false
			b.node = b.node.withCommit(commit)
		}
	}
	refs, err := boundRefs(ctx, b.opts.Host.Runner(), src, commit)
	if err != nil {
		return "", err
	}
	mode := "bare"
	if cfg, err := os.ReadFile(filepath.Join(src, "config")); err == nil {
		for _, line := range strings.Split(string(cfg), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "mode="); ok {
				mode = strings.TrimSpace(v)
			}
		}
	}
	dst := filepath.Join(b.stage.Path, "ostree-repo")
	steps := [][]string{
		{"init", "--repo=" + dst, "--mode=" + mode},
		{"pull-local", "--repo=" + dst, "--depth=0", src, commit},
	}
	for _, ref := range refs {
		steps = append(steps, []string{"refs", "--repo=" + dst, "--create=" + ref, commit})
	}
	for _, args := range steps {
		if _, err := run(args...); err != nil {
			return "", err
		}
	}
	// The fresh repo's folders and files carry the node's times where the
	// node's repo has the same path, as a tar of that repo would.
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(src, rel), &st) != nil {
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return "", fmt.Errorf("dating the seed's ostree repo: %w", err)
	}
	return dst, nil
}

// rpmOstreeStatus is `rpm-ostree status --json` of the root: the file
// ROOT/rpm-ostree.json when there is one (a captured root), else, for a
// live /, what rpm-ostree says. nil when neither is there.
func rpmOstreeStatus(ctx context.Context, host hostroot.Host, root string) []byte {
	if data, err := os.ReadFile(filepath.Join(root, labels.RpmOstreeFile)); err == nil {
		return data
	}
	if host.IsRoot(root) {
		if out, err := command.Output(ctx, host.Runner(), "rpm-ostree", "status", "--json"); err == nil {
			return []byte(out)
		}
	}
	return nil
}

// boundRefs are the refs a lean repo gives commit: those of its
// ostree.ref-binding metadata (ostree commit --branch binds the commit to
// its branch, and a pull by a ref the binding lacks fails with "Commit
// has no requested ref ... in ref binding metadata"), else "seed".
func boundRefs(ctx context.Context, r command.Runner, repo, commit string) ([]string, error) {
	out, err := command.Output(ctx, r, "ostree", "show", "--repo="+repo, "--print-metadata-key=ostree.ref-binding", commit)
	if err != nil {
		// command.Output's error carries what ostree said on stderr.
		if strings.Contains(err.Error(), "No such metadata key") {
			return []string{"seed"}, nil
		}
		return nil, fmt.Errorf("reading the ref binding of commit %s in %q: %w", commit, repo, err)
	}
	refs := parseStringArray(out)
	if len(refs) == 0 {
		return []string{"seed"}, nil
	}
	return refs, nil
}

// parseStringArray reads the strings of a printed GVariant string array,
// such as ['rhcos/seed', 'other'].
func parseStringArray(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i+1:], '\'')
		if j < 0 {
			return out
		}
		out = append(out, s[i+1:i+1+j])
		s = s[i+j+2:]
	}
}
