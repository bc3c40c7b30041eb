package precache

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// checkSpace refuses a run, before any blob is fetched, when the blobs
// the store lacks (each counted once, whatever number of images share it)
// are more than the store's free space. The layers take more once
// unpacked than their compressed blobs: this catches a run that cannot
// fit, not every one that will not.
func checkSpace(store storage.Store, plans []*imagePlan) error {
	o := Options{Store: store}
	var need uint64
	seen := map[digest.Digest]bool{}
	for _, p := range plans {
		if p == nil || p.done {
			continue
		}
		for _, l := range p.layers {
			if seen[l.Digest] || layerPresent(o, l.Digest) {
				continue
			}
			seen[l.Digest] = true
			if l.Size > 0 {
				need += uint64(l.Size)
			}
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(store.GraphRoot(), &st); err != nil {
		return fmt.Errorf("reading the free space of the store %s: %w", store.GraphRoot(), err)
	}
	if free := st.Bavail * uint64(st.Bsize); need > free {
		return &SpaceError{Need: need, Free: free, Store: store.GraphRoot()}
	}
	return nil
}
