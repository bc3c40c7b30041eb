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
	"unsafe"
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
	chunks chan chunk
	free   chan []byte
	quit   chan struct{}
	done   chan struct{}
	cur    chunk
	off    int
	err    error
}

type chunk struct {
	data []byte
	err  error
}

// NewReader starts decompressing r.
func NewReader(r io.Reader) (*Reader, error) {
	s := C.gunzip_new()
	if s == nil {
		return nil, errors.New("gunzip: zlib could not start a stream")
	}
	z := &Reader{chunks: make(chan chunk, ahead), free: make(chan []byte, ahead+2), quit: make(chan struct{}), done: make(chan struct{})}
	for range ahead + 2 {
		z.free <- make([]byte, outSize)
	}
	go z.run(s, r)
	return z, nil
}

// run inflates r chunk by chunk until its end, an error or Close.
func (z *Reader) run(s *C.z_stream, r io.Reader) {
	defer close(z.done)
	defer C.gunzip_free(s)
	send := func(c chunk) bool {
		select {
		case z.chunks <- c:
			return true
		case <-z.quit:
			return false
		}
	}
	in := make([]byte, inSize)
	var pending []byte // read, not yet inflated
	started, member := false, false
	eof := false
	var out []byte
	var n int
	for {
		if len(pending) == 0 && !eof {
			m, err := io.ReadFull(r, in)
			pending = in[:m]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				send(chunk{err: err})
				return
			}
		}
		if len(pending) == 0 {
			switch {
			case !started:
				send(chunk{err: io.ErrUnexpectedEOF})
			case member:
				send(chunk{err: fmt.Errorf("gunzip: %w", io.ErrUnexpectedEOF)})
			default:
				if n > 0 {
					if !send(chunk{data: out[:n]}) {
						return
					}
				}
				send(chunk{err: io.EOF})
			}
			return
		}
		if !member && started && len(pending) > 0 {
			// Another member follows the one that ended.
			if C.gunzip_reset(s) != C.Z_OK {
				send(chunk{err: errors.New("gunzip: zlib could not restart")})
				return
			}
		}
		if !started && len(pending) >= 2 && (pending[0] != 0x1f || pending[1] != 0x8b) {
			send(chunk{err: ErrHeader})
			return
		}
		started, member = true, true
		if out == nil {
			select {
			case out = <-z.free:
				n = 0
			case <-z.quit:
				return
			}
		}
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
				send(chunk{err: errors.New("gunzip: zlib made no progress")})
				return
			}
		case C.Z_STREAM_END:
			member = false
		default:
			msg := "corrupt input"
			if m := C.gunzip_msg(s); m != nil {
				msg = C.GoString(m)
			}
			send(chunk{err: fmt.Errorf("gunzip: %s", msg)})
			return
		}
		if n == len(out) {
			if !send(chunk{data: out}) {
				return
			}
			out = nil
		}
	}
}

// Read reads decompressed bytes.
func (z *Reader) Read(p []byte) (int, error) {
	for z.off == len(z.cur.data) {
		if z.err != nil {
			return 0, z.err
		}
		if z.cur.data != nil {
			z.free <- z.cur.data[:cap(z.cur.data)]
		}
		var c chunk
		select {
		case c = <-z.chunks:
		case <-z.quit: // closed
			return 0, io.ErrClosedPipe
		}
		z.cur, z.off = chunk{data: c.data}, 0
		if c.err != nil {
			z.err = c.err
		}
	}
	n := copy(p, z.cur.data[z.off:])
	z.off += n
	return n, nil
}

// Close stops the decompression and waits for it to end.
func (z *Reader) Close() error {
	select {
	case <-z.quit:
	default:
		close(z.quit)
	}
	<-z.done
	return nil
}
