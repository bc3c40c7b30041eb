// Package progress shows how far long work has got: files, bytes, rate
// and, once the total is known, the total and an ETA. On a terminal it
// draws a bar (with mpb); elsewhere it writes a plain line every few
// seconds.
package progress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// Counter counts the files and bytes done and holds the bytes expected.
// It is safe for concurrent use; the zero value is ready.
type Counter struct {
	files, bytes, total atomic.Int64
}

// Add counts files and bytes as done.
func (c *Counter) Add(files, bytes int64) {
	if files != 0 {
		c.files.Add(files)
	}
	if bytes != 0 {
		c.bytes.Add(bytes)
	}
}

// SetTotal says how many bytes the work will do in all; 0 means unknown.
func (c *Counter) SetTotal(bytes int64) { c.total.Store(bytes) }

// AddTotal adds bytes to the total, for work found on the way (or sized
// while other work is under way).
func (c *Counter) AddTotal(bytes int64) { c.total.Add(bytes) }

// Snapshot returns the files and bytes done so far and the total.
func (c *Counter) Snapshot() (files, bytes, total int64) {
	return c.files.Load(), c.bytes.Load(), c.total.Load()
}

// Reader counts what it reads from r as done bytes, as it goes.
func (c *Counter) Reader(r io.Reader) io.Reader { return countingReader{r, c} }

type countingReader struct {
	r io.Reader
	c *Counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.Add(0, int64(n))
	return n, err
}

// Line is one status line: files, bytes and rate so far and, with a known
// total, the total and the time left at the rate so far.
func Line(files, bytes, total int64, elapsed time.Duration) string {
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
		// Past 100 hours an estimate says nothing, and a Duration would
		// overflow on the way.
		if secs := float64(max(total-bytes, 0)) / rate; secs < 100*3600 {
			s += ", ETA " + (time.Duration(secs) * time.Second).String()
		} else {
			s += ", ETA over 100h"
		}
	}
	return s
}

// PlainInterval is how often Show writes a line when w is not a terminal.
const PlainInterval = 2 * time.Second

// Sizer works out the total bytes of the work beside it, without doing
// the work; it gives up with ErrStopped when stop is closed.
type Sizer func(stop <-chan struct{}) (int64, error)

// ErrStopped is what a Sizer returns when it was told to stop.
var ErrStopped = errors.New("sizing stopped: the work is done")

// Show reports c on w as "<doing>: <line>" until stop is called, which
// writes a last "<done>: <line>" (plain) or completes the bar (terminal).
// It shows nothing when w is nil or io.Discard. size, when not nil, runs
// beside the work only when something is shown, and what it finds
// becomes c's total.
func Show(w io.Writer, doing, done string, c *Counter, size Sizer) (stop func()) {
	if w == nil || w == io.Discard {
		return func() {}
	}
	sizeStop := make(chan struct{})
	if size != nil {
		go func() {
			if n, err := size(sizeStop); err == nil {
				c.AddTotal(max(n, 1))
			}
		}()
	}
	start := time.Now()
	line := func() string {
		files, bytes, total := c.Snapshot()
		return Line(files, bytes, total, time.Since(start))
	}
	quit, ended := make(chan struct{}), make(chan struct{})
	every := func(d time.Duration, fn func()) {
		defer close(ended)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p := mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond))
		bar := p.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(doing+" ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return line() })))
		go every(200*time.Millisecond, func() {
			_, bytes, total := c.Snapshot()
			if total > 0 {
				bar.SetTotal(max(total, bytes), false)
			}
			bar.SetCurrent(bytes)
		})
		return func() {
			close(sizeStop)
			close(quit)
			<-ended
			bar.SetCurrent(c.bytes.Load())
			bar.SetTotal(-1, true)
			p.Wait()
		}
	}
	go every(PlainInterval, func() { fmt.Fprintf(w, "%s: %s\n", doing, line()) })
	return func() {
		close(sizeStop)
		close(quit)
		<-ended
		files, bytes, _ := c.Snapshot()
		fmt.Fprintf(w, "%s: %s\n", done, Line(files, bytes, 0, time.Since(start)))
	}
}
