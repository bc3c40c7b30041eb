package builder

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectWriter writes files of sizes around the alignment and chunk
// boundaries, in pieces of odd sizes, on a disk folder (direct I/O), there
// again as where direct I/O is refused, and on tmpfs, and reads them back.
func TestDirectWriter(t *testing.T) {
	dirs := map[string]string{"disk": t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "directwrite-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs["tmpfs"] = d
	}
	sizes := []int{0, 1, directAlign - 1, directAlign, directChunk - 1, directChunk, directChunk + 1, 3*directChunk + 513}
	dirs["refused"] = t.TempDir()
	for where, dir := range dirs {
		for _, size := range sizes {
			for _, piece := range []int{1 << 20, 512, 32<<10 + 7} {
				want := make([]byte, size)
				rand.New(rand.NewSource(int64(size))).Read(want)
				path := filepath.Join(dir, "f")
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				w := newDirectWriter(f)
				if where == "refused" && w.direct != nil {
					w.direct.Close()
					w.direct = nil
				}
				if where == "disk" && w.direct == nil {
					t.Logf("direct I/O refused in %s", dir)
				}
				for p := want; len(p) > 0; {
					c := min(piece, len(p))
					if n, err := w.Write(p[:c]); err != nil || n != c {
						t.Fatalf("%s, %d bytes: Write = %d, %v", where, size, n, err)
					}
					p = p[c:]
				}
				if err := w.Close(); err != nil {
					t.Fatalf("%s, %d bytes: Close: %v", where, size, err)
				}
				f.Close()
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s, %d bytes in pieces of %d: read back %d bytes that differ", where, size, piece, len(got))
				}
			}
		}
	}
}

// TestDirectWriterFails: a write the device refuses is an error, from
// Write or at the latest from Close.
func TestDirectWriterFails(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer f.Close()
	w := newDirectWriter(f)
	data := make([]byte, 3*directChunk+1)
	_, werr := w.Write(data)
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("writing to /dev/full succeeded")
	}
}
