package sshtest

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a server (e.g. a real
// sshd), able to cut connections the way a failing network does. Point a
// client at Proxy.Addr/Port instead of the server's.
type Proxy struct {
	Addr string
	Port int

	target    string
	ln        net.Listener
	dropLimit atomic.Int64 // >0: armed
	dropSeen  atomic.Int64
	drops     atomic.Int64
	conns     atomic.Int64

	mu    sync.Mutex
	live  map[net.Conn]net.Conn // client side -> server side
	wg    sync.WaitGroup
	close sync.Once
}

// StartProxy listens on a free loopback port and forwards every
// connection to target. It stops when the test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	p := &Proxy{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, target: target, ln: ln,
		live: map[net.Conn]net.Conn{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// DropAfter arms a one-shot fault: once n more bytes have gone from
// clients to the server, that connection is cut (both sides closed).
func (p *Proxy) DropAfter(n int64) {
	p.dropSeen.Store(0)
	p.dropLimit.Store(n)
}

// DropAll cuts every open connection now.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, s := range p.live {
		_ = c.Close()
		_ = s.Close()
		p.drops.Add(1)
	}
}

// Drops is the number of connections cut by a fault so far.
func (p *Proxy) Drops() int64 { return p.drops.Load() }

// Conns is the number of connections accepted so far.
func (p *Proxy) Conns() int64 { return p.conns.Load() }

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() {
	p.close.Do(func() {
		_ = p.ln.Close()
		p.mu.Lock()
		for c, s := range p.live {
			_ = c.Close()
			_ = s.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.conns.Add(1)
		p.mu.Lock()
		p.live[c] = s
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(s, c, true)
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(c, s, false)
		}()
	}
}

// pipe copies src to dst; upstream (client to server) traffic counts
// towards an armed DropAfter.
func (p *Proxy) pipe(dst, src net.Conn, upstream bool) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.mu.Lock()
		delete(p.live, src)
		delete(p.live, dst)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if upstream {
				if limit := p.dropLimit.Load(); limit > 0 && p.dropSeen.Add(int64(n)) >= limit &&
					p.dropLimit.CompareAndSwap(limit, 0) {
					p.drops.Add(1)
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a cut: either way this pipe is done
			return
		}
	}
}
