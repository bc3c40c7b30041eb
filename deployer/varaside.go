package deployer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/seedbuild/seedbuild/internal/xattrs"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
	"golang.org/x/sys/unix"
)

// A native seed's /var layer is most of what deploy writes after the OS,
// and nothing else needs it until the new deployment becomes the default:
// it is unpacked beside the other layers, into a folder of its own, while
// they are unpacked and committed, and moved into the stateroot's var
// just before the switch (ActionMergeVar). Its decompression runs at a low priority:
// it fills the time the OS layer's unpack leaves a core idle. On a 2-core
// machine, with an RHCOS-sized base, the /var layer's 1.8 s were on the
// deploy's critical path; unpacked aside from the start, the deploy took
// about 1 s less (3 runs each, alternating); started after the other
// layers, beside the commit, it gained nothing.
//
// That is the same as applying the layers in order only when the layer
// holds /var and nothing else, and no later layer touches /var. Both are
// checked as the layers are read; where either fails, the deploy is done
// again with the layers applied in order (errLayersInOrder).

// errLayersInOrder says the /var layer could not be applied beside the
// others: the deploy is done again with every layer applied in order.
var errLayersInOrder = errors.New("the seed's /var layer has to be applied in order with the others")

// varLayerIndex is the index of a native seed's /var layer, as its
// history names it, or -1. The bottom layer is the OS, never it.
func varLayerIndex(desc *seedimage.Description) int {
	if desc.Seed.Kind() != labels.Native {
		return -1
	}
	for i, l := range desc.Layers {
		if i > 0 && l.CreatedBy == labels.LayerHistory+labels.VarLayer {
			return i
		}
	}
	return -1
}

// inVar says whether rel (root-relative) is /var or under it.
func inVar(rel string) bool { return under(rel, "var") }

// under says the path p is dir or in it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// varLayerCheck checks the entries of the /var layer, unpacked aside, in
// their order: its first may be the folder /var itself; every other is a
// file, folder or link under /var whose folder the layer lists, with no
// whiteout, and a hard link only to a file the layer wrote before. Each
// path is as the unpack resolved it, so an entry through a symlink out of
// /var is refused.
type varLayerCheck struct {
	listed map[string]bool
	// varDir is the layer's entry for /var itself, if any.
	varDir *tar.Header
	// first is closed once the first entry was seen.
	first chan struct{}
}

func newVarLayerCheck() *varLayerCheck {
	return &varLayerCheck{listed: map[string]bool{}, first: make(chan struct{})}
}

func (c *varLayerCheck) check(h *tar.Header, rel string) error {
	isFirst := len(c.listed) == 0 && c.varDir == nil
	if isFirst {
		defer close(c.first)
	}
	parent := path.Dir(rel)
	switch {
	case rel == "var" && h.Typeflag == tar.TypeDir && isFirst:
		c.varDir = h
		return nil
	case !strings.HasPrefix(rel, "var/"):
		return fmt.Errorf("%w: it holds /%s", errLayersInOrder, rel)
	case strings.HasPrefix(path.Base(rel), ".wh."):
		return fmt.Errorf("%w: it holds a whiteout, /%s", errLayersInOrder, rel)
	case parent != "var" && !c.listed[parent]:
		return fmt.Errorf("%w: it does not list /%s, the folder of /%s", errLayersInOrder, parent, rel)
	case h.Typeflag == tar.TypeLink && !c.listed[seedimage.EntryPath(h.Linkname)]:
		return fmt.Errorf("%w: /%s is a hard link to /%s, which the layer does not hold", errLayersInOrder, rel, h.Linkname)
	}
	c.listed[rel] = true
	return nil
}

// laterLayersCheck checks the entries of the layers above the /var layer:
// they must leave /var alone: no path in it (as named or as resolved), no
// whiteout of it, no opaque root, and no hard link but to a file those
// layers wrote.
type laterLayersCheck struct {
	wrote map[string]bool
}

func (c *laterLayersCheck) check(h *tar.Header, rel string) error {
	switch name := seedimage.EntryPath(h.Name); {
	case inVar(rel), inVar(name), rel == ".wh.var", rel == ".wh..wh..opq":
		return fmt.Errorf("%w: a later layer has /%s", errLayersInOrder, name)
	case h.Typeflag == tar.TypeLink && !c.wrote[seedimage.EntryPath(h.Linkname)]:
		return fmt.Errorf("%w: a later layer has /%s, a hard link to /%s, which it did not write", errLayersInOrder, name, h.Linkname)
	}
	c.wrote[rel] = true
	return nil
}

// leaveOut makes uo leave the layer aside out, and check that the layers
// above it leave /var alone.
func leaveOut(uo *seedimage.UnpackOptions, aside int) {
	layer := 0
	onLayer := uo.OnLayer
	uo.OnLayer = func(i int) {
		layer = i
		if onLayer != nil {
			onLayer(i)
		}
	}
	uo.SkipLayer = func(i int) bool { return i == aside }
	later := &laterLayersCheck{wrote: map[string]bool{}}
	uo.Check = func(h *tar.Header, rel string) error {
		if layer > aside {
			return later.check(h, rel)
		}
		return nil
	}
}

// asideLayer is the /var layer being unpacked into its own folder, on its
// own goroutine.
type asideLayer struct {
	dir    string
	check  *varLayerCheck
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// unpackAside starts unpacking layer i of the seed, the /var layer, into
// dir. Any failure makes it errLayersInOrder: the layers applied in order
// either succeed or say what is wrong as the deploy always has.
func unpackAside(ctx context.Context, cfg Config, i int, dir string, lost func(string, error) error) *asideLayer {
	ctx, cancel := context.WithCancel(ctx)
	a := &asideLayer{dir: dir, check: newVarLayerCheck(), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		err := seedimage.ReadLayerInBackground(ctx, cfg.Image, cfg.SystemContext, i, func(layer io.Reader) error {
			_, err := seedimage.UnpackLayer(ctx, layer, dir, seedimage.UnpackOptions{Check: a.check.check, LabelLost: lost})
			return err
		})
		switch {
		case err == nil, errors.Is(err, errLayersInOrder):
			a.err = err
		case ctx.Err() != nil:
			a.err = ctx.Err()
		default:
			a.err = fmt.Errorf("%w: unpacking it aside failed: %v", errLayersInOrder, err)
		}
	}()
	return a
}

// agrees checks, once the other layers are unpacked into root, what the
// move of the /var layer's content would leave out: the layer's entry for
// /var itself, which applied in order would set the owner, mode and xattrs
// of root's /var (the commit's). It must leave them as they are. It also
// says a failure of the aside unpack already known.
func (a *asideLayer) agrees(root string) error {
	select {
	case <-a.check.first:
	case <-a.done:
	}
	select {
	case <-a.done:
		if a.err != nil {
			return a.err
		}
	default:
	}
	h := a.check.varDir
	if h == nil {
		return nil
	}
	p := filepath.Join(root, "var")
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%w: the other layers leave no /var folder", errLayersInOrder)
	}
	if int(st.Uid) != h.Uid || int(st.Gid) != h.Gid || int64(st.Mode&0o7777) != h.Mode&0o7777 {
		return fmt.Errorf("%w: its /var is %d:%d %o, the other layers' %d:%d %o", errLayersInOrder, h.Uid, h.Gid, h.Mode&0o7777, st.Uid, st.Gid, st.Mode&0o7777)
	}
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			if strings.HasPrefix(k, "SCHILY.acl.") {
				return fmt.Errorf("%w: its /var has an ACL", errLayersInOrder)
			}
			continue
		}
		got, err := xattrs.Get(p, name)
		if err != nil || string(got) != v {
			return fmt.Errorf("%w: its /var has the xattr %s=%q, the other layers' %q", errLayersInOrder, name, v, got)
		}
	}
	return nil
}

// wait waits for the layer to be unpacked, and says how it went.
func (a *asideLayer) wait() error {
	<-a.done
	return a.err
}

// stop ends the unpack, if it still runs, and waits for it.
func (a *asideLayer) stop() {
	a.cancel()
	<-a.done
}

// mergeVar moves the /var the aside layer unpacked into the stateroot's
// var, dest: what the layer has replaces what is there (the OS layers'
// /var, moved there before), and folders are merged, as prepareRoot moves
// the image's own /var.
func (e *executor) mergeVar(_ context.Context, _ Step, a map[string]string) (string, error) {
	if e.aside == nil {
		return "", errors.New("no /var layer was unpacked aside")
	}
	if err := e.aside.wait(); err != nil {
		return "", err
	}
	lost := newXattrLoss(e.allowXattrLoss)
	if err := moveVarInto(filepath.Join(e.aside.dir, "var"), a[argVar], lost); err != nil {
		return "", fmt.Errorf("moving the seed's /var layer into %q: %w", a[argVar], err)
	}
	lost.warn(e.log, "moving the seed's /var layer")
	return "", nil
}

// moveVarInto moves each entry of the folder src into dest (moveInto); a
// missing src has none. The folder src itself is left.
func moveVarInto(src, dest string, lost *xattrLoss) error {
	entries, err := os.ReadDir(src)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, en := range entries {
		if err := moveInto(filepath.Join(src, en.Name()), filepath.Join(dest, en.Name()), lost); err != nil {
			return err
		}
	}
	return nil
}
