package builder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// progress shows the capture as it goes: a bar on a terminal, else a plain
// line every few seconds, each with files, bytes, rate and, once the size
// of what will be captured is known, the total and an ETA. Nothing when
// the progress writer is io.Discard.
func (b *build) progress(c *capture) (stop func()) {
	w := b.opts.Progress
	if w == io.Discard {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	var total atomic.Int64 // bytes to capture; 0 while unknown
	go func() {
		if n, err := c.estimate(done, "var", "etc"); err == nil {
			total.Store(max(n, 1))
		}
	}()
	status := func() string {
		files, bytes := b.tally.snapshot()
		return captureStatus(files, bytes, total.Load(), time.Since(start))
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p := mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond))
		bar := p.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name("Capturing ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return status() })))
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					_, bytes := b.tally.snapshot()
					if n := total.Load(); n > 0 {
						bar.SetTotal(max(n, bytes), false)
					}
					bar.SetCurrent(bytes)
				}
			}
		}()
		return func() {
			close(done)
			bar.SetTotal(-1, true)
			p.Wait()
		}
	}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "Capturing: %s\n", status())
			}
		}
	}()
	return func() {
		close(done)
		files, bytes := b.tally.snapshot()
		fmt.Fprintf(w, "Captured: %s\n", captureStatus(files, bytes, 0, time.Since(start)))
	}
}

// captureStatus is one progress line: files, bytes and rate so far, and
// with a known total, the total and the time left at the rate so far.
func captureStatus(files, bytes, total int64, elapsed time.Duration) string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(bytes) / secs
	}
	s := fmt.Sprintf("%d files, %.1f MiB", files, mib(bytes))
	if total > 0 {
		s += fmt.Sprintf(" of %.1f MiB", mib(max(total, bytes)))
	}
	s += fmt.Sprintf(", %.1f MiB/s", rate/(1<<20))
	if total > 0 && rate > 0 {
		left := time.Duration(float64(max(total-bytes, 0)) / rate * float64(time.Second))
		s += ", ETA " + left.Round(time.Second).String()
	}
	return s
}

// errEstimateStopped ends an estimate whose capture has finished.
var errEstimateStopped = errors.New("estimate stopped")

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
				return false, errEstimateStopped
			default:
			}
			if c.excl.match(rel) {
				return false, nil
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
