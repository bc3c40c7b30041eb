package builder

import (
	"unicode/utf8"

	"github.com/seedbuild/seedbuild/internal/progress"
	"golang.org/x/sys/unix"
)

// progress shows the capture as it goes (see package progress). A
// metadata-only walk of /var beside the capture sizes what it will read,
// so the total and an ETA appear once the walk is done. /etc is left out
// of it: only its changed files are captured, a small part.
func (b *build) progress(c *capture) (stop func()) {
	return progress.Show(b.opts.Progress, "Capturing", "Captured", &b.tally.Counter,
		func(stop <-chan struct{}) (int64, error) { return c.estimate(stop, "var") })
}

// estimate is the number of file bytes a capture of rels would read: the
// same walk, exclusions and mount points, each hard-linked file once,
// without reading any content. It gives up when stop is closed.
func (c *capture) estimate(stop <-chan struct{}, rels ...string) (int64, error) {
	var total int64
	seen := map[devIno]bool{}
	for _, rel := range rels {
		err := walk(c.root, rel, c.mounts, func(_, rel string, st *unix.Stat_t) (bool, error) {
			select {
			case <-stop:
				return false, progress.ErrStopped
			default:
			}
			if c.excl.match(rel) || !utf8.ValidString(rel) {
				return false, nil // left out by the capture too
			}
			if st.Mode&unix.S_IFMT == unix.S_IFREG {
				if key := (devIno{uint64(st.Dev), st.Ino}); st.Nlink > 1 {
					if seen[key] {
						return false, nil
					}
					seen[key] = true
				}
				total += st.Size
			}
			return true, nil
		})
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}
