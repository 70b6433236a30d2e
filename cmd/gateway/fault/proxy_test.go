package fault

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// chaosProxy is a TCP proxy to Postgres that cuts connections at random:
// queries and commits fail half way, as on a flaky network or when a
// database fails over.
type chaosProxy struct {
	addr string

	mu     sync.Mutex
	conns  map[net.Conn]net.Conn // client side → server side
	cuts   int
	frozen chan struct{} // non-nil while frozen: closed on thaw
}

// freeze stops forwarding bytes without closing anything, as when the
// database host vanishes from the network: queries get no answer.
func (p *chaosProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

// thaw forwards again, including what arrived meanwhile.
func (p *chaosProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

// pump copies src to dst, holding data back while the proxy is frozen.
func (p *chaosProxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if frozen != nil {
				<-frozen
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// newChaosProxy proxies to upstream (host:port) until the test ends.
func newChaosProxy(t *testing.T, upstream string) *chaosProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{addr: ln.Addr().String(), conns: map[net.Conn]net.Conn{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c] = s
			p.mu.Unlock()
			wg.Go(func() {
				var pipes sync.WaitGroup
				pipes.Go(func() { p.pump(s, c) })
				pipes.Go(func() { p.pump(c, s) })
				pipes.Wait()
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		p.thaw()
		ln.Close()
		p.mu.Lock()
		for c, s := range p.conns {
			c.Close()
			s.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

// cutOne closes one connection chosen at random, if any.
func (p *chaosProxy) cutOne() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return
	}
	i := rand.N(len(p.conns))
	for c, s := range p.conns {
		if i == 0 {
			c.Close()
			s.Close()
			p.cuts++
			return
		}
		i--
	}
}

// chaos cuts a random connection every interval until stop is closed.
func (p *chaosProxy) chaos(interval time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
			p.cutOne()
		}
	}
}

func (p *chaosProxy) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}
