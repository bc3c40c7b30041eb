package tests

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy is a TCP proxy on 127.0.0.1 in front of an upstream address,
// such as a test registry. It cuts the first connection that carries more
// than cutAfter bytes upstream, right after those bytes, with a reset to
// the client: what a client sees when the registry goes away in the middle
// of an upload. Every other connection, before and after, passes through
// whole.
type cutProxy struct {
	// addr is where clients connect, 127.0.0.1:PORT.
	addr     string
	upstream string
	cutAfter int64
	ln       net.Listener
	wg       sync.WaitGroup

	mu sync.Mutex
	// cut says whether a connection was cut; afterCut counts the
	// connections accepted after it.
	cut      bool
	afterCut int
	open     map[net.Conn]bool
	closed   bool
}

// startCutProxy listens on a port of the kernel's choosing and stops when
// the test ends.
func startCutProxy(t testing.TB, upstream string, cutAfter int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), upstream: upstream, cutAfter: cutAfter, ln: ln, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// stats says whether a connection was cut, and how many connections came
// after the cut.
func (p *cutProxy) stats() (cut bool, afterCut int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut, p.afterCut
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c.(*net.TCPConn))
		}()
	}
}

// track records an open connection so close can end it; it is false once
// the proxy is closing.
func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = true
	return true
}

func (p *cutProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

func (p *cutProxy) handle(client *net.TCPConn) {
	p.mu.Lock()
	if p.cut {
		p.afterCut++
	}
	p.mu.Unlock()
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	c, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	up := c.(*net.TCPConn)
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	down := make(chan struct{})
	go func() {
		defer close(down)
		io.Copy(client, up)
		client.CloseWrite()
	}()
	if p.copyUp(up, client) {
		// A reset, not a clean end: the client's write or read fails as
		// it does when the far side dies.
		client.SetLinger(0)
		client.Close()
		up.Close()
	} else {
		up.CloseWrite()
	}
	<-down
}

// copyUp copies from client to up. It returns true when it cut this
// connection: the first to carry more than cutAfter bytes, after them.
func (p *cutProxy) copyUp(up, client net.Conn) bool {
	var sent int64
	buf := make([]byte, 64<<10)
	for {
		n, rerr := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			cut := false
			if sent+int64(n) > p.cutAfter {
				p.mu.Lock()
				if !p.cut {
					p.cut, cut = true, true
				}
				p.mu.Unlock()
			}
			if cut {
				chunk = chunk[:p.cutAfter-sent]
			}
			if _, err := up.Write(chunk); err != nil {
				return cut
			}
			sent += int64(len(chunk))
			if cut {
				return true
			}
		}
		if rerr != nil {
			return false
		}
	}
}

// close stops accepting, ends every open connection and waits for the
// proxy's goroutines.
func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
