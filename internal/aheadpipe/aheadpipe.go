// Package aheadpipe is an io.Pipe with room for a few chunks.
package aheadpipe

import (
	"io"
	"sync"
)

// Pipe is an io.Pipe with room for a few chunks: the writer goes on
// while the reader is busy with what came before, so that the two overlap
// on two cores (reading a layer's files and the store's writing of them;
// decompressing a layer and unpacking it).
type Pipe struct {
	chunks chan []byte
	free   chan []byte
	// done is closed when the reader stops; err says why.
	done     chan struct{}
	stopOnce sync.Once
	err      error
	// werr is what the writer closed with; the reader sees it once the
	// chunks before it are read.
	werr error
	// buf is the chunk the reader is part-way through, and cur what of it
	// is still to read.
	buf, cur []byte
}

const chunkSize = 1 << 20

// New makes a pipe that holds up to chunks chunks of 1 MiB.
func New(chunks int) *Pipe {
	return &Pipe{chunks: make(chan []byte, chunks), free: make(chan []byte, chunks+1), done: make(chan struct{})}
}

func (p *Pipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.done:
			return n, p.err
		default:
			buf = make([]byte, 0, chunkSize)
		}
		k := min(len(b), chunkSize)
		buf = append(buf[:0], b[:k]...)
		select {
		case p.chunks <- buf:
		case <-p.done:
			return n, p.err
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

// CloseWrite ends the stream: the reader sees err after what was written,
// or io.EOF for nil.
func (p *Pipe) CloseWrite(err error) {
	p.werr = err
	close(p.chunks)
}

func (p *Pipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			select {
			case p.free <- p.buf:
			default:
			}
			p.buf = nil
		}
		buf, ok := <-p.chunks
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, io.EOF
		}
		p.buf, p.cur = buf, buf
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// CloseRead stops the pipe from the reader's side: writes fail with err.
func (p *Pipe) CloseRead(err error) {
	p.stopOnce.Do(func() {
		p.err = err
		close(p.done)
	})
}
