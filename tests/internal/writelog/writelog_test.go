package writelog

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const diskSize = 1 << 20

// record runs the qemu-io commands on a disk of diskSize bytes of 0xee,
// through QEMU's blklogwrites driver, and returns the disk as it was
// before, the disk after, and the log.
func record(t *testing.T, sectorSize string, cmds ...string) (before, after, log string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Fatal("qemu-io is not installed (make test installs qemu-utils)")
	}
	dir := t.TempDir()
	before, after, log = filepath.Join(dir, "before.raw"), filepath.Join(dir, "disk.raw"), filepath.Join(dir, "w.log")
	for _, p := range []string{before, after} {
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xee}, diskSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// QEMU writes into the log file, which must be there, and empty.
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := "driver=blklogwrites,discard=unmap,log-super-update-interval=1,file.driver=file,file.discard=unmap,file.filename=" + after +
		",log.driver=file,log.filename=" + log
	if sectorSize != "" {
		opts += ",log-sector-size=" + sectorSize
	}
	args := []string{"--image-opts", opts}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out, err := exec.Command("qemu-io", args...).CombinedOutput(); err != nil || strings.Contains(string(out), "error") {
		t.Fatalf("qemu-io %v: %v\n%s", args, err, out)
	}
	return before, after, log
}

// replayed is a copy of before with the log's entries [0, to) replayed,
// keep choosing among them as Apply's does.
func replayed(t *testing.T, l *Log, before string, to int, keep func(int) bool) []byte {
	t.Helper()
	data, err := os.ReadFile(before)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "replay.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := l.Apply(f, 0, to, keep); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// at is the disk content 0xee with the runs of bytes given (offset, length,
// byte) written over it.
func at(runs ...[3]int) []byte {
	d := bytes.Repeat([]byte{0xee}, diskSize)
	for _, r := range runs {
		copy(d[r[0]:r[0]+r[1]], bytes.Repeat([]byte{byte(r[2])}, r[1]))
	}
	return d
}

// TestReplayQEMULog records a log with QEMU itself, and checks that the
// disk replayed to each flush point is what was written before it, with
// nothing after, and that the whole log replayed gives the disk QEMU
// left, byte for byte.
func TestReplayQEMULog(t *testing.T) {
	for _, ss := range []string{"", "4096"} {
		t.Run("log sector size "+ss, func(t *testing.T) {
			// 4 KiB-aligned, so that a 4 KiB log sector takes them whole.
			before, after, path := record(t, ss,
				"write -P 0x11 0 4k", "flush",
				"write -P 0x22 8k 4k", "write -P 0x33 0 4k", "flush",
				"discard 16k 4k", "write -P 0x44 64k 8k")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			points := l.FlushPoints()
			// QEMU flushes once more when it closes the disk.
			if len(points) != 3 || !l.Entries[len(l.Entries)-1].Flush() {
				t.Fatalf("flush points %v of %d entries, want 3, and a flush at the end", points, len(l.Entries))
			}
			want := [][]byte{
				at([3]int{0, 4096, 0x11}),
				at([3]int{0, 4096, 0x33}, [3]int{8192, 4096, 0x22}),
				at([3]int{0, 4096, 0x33}, [3]int{8192, 4096, 0x22}, [3]int{16384, 4096, 0}, [3]int{65536, 8192, 0x44}),
			}
			for k, p := range points {
				if got := replayed(t, l, before, p+1, nil); !bytes.Equal(got, want[k]) {
					t.Errorf("replayed to flush point %d (entry %d): not the disk as written to there", k, p)
				}
			}
			final, err := os.ReadFile(after)
			if err != nil {
				t.Fatal(err)
			}
			if got := replayed(t, l, before, len(l.Entries), nil); !bytes.Equal(got, final) {
				t.Errorf("the whole log replayed is not the disk QEMU left")
			}
			// A power cut after the second flush that kept the write of
			// 0x44 but lost the discard.
			from, to, err := l.Between(1)
			if err != nil || l.Entries[to].Flags != FlagFlush || to != points[2] {
				t.Fatalf("Between(1) = %d, %d, %v; want the discard and the write, to the last flush point", from, to, err)
			}
			keep := func(i int) bool { return i < from || (i < to && l.Entries[i].Write()) }
			if got := replayed(t, l, before, to, keep); !bytes.Equal(got, at([3]int{0, 4096, 0x33}, [3]int{8192, 4096, 0x22}, [3]int{65536, 8192, 0x44})) {
				t.Errorf("replayed to the second flush with only the write after it: wrong content")
			}
		})
	}
}

// TestOpenRefuses checks the logs Open must refuse, naming what is wrong.
func TestOpenRefuses(t *testing.T) {
	_, _, path := record(t, "", "write -P 0x11 0 4k", "flush")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(b []byte) []byte
		want   string
	}{
		{"bad magic", func(b []byte) []byte { b[0] ^= 0xff; return b }, "not a write log"},
		{"other version", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 2); return b }, "version 2"},
		{"odd sector size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 1000); return b }, "sector size of 1000"},
		{"data cut short", func(b []byte) []byte { return b[:512+512+100] }, "past the log's end"},
		{"more entries than room", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1000); return b }, "1000 entries"},
		{"unknown flag", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[512+16:], 1<<9); return b }, "unknown flags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "w.log")
			if err := os.WriteFile(p, tc.change(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := Open(p)
			if err == nil {
				l.Close()
				t.Fatalf("Open accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("Open: %v; want it to name %s and say %q", err, p, tc.want)
			}
		})
	}
}
