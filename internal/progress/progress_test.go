package progress

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                string
		files, bytes, total int64
		elapsed             time.Duration
		want                string
	}{
		{"total unknown", 10, 100 * mib, 0, 10 * time.Second, "10 files, 100.0 MiB, 10.0 MiB/s"},
		{"total known", 10, 100 * mib, 300 * mib, 10 * time.Second, "10 files, 100.0 MiB of 300.0 MiB, 10.0 MiB/s, ETA 20s"},
		{"long wait", 1, 1 * mib, 601 * mib, 10 * time.Second, "1 files, 1.0 MiB of 601.0 MiB, 0.1 MiB/s, ETA 1h40m0s"},
		{"past the estimate", 3, 50 * mib, 40 * mib, 5 * time.Second, "3 files, 50.0 MiB of 50.0 MiB, 10.0 MiB/s, ETA 0s"},
		{"nothing read yet", 0, 0, 40 * mib, time.Second, "0 files, 0.0 MiB of 40.0 MiB, 0.0 MiB/s"},
		{"slow start, huge total", 1, 100, 500 << 30, 2 * time.Second, "1 files, 0.0 MiB of 512000.0 MiB, 0.0 MiB/s, ETA over 100h"},
		{"no time elapsed", 0, 0, 0, 0, "0 files, 0.0 MiB, 0.0 MiB/s"},
	}
	for _, tt := range tests {
		if got := Line(tt.files, tt.bytes, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("%s: Line = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCounterReader(t *testing.T) {
	var c Counter
	n, err := io.Copy(io.Discard, c.Reader(strings.NewReader(strings.Repeat("x", 70000))))
	c.Add(1, 0)
	c.SetTotal(100000)
	files, got, total := c.Snapshot()
	if err != nil || n != 70000 || files != 1 || got != 70000 || total != 100000 {
		t.Errorf("after reading 70000 bytes of one file: files %d, bytes %d, total %d (%v)", files, got, total, err)
	}
}

func TestCounterAddTotal(t *testing.T) {
	tests := []struct {
		name string
		set  int64
		adds []int64
		want int64
	}{
		{"added to a set total", 100, []int64{20, 3}, 123},
		{"added with none set", 0, []int64{7}, 7},
		{"nothing added", 42, nil, 42},
	}
	for _, tt := range tests {
		var c Counter
		c.SetTotal(tt.set)
		for _, n := range tt.adds {
			c.AddTotal(n)
		}
		if _, _, total := c.Snapshot(); total != tt.want {
			t.Errorf("%s: total %d, want %d", tt.name, total, tt.want)
		}
	}
}

// lockedBuffer is a buffer Show's goroutine may write while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestShowPlain(t *testing.T) {
	running := regexp.MustCompile(`^Copying: 2 files, 3\.0 MiB of 6\.0 MiB, [0-9.]+ MiB/s, ETA [0-9hms]+$`)
	last := regexp.MustCompile(`^Copied: 2 files, 3\.0 MiB, [0-9.]+ MiB/s$`)
	for _, long := range []bool{false, true} {
		var buf lockedBuffer
		var c Counter
		c.Add(2, 3<<20)
		c.SetTotal(6 << 20)
		stop := Show(&buf, "Copying", "Copied", &c, nil)
		if long {
			// Wait for a line written while the work runs, however late
			// the ticker gets to run.
			for deadline := time.Now().Add(PlainInterval + 30*time.Second); !strings.Contains(buf.String(), "Copying:") && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
		}
		stop()
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if !last.MatchString(lines[len(lines)-1]) {
			t.Errorf("long work %v: last line %q, want it to match %s", long, lines[len(lines)-1], last)
		}
		body := lines[:len(lines)-1]
		if long && len(body) == 0 {
			t.Errorf("long work: no line while it ran: %q", lines)
		}
		if !long && len(body) != 0 {
			t.Errorf("quick work: %q, want only the last line", lines)
		}
		for _, l := range body {
			if !running.MatchString(l) {
				t.Errorf("line %q, want it to match %s", l, running)
			}
		}
	}
	var c Counter
	notShown := func(<-chan struct{}) (int64, error) {
		t.Error("a sizer ran with nothing to show")
		return 0, nil
	}
	Show(io.Discard, "Copying", "Copied", &c, notShown)()
	Show(nil, "Copying", "Copied", &c, notShown)()
}

// TestShowSizer: what the sizer finds becomes the total, and stop tells a
// sizer that is still at work to give up.
func TestShowSizer(t *testing.T) {
	var buf lockedBuffer
	var c Counter
	c.Add(2, 3<<20)
	stop := Show(&buf, "Copying", "Copied", &c, func(<-chan struct{}) (int64, error) { return 6 << 20, nil })
	for deadline := time.Now().Add(PlainInterval + 30*time.Second); !strings.Contains(buf.String(), "Copying:") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if !strings.Contains(buf.String(), "Copying: 2 files, 3.0 MiB of 6.0 MiB") {
		t.Errorf("progress = %q, want the sizer's total in the running line", buf.String())
	}

	gaveUp := make(chan struct{})
	stop = Show(&buf, "Copying", "Copied", &c, func(stop <-chan struct{}) (int64, error) {
		<-stop
		close(gaveUp)
		return 0, ErrStopped
	})
	stop()
	select {
	case <-gaveUp:
	case <-time.After(10 * time.Second):
		t.Error("the sizer was not told to stop")
	}
}
