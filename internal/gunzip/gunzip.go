// Package gunzip decompresses gzip streams with the system's zlib, through
// cgo. On an RHCOS-sized OS layer (1.0 GB to 1.6 GB) zlib's inflate took
// 5.2 s of CPU where klauspost's pgzip took 7.5 s, and a deploy is bound by
// CPU on a small node: every byte of the OS is decompressed once.
//
// The decompression runs on its own goroutine, ahead of the reader, so it
// and what consumes its output use two cores.
package gunzip

/*
#cgo LDFLAGS: -lz
#include <stdlib.h>
#include <zlib.h>

// gunzip_new makes a stream that inflates gzip members (windowBits 15+16),
// or returns NULL.
static z_stream *gunzip_new(void) {
	z_stream *s = calloc(1, sizeof(z_stream));
	if (s == NULL) {
		return NULL;
	}
	if (inflateInit2(s, 15 + 16) != Z_OK) {
		free(s);
		return NULL;
	}
	return s;
}

// gunzip_step inflates from in into out and says how much of each it used.
// zlib keeps no pointer into either once it returns.
static int gunzip_step(z_stream *s, unsigned char *in, unsigned in_len, unsigned char *out, unsigned out_len, unsigned *in_used, unsigned *out_used) {
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int rc = inflate(s, Z_NO_FLUSH);
	*in_used = in_len - s->avail_in;
	*out_used = out_len - s->avail_out;
	s->next_in = NULL;
	s->avail_in = 0;
	s->next_out = NULL;
	s->avail_out = 0;
	return rc;
}

static const char *gunzip_msg(z_stream *s) { return s->msg; }

static int gunzip_reset(z_stream *s) { return inflateReset(s); }

static void gunzip_free(z_stream *s) {
	inflateEnd(s);
	free(s);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seedbuild/seedbuild/internal/aheadpipe"
)

const (
	inSize  = 256 << 10
	outSize = 1 << 20
	ahead   = 4 // output chunks decompressed ahead of the reader
)

// ErrHeader is returned when the stream does not start as gzip does.
var ErrHeader = errors.New("gunzip: not a gzip stream")

// Reader reads the decompressed content of a gzip stream of one or more
// members, as Go's gzip.Reader does, checking each member's CRC-32 and
// length. Close stops the decompression early and frees zlib's state.
type Reader struct {
	pipe *aheadpipe.Pipe
	done chan struct{}
}

// NewReader starts decompressing r, on a thread whose priority is raised
// (renice).
func NewReader(r io.Reader) (*Reader, error) { return newReader(r, boost) }

// NewBackgroundReader starts decompressing r on a thread whose priority is
// lowered as much as NewReader's are raised: for a stream read beside a
// more urgent one, which it must not slow.
func NewBackgroundReader(r io.Reader) (*Reader, error) { return newReader(r, -boost) }

func newReader(r io.Reader, levels int) (*Reader, error) {
	s := C.gunzip_new()
	if s == nil {
		return nil, errors.New("gunzip: zlib could not start a stream")
	}
	z := &Reader{pipe: aheadpipe.New(ahead), done: make(chan struct{})}
	go func() {
		// The thread is locked for good: no other goroutine runs at its
		// priority, and a goroutine that exits locked ends its thread
		// (but the process's first, which is kept idle: hence the
		// priority is also put back).
		runtime.LockOSThread()
		defer close(z.done)
		// Put back before Close returns (deferred calls run last first).
		defer renice(levels)()
		defer C.gunzip_free(s)
		z.pipe.CloseWrite(inflate(s, r, z.pipe))
	}()
	return z, nil
}

// inflate writes what r inflates to into w, until r's end (io.EOF, returned
// as nil), an error, or w failing (the reader closed).
func inflate(s *C.z_stream, r io.Reader, w io.Writer) error {
	in := make([]byte, inSize)
	out := make([]byte, outSize)
	var pending []byte // read, not yet inflated
	started, member := false, false
	eof := false
	n := 0 // of out, inflated and not yet written
	for {
		if len(pending) == 0 && !eof {
			m, err := io.ReadFull(r, in)
			pending = in[:m]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				return err
			}
		}
		if len(pending) == 0 {
			switch {
			case !started:
				return io.ErrUnexpectedEOF
			case member:
				return fmt.Errorf("gunzip: %w", io.ErrUnexpectedEOF)
			}
			_, err := w.Write(out[:n])
			return err
		}
		if !member && started && len(pending) > 0 {
			// Another member follows the one that ended.
			if C.gunzip_reset(s) != C.Z_OK {
				return errors.New("gunzip: zlib could not restart")
			}
		}
		if !started && len(pending) >= 2 && (pending[0] != 0x1f || pending[1] != 0x8b) {
			return ErrHeader
		}
		started, member = true, true
		var inUsed, outUsed C.uint
		rc := C.gunzip_step(s, (*C.uchar)(unsafe.Pointer(&pending[0])), C.uint(len(pending)),
			(*C.uchar)(unsafe.Pointer(&out[n])), C.uint(len(out)-n), &inUsed, &outUsed)
		pending = pending[int(inUsed):]
		n += int(outUsed)
		switch rc {
		case C.Z_OK:
		case C.Z_BUF_ERROR:
			if inUsed == 0 && outUsed == 0 {
				// Input and room for output, and no progress: zlib
				// stays stuck however often it is called.
				return errors.New("gunzip: zlib made no progress")
			}
		case C.Z_STREAM_END:
			member = false
		default:
			msg := "corrupt input"
			if m := C.gunzip_msg(s); m != nil {
				msg = C.GoString(m)
			}
			return fmt.Errorf("gunzip: %s", msg)
		}
		if n == len(out) {
			if _, err := w.Write(out); err != nil {
				return err
			}
			n = 0
		}
	}
}

// boost is how many nice levels NewReader raises the decompressing thread
// above the process's other threads, and NewBackgroundReader lowers it.
const boost = 10

// renice raises the calling thread's priority by levels nice levels
// (lowers it, for a negative levels) against the process's other threads,
// and returns what puts it back (a thread ended locked may be kept idle rather
// than ended: the process's first). The thread must be locked to its
// goroutine.
//
// The decompression is the critical path of what reads a layer:
// everything downstream waits on it, and the threads that write files and
// hash them compete with it for the same cores. On a 2-core machine,
// unpacking an RHCOS-sized OS layer (1.65 GB) spent 6.0 to 6.7 s inside
// zlib at the default priority and 5.2 to 5.4 s raised (one run 6.9 s; 4
// runs each, alternating); making the writers nicer instead did not help.
// Without the right to raise it (CAP_SYS_NICE, as root has), the thread
// keeps its priority.
func renice(levels int) (restore func()) {
	// The raw syscall's value is 20 - nice.
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return func() {}
	}
	tid, nice := unix.Gettid(), 20-raw
	if unix.Setpriority(unix.PRIO_PROCESS, tid, min(max(nice-levels, -20), 19)) != nil {
		return func() {}
	}
	return func() { _ = unix.Setpriority(unix.PRIO_PROCESS, tid, nice) }
}

// Read reads decompressed bytes.
func (z *Reader) Read(p []byte) (int, error) { return z.pipe.Read(p) }

// Close stops the decompression and waits for it to end.
func (z *Reader) Close() error {
	z.pipe.CloseRead(io.ErrClosedPipe)
	<-z.done
	return nil
}
