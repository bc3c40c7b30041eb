package gunzip

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

func gz(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts {
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// oneByteReader hands the stream over a byte at a time.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReader(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	noise := make([]byte, 3*outSize+17)
	rnd.Read(noise)
	text := []byte(strings.Repeat("seedbuild deploys seeds. ", 200000))
	one := gz(t, text)
	corrupt := bytes.Clone(one)
	corrupt[len(corrupt)-6] ^= 0xff // in the CRC-32
	tests := []struct {
		name    string
		in      []byte
		slow    bool
		want    []byte
		wantErr string
	}{
		{name: "one member", in: one, want: text},
		{name: "incompressible, over several chunks", in: gz(t, noise), want: noise},
		{name: "two members", in: gz(t, text[:1000], noise[:5000]), want: append(bytes.Clone(text[:1000]), noise[:5000]...)},
		{name: "an empty member", in: gz(t, []byte{}), want: []byte{}},
		{name: "a byte at a time", in: gz(t, text[:70000]), slow: true, want: text[:70000]},
		{name: "bad CRC", in: corrupt, wantErr: "incorrect data check"},
		{name: "truncated", in: one[:len(one)/2], wantErr: "unexpected EOF"},
		{name: "not gzip", in: []byte("plain text, not gzip"), wantErr: ErrHeader.Error()},
		{name: "garbage after a member", in: append(gz(t, text[:10]), "junk"...), wantErr: "gunzip"},
	}
	for _, tt := range tests {
		var r io.Reader = bytes.NewReader(tt.in)
		if tt.slow {
			r = oneByteReader{r}
		}
		z, err := NewReader(r)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, err := io.ReadAll(z)
		z.Close()
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one with %q", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !bytes.Equal(got, tt.want):
			t.Errorf("%s: got %d bytes, want %d (equal: %v)", tt.name, len(got), len(tt.want), bytes.Equal(got, tt.want))
		}
	}
}

// TestCloseEarly: Close stops a decompression its reader left, and
// returns.
func TestCloseEarly(t *testing.T) {
	noise := make([]byte, 20*outSize)
	rand.New(rand.NewSource(2)).Read(noise)
	z, err := NewReader(bytes.NewReader(gz(t, noise)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(z, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { z.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := z.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestAgainstGo: with GUNZIP_BLOB naming a gzip file, the output equals
// pgzip's, and the times of both are logged.
func TestAgainstGo(t *testing.T) {
	p := os.Getenv("GUNZIP_BLOB")
	if p == "" {
		t.Skip("GUNZIP_BLOB not set")
	}
	sum := func(open func(io.Reader) (io.Reader, error)) (int64, time.Duration) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		defer func() {
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			t.Logf("cpu user %v sys %v", time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()), time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano()))
		}()
		start := time.Now()
		r, err := open(f)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			t.Fatal(err)
		}
		return n, time.Since(start)
	}
	nz, tz := sum(func(r io.Reader) (io.Reader, error) { return NewReader(r) })
	ng, tg := sum(func(r io.Reader) (io.Reader, error) { return pgzip.NewReader(r) })
	t.Logf("zlib %d bytes in %v; pgzip %d in %v", nz, tz, ng, tg)
	if nz != ng {
		t.Errorf("zlib gave %d bytes, pgzip %d", nz, ng)
	}
}

// threadNices is the nice value of each of the process's threads.
func threadNices(t *testing.T) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	nices := map[string]int{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// Field 19 is nice; the fields after the command's ")" start at 3.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		n, err := strconv.Atoi(f[16])
		if err != nil {
			t.Fatalf("reading the nice value of thread %s: %v", task.Name(), err)
		}
		nices[task.Name()] = n
	}
	return nices
}

// TestDecompressionPriority checks that the decompressing thread runs at
// a priority raised (NewReader, where the process may raise it) or
// lowered (NewBackgroundReader) by boost while it works, and that no such
// thread outlives Close.
func TestDecompressionPriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	nice := 20 - base
	mayRaise := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice-1) == nil
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
	for _, tc := range []struct {
		name  string
		open  func(io.Reader) (*Reader, error)
		want  int
		raise bool
	}{
		{"raised", NewReader, max(nice-boost, -20), true},
		{"lowered", NewBackgroundReader, min(nice+boost, 19), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raise && !mayRaise {
				t.Skip("this process may not raise a thread's priority (no CAP_SYS_NICE)")
			}
			changed := func() []string {
				var got []string
				for tid, n := range threadNices(t) {
					if n != nice {
						got = append(got, tid)
					}
				}
				return got
			}
			// More than the pipe holds, so the decompression waits on the reader.
			z, err := tc.open(bytes.NewReader(gz(t, bytes.Repeat([]byte("seed"), 8<<20))))
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(changed()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := changed(); len(got) != 1 || threadNices(t)[got[0]] != tc.want {
				t.Errorf("threads at another priority while decompressing: %v (nices %v), want one at %d", got, threadNices(t), tc.want)
			}
			z.Close()
			if got := changed(); len(got) > 0 {
				t.Errorf("threads still at another priority after Close: %v", got)
			}
		})
	}
}
