package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.podman.io/storage"
	"go.podman.io/storage/types"
	"golang.org/x/sys/unix"
)

// nodeStore is where a node keeps its container images.
const nodeStore = "var/lib/containers/storage"

// catalogIndex matches operator catalog index images, which a target
// never needs to pre-pull.
var catalogIndex = regexp.MustCompile(`/redhat/[^/]*-index[:@]`)

// readContainersList lists the images of the root's container store, one
// per image (its tag when it has one, else its repo digest), leaving out
// catalog index images. The node's store is opened read-only, as an
// additional image store of a scratch store: nothing is written to it.
// A root without a store gives an empty list.
func readContainersList(root, scratch string) ([]string, error) {
	dir := filepath.Join(root, nodeStore)
	if _, err := os.Stat(filepath.Join(dir, "overlay-images/images.json")); err != nil {
		return nil, nil
	}
	opts := types.StoreOptions{
		GraphRoot:          filepath.Join(scratch, "graph"),
		RunRoot:            filepath.Join(scratch, "run"),
		GraphDriverName:    "overlay",
		GraphDriverOptions: []string{"overlay.imagestore=" + dir},
	}
	store, err := storage.GetStore(opts)
	if err != nil {
		return nil, fmt.Errorf("reading the node's images in %q: %w", dir, err)
	}
	defer func() {
		store.Shutdown(true)
		unix.Unmount(opts.GraphRoot+"/overlay", unix.MNT_DETACH)
	}()
	images, err := store.Images()
	if err != nil {
		return nil, fmt.Errorf("reading the node's images in %q: %w", dir, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, img := range images {
		name := precacheName(img.Names, img.Digest.String())
		if name == "" || strings.HasPrefix(name, "@") || catalogIndex.MatchString(name) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// precacheName is an image's tag when it has one, else its repo digest.
func precacheName(names []string, digest string) string {
	for _, n := range names {
		if !strings.Contains(n, "@") {
			return n
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	if digest != "" {
		return "@" + digest
	}
	return ""
}
