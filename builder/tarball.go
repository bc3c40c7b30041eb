package builder

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// tarballLayers makes the upstream agent's layout: var.tgz, etc.tgz,
// etc.deletions, the JSON files and, for classic seeds, ostree.tgz, in
// one layer. The tarballs are compressed already, so the layer is stored
// gzip, which copies and registries pass through as it is.
func (b *build) tarballLayers(ctx context.Context, c *capture) ([]namedLayer, error) {
	dir := filepath.Join(b.stage.Path, "seed-files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making %q: %w", dir, err)
	}
	changes, err := diffEtc(b.opts.Rootfs, c.excl.match, keepNativeXattr)
	if err != nil {
		return nil, err
	}
	b.report.EtcChanged, b.report.EtcDeleted = len(changes.changed), len(changes.deleted)
	names := []string{"var.tgz", "etc.tgz", deletionsName}
	if err := writeTgz(ctx, filepath.Join(dir, "var.tgz"), b.clamp(), b.tally, func(ew *entryWriter) error {
		return c.tree(ew, "var", func(rel string) string { return rel })
	}); err != nil {
		return nil, fmt.Errorf("capturing /var: %w", err)
	}
	if err := writeTgz(ctx, filepath.Join(dir, "etc.tgz"), b.clamp(), b.tally, func(ew *entryWriter) error {
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
	if b.opts.Layout == Classic {
		repo := &capture{root: filepath.Join(b.opts.Rootfs, "ostree/repo"), excl: newExcluder(nil), tally: &tally{}, creds: &credentialScan{}}
		if err := writeTgz(ctx, filepath.Join(dir, "ostree.tgz"), b.clamp(), repo.tally, func(ew *entryWriter) error {
			return repo.tree(ew, ".", func(rel string) string {
				if rel == "." {
					return "./"
				}
				return rel
			})
		}); err != nil {
			return nil, fmt.Errorf("capturing ostree repo: %w", err)
		}
		names = append(names, "ostree.tgz")
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
	prefix := ""
	if b.opts.Layout == BootcTarball {
		prefix = seedDir + "/"
	}
	layer, err := b.layout.writeLayer(storedGzip, func(w io.Writer) error {
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
	if err != nil {
		return nil, fmt.Errorf("writing seed layer: %w", err)
	}
	return []namedLayer{{"seed", layer}}, nil
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
