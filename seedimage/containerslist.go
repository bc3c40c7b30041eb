package seedimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/types"
)

// errFound stops a layer read once what was looked for is found.
var errFound = errors.New("found")

// ContainersList reads the precache list (labels.ContainersListFile) of
// the seed d describes (Read of ref) without fetching its big layers: the layers are read from the top down,
// each only until the file is found (it sorts before var.tgz and the
// others in the tarball layouts' layer, and is in the native layout's
// metadata layer, the top one that create made: layers a configured seed
// adds are above it). A seed without one has an empty list and found
// false.
func ContainersList(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, d *Description) (images []string, found bool, err error) {
	want := labels.SeedDir[1:] + "/" + labels.ContainersListFile
	if d.Seed.Kind() == labels.Classic {
		want = labels.ContainersListFile
	}
	for i := len(d.Layers) - 1; i >= 0; i-- {
		var data []byte
		err := eachLayer(ctx, ref, sys, func(j int) bool { return j != i }, Decompress, func(_ int, layer io.Reader) error {
			tr := tar.NewReader(layer)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if EntryPath(h.Name) == want && h.Typeflag == tar.TypeReg {
					if data, err = io.ReadAll(io.LimitReader(tr, 16<<20)); err != nil {
						return err
					}
					return errFound
				}
			}
		})
		if errors.Is(err, errFound) {
			return ParseContainersList(string(data)), true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("reading /%s from %s: %w", want, d.Image, err)
		}
		if d.Seed.Kind() == labels.Native && strings.HasPrefix(d.Layers[i].CreatedBy, labels.LayerHistory) {
			// The layers create makes are the metadata's and below it the
			// node's /etc and /var, then the OS: no need to look further.
			break
		}
	}
	return nil, false, nil
}

// ByTag are the images of a precache list named by tag alone, without a
// digest: a tag can move between the seed's making and the precache.
func ByTag(images []string) []string {
	out := []string{}
	for _, img := range images {
		if !strings.Contains(img, "@sha256:") {
			out = append(out, img)
		}
	}
	return out
}

// ParseContainersList reads a precache list: one image a line; blank
// lines and lines starting with # are left out, and so are repeats.
func ParseContainersList(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || seen[line] {
			continue
		}
		seen[line] = true
		out = append(out, line)
	}
	return out
}
