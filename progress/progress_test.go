package progress

import (
	"bytes"
	"io"
	"regexp"
	"strings"
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

func TestShowPlain(t *testing.T) {
	tests := []struct {
		name  string
		wait  time.Duration
		lines []string // patterns, in order
	}{
		{"quick work: one last line", 0, []string{`^Copied: 2 files, 3\.0 MiB, [0-9.]+ MiB/s$`}},
		{"long work: a line per interval, then the last", PlainInterval + 500*time.Millisecond, []string{
			`^Copying: 2 files, 3\.0 MiB of 6\.0 MiB, [0-9.]+ MiB/s, ETA [0-9]+s$`,
			`^Copied: 2 files, 3\.0 MiB, [0-9.]+ MiB/s$`}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		var c Counter
		stop := Show(&buf, "Copying", "Copied", &c)
		c.Add(2, 3<<20)
		c.SetTotal(6 << 20)
		time.Sleep(tt.wait)
		stop()
		got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(got) != len(tt.lines) {
			t.Errorf("%s: wrote %q, want %d lines", tt.name, got, len(tt.lines))
			continue
		}
		for i, pat := range tt.lines {
			if !regexp.MustCompile(pat).MatchString(got[i]) {
				t.Errorf("%s: line %d = %q, want it to match %s", tt.name, i+1, got[i], pat)
			}
		}
	}
	var c Counter
	Show(io.Discard, "Copying", "Copied", &c)()
	Show(nil, "Copying", "Copied", &c)()
}
