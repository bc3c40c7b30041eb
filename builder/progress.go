package builder

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows the capture as it goes: a live line on a terminal (files,
// bytes, rate), else a plain line every few seconds. Nothing when the
// progress writer is io.Discard.
func (b *build) progress() (stop func()) {
	w := b.opts.Progress
	if w == io.Discard {
		return func() {}
	}
	start := time.Now()
	status := func() string {
		files, bytes := b.tally.snapshot()
		secs := time.Since(start).Seconds()
		return fmt.Sprintf("%d files, %.1f MiB, %.1f MiB/s", files, float64(bytes)/(1<<20), float64(bytes)/(1<<20)/secs)
	}
	done := make(chan struct{})
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p := mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(200*time.Millisecond))
		bar := p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name("Capturing ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return status() })))
		return func() {
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
		fmt.Fprintf(w, "Captured: %s\n", status())
	}
}
