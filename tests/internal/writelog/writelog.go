// Package writelog reads the write logs of QEMU's blklogwrites block
// driver, and replays them onto a copy of the disk they were recorded
// from, to any point: the disk as a power cut there could leave it.
//
// The format is Linux's dm-log-writes (the kernel's
// Documentation/admin-guide/device-mapper/log-writes.rst), as QEMU writes
// it (block/blklogwrites.c, QEMU 7.2, Debian 12's qemu 1:7.2+dfsg):
//   - a super block at byte 0, little-endian: magic (u64), version (u64),
//     the number of entries (u64), the log's sector size (u32);
//   - entries from the second log sector on, each a header of one log
//     sector (sector, sectors, flags, data length: u64 each, the rest
//     zero), a write's data right after it (sectors log sectors);
//   - sector and sectors count log sectors (log-sector-size, 512 unless
//     set), not 512-byte ones;
//   - a write's entry is written once the write is done; a flush's (no
//     sectors) once the flush of the disk is done, and then the super
//     block, so every entry before a flush's was on the disk when it was
//     logged;
//   - a discard's entry (only with discard=unmap) has sectors but no data;
//     write-zeroes are logged as writes of zeros; QEMU writes no marks and
//     no FUA flag (a FUA write is a write and a flush);
//   - the super block's count is brought up to date at each flush and
//     every log-super-update-interval entries (4096 unless set), and the
//     log is not truncated when it is opened again: a recorder sets the
//     interval to 1 and starts from an empty file.
package writelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"golang.org/x/sys/unix"
)

// The format's constants (dm-log-writes.c).
const (
	magic   = 0x6a736677736872
	version = 1

	// FlagFlush marks a flush: every entry before it was on the disk.
	FlagFlush = 1 << 0
	// FlagFUA marks a write that was on the disk once done.
	FlagFUA = 1 << 1
	// FlagDiscard marks a discard: its range may read back as anything.
	FlagDiscard = 1 << 2
	// FlagMark marks a mark, whose text is its data (not QEMU's).
	FlagMark = 1 << 3
	// FlagMetadata marks a metadata write (the kernel's, not QEMU's).
	FlagMetadata = 1 << 4

	knownFlags = FlagFlush | FlagFUA | FlagDiscard | FlagMark | FlagMetadata
	superSize  = 28
	entrySize  = 32
)

// Entry is one logged request, in bytes on the disk.
type Entry struct {
	Offset, Length int64
	Flags          uint64
	// data is where a write's data starts in the log.
	data int64
}

// Flush says the entry is a flush.
func (e Entry) Flush() bool { return e.Flags&FlagFlush != 0 }

// Discard says the entry is a discard.
func (e Entry) Discard() bool { return e.Flags&FlagDiscard != 0 }

// Write says the entry writes data.
func (e Entry) Write() bool { return e.Flags&(FlagDiscard|FlagMark) == 0 && e.Length > 0 }

// Log is a write log: its entries, read whole; their data stays in the
// file until replayed.
type Log struct {
	f          *os.File
	SectorSize int64
	Entries    []Entry
}

// Open reads the write log at path: its super block, then every entry it
// counts.
func Open(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the write log: %w", err)
	}
	l, err := read(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the write log %s: %w", path, err)
	}
	return l, nil
}

func read(f *os.File) (*Log, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var sb [superSize]byte
	if _, err := f.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("the super block: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint64(sb[0:]); m != magic {
		return nil, fmt.Errorf("not a write log: magic %#x", m)
	}
	if v := le.Uint64(sb[8:]); v != version {
		return nil, fmt.Errorf("version %d, not %d", v, version)
	}
	n, ss := le.Uint64(sb[16:]), int64(le.Uint32(sb[24:]))
	if ss < 512 || bits.OnesCount64(uint64(ss)) != 1 {
		return nil, fmt.Errorf("a sector size of %d", ss)
	}
	// Every entry takes a sector at least.
	if n > uint64(fi.Size()/ss) {
		return nil, fmt.Errorf("%d entries counted in %d bytes", n, fi.Size())
	}
	l := &Log{f: f, SectorSize: ss, Entries: make([]Entry, 0, n)}
	pos := ss
	var h [entrySize]byte
	for i := uint64(0); i < n; i++ {
		if _, err := f.ReadAt(h[:], pos); err != nil {
			return nil, fmt.Errorf("entry %d at %d: %w", i, pos, err)
		}
		sector, sectors, flags, dataLen := le.Uint64(h[0:]), le.Uint64(h[8:]), le.Uint64(h[16:]), le.Uint64(h[24:])
		if flags&^knownFlags != 0 {
			return nil, fmt.Errorf("entry %d at %d: unknown flags %#x", i, pos, flags)
		}
		if flags&FlagMark != 0 || dataLen != 0 {
			return nil, fmt.Errorf("entry %d at %d: a mark or inline data, which QEMU does not write", i, pos)
		}
		if flags&FlagFlush == 0 && sectors == 0 {
			return nil, fmt.Errorf("entry %d at %d: neither a flush nor any sectors", i, pos)
		}
		if sector > 1<<40 || sectors > 1<<40 {
			return nil, fmt.Errorf("entry %d at %d: sector %d, %d sectors", i, pos, sector, sectors)
		}
		e := Entry{Offset: int64(sector) * ss, Length: int64(sectors) * ss, Flags: flags}
		pos += ss
		if e.Write() {
			e.data = pos
			pos += e.Length
			if pos > fi.Size() {
				return nil, fmt.Errorf("entry %d: its data ends at %d, past the log's end (%d)", i, pos, fi.Size())
			}
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// Close closes the log's file.
func (l *Log) Close() error { return l.f.Close() }

// FlushPoints are the indexes of the flush entries that follow a write or
// a discard. The disk as the log has it up to and including one of them
// is what a power cut right after that flush leaves: all that was written
// before, nothing after. (QEMU may log two flushes in a row, one request
// flushed at two layers: the second leaves the same disk.)
func (l *Log) FlushPoints() []int {
	var out []int
	for i, e := range l.Entries {
		if e.Flush() && i > 0 && !l.Entries[i-1].Flush() {
			out = append(out, i)
		}
	}
	return out
}

// Apply replays the entries from index from up to (not including) to onto
// disk, a copy of the disk the log was recorded from as it was when the
// log started, advanced by earlier Apply calls to from: a write writes its
// data, a discard punches a hole (it reads back as zeros). keep, when set,
// says which entries are replayed: the writes after the last flush that a
// power cut kept.
func (l *Log) Apply(disk *os.File, from, to int, keep func(i int) bool) error {
	if from < 0 || to > len(l.Entries) || from > to {
		return fmt.Errorf("replaying entries %d to %d of %d", from, to, len(l.Entries))
	}
	for i := from; i < to; i++ {
		e := l.Entries[i]
		if keep != nil && !keep(i) {
			continue
		}
		var err error
		switch {
		case e.Discard():
			err = unix.Fallocate(int(disk.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, e.Offset, e.Length)
		case e.Write():
			_, err = io.Copy(io.NewOffsetWriter(disk, e.Offset), io.NewSectionReader(l.f, e.data, e.Length))
		}
		if err != nil {
			return fmt.Errorf("replaying entry %d (%d bytes at %d) onto %s: %w", i, e.Length, e.Offset, disk.Name(), err)
		}
	}
	return nil
}

// ErrNoFlush is Between's answer for a log with no flush.
var ErrNoFlush = errors.New("the write log has no flush")

// Between is the range of entries after flush point k (FlushPoints()[k])
// up to the next flush point (or the log's end): the writes a power cut
// there may have kept any of (and flushes, which change nothing).
func (l *Log) Between(k int) (from, to int, err error) {
	points := l.FlushPoints()
	if len(points) == 0 {
		return 0, 0, ErrNoFlush
	}
	if k < 0 || k >= len(points) {
		return 0, 0, fmt.Errorf("flush point %d of %d", k, len(points))
	}
	from, to = points[k]+1, len(l.Entries)
	if k+1 < len(points) {
		to = points[k+1]
	}
	return from, to, nil
}
