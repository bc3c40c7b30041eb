package precache

import (
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// checkSpace sums the blobs the store lacks (each counted once, whatever
// number of images share it), and refuses a run, before any blob is
// fetched, when they are more than the store's free space. The layers take
// more once unpacked than their compressed blobs: this catches a run that
// cannot fit, not every one that will not.
func checkSpace(store storage.Store, plans []*imagePlan) (int64, error) {
	var need uint64
	seen := map[digest.Digest]bool{}
	for _, p := range plans {
		if p == nil || p.done {
			continue
		}
		for _, l := range p.layers {
			if seen[l.Digest] || layerPresent(store, l.Digest) {
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
		return 0, fmt.Errorf("reading the free space of the store %s: %w", store.GraphRoot(), err)
	}
	if free := st.Bavail * uint64(st.Bsize); need > free {
		return 0, &SpaceError{Need: need, Free: free, Store: store.GraphRoot()}
	}
	return int64(need), nil
}
