package fault

import (
	"io"
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

	mu    sync.Mutex
	conns map[net.Conn]net.Conn // client side → server side
	cuts  int
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
				pipes.Go(func() { _, _ = io.Copy(s, c); s.Close(); c.Close() })
				pipes.Go(func() { _, _ = io.Copy(c, s); s.Close(); c.Close() })
				pipes.Wait()
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
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
