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

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/labels"
	"github.com/seedbuild/seedbuild/seedimage"
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
func inVar(rel string) bool { return rel == "var" || strings.HasPrefix(rel, "var/") }

// onlyVar checks an entry of the /var layer, unpacked aside: a folder
// /var, or a file, folder or link under it, with no whiteout, and a hard
// link only to what is under /var.
func onlyVar(h *tar.Header, rel string) error {
	base := path.Base(rel)
	switch {
	case rel == "var" && h.Typeflag == tar.TypeDir:
	case !strings.HasPrefix(rel, "var/"):
		return fmt.Errorf("%w: it holds /%s", errLayersInOrder, rel)
	case strings.HasPrefix(base, ".wh."):
		return fmt.Errorf("%w: it holds a whiteout, /%s", errLayersInOrder, rel)
	case h.Typeflag == tar.TypeLink && !inVar(strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")):
		return fmt.Errorf("%w: /%s is a hard link to /%s", errLayersInOrder, rel, h.Linkname)
	}
	return nil
}

// touchesVar checks an entry of a layer above the /var layer: it must
// leave /var alone (no path in it, no whiteout of it, no opaque root, no
// hard link to a file in it).
func touchesVar(h *tar.Header, rel string) error {
	target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
	switch {
	case inVar(rel), rel == ".wh.var", rel == ".wh..wh..opq", h.Typeflag == tar.TypeLink && inVar(target):
		return fmt.Errorf("%w: a later layer has /%s", errLayersInOrder, rel)
	}
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
	uo.Check = func(h *tar.Header, rel string) error {
		if layer > aside {
			return touchesVar(h, rel)
		}
		return nil
	}
}

// asideLayer is a layer being unpacked, as an overlay diff, into its own
// folder, on its own goroutine.
type asideLayer struct {
	dir    string
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// unpackAside starts unpacking layer i of the seed into dir.
func unpackAside(ctx context.Context, cfg Config, i int, dir string) *asideLayer {
	ctx, cancel := context.WithCancel(ctx)
	a := &asideLayer{dir: dir, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		a.err = seedimage.ReadLayerBehind(ctx, cfg.Image, cfg.SystemContext, i, func(layer io.Reader) error {
			_, err := seedimage.UnpackDiff(ctx, layer, dir, "", seedimage.UnpackOptions{Check: onlyVar})
			return err
		})
		if a.err != nil && !errors.Is(a.err, errLayersInOrder) && ctx.Err() == nil {
			a.err = fmt.Errorf("unpacking layer %d of %s: %w", i+1, imageref.Display(cfg.Image), a.err)
		}
	}()
	return a
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
func (e *executor) mergeVar(ctx context.Context, _ Step, a map[string]string) (string, error) {
	if err := requireArgs(a, "var"); err != nil {
		return "", err
	}
	if e.aside == nil {
		return "", errors.New("no /var layer was unpacked aside")
	}
	if err := e.aside.wait(); err != nil {
		return "", err
	}
	var lost *xattrLoss
	if e.allowXattrLoss {
		lost = &xattrLoss{}
	}
	if err := moveVarInto(filepath.Join(e.aside.dir, "var"), a["var"], lost); err != nil {
		return "", fmt.Errorf("moving the seed's /var layer into %q: %w", a["var"], err)
	}
	if lost != nil && lost.count > 0 {
		fmt.Fprintf(e.log, "Warning: %d xattr(s) could not be kept moving the seed's /var layer (--allow-xattr-loss); the first: %s\n", lost.count, lost.first)
	}
	return "", ctx.Err()
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
