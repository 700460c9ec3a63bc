package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// InProcess is an SSH server with the pkg/sftp server behind its "sftp"
// subsystem, running in the test process on 127.0.0.1, with faults on
// demand.
type InProcess struct {
	*Server
	ln        net.Listener
	dropLimit atomic.Int64 // >0: armed
	dropSeen  atomic.Int64
	conns     atomic.Int64
	drops     atomic.Int64

	mu    sync.Mutex
	live  map[*ssh.ServerConn]bool
	wg    sync.WaitGroup
	close sync.Once
}

// StartInProcess starts the server with a fresh ed25519 host key and one
// authorized client key, and stops it when the test ends.
func StartInProcess(tb testing.TB) *InProcess {
	tb.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		tb.Fatal(err)
	}
	cfgDir := tb.TempDir()
	keyFile, clientPub := ClientKey(tb, cfgDir, "client_ed25519")
	want := clientPub.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == "bank" && string(key.Marshal()) == string(want) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sshtest: key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s := &InProcess{
		Server: &Server{Host: "127.0.0.1", Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			User: "bank", KeyFile: keyFile, Dir: tb.TempDir()},
		ln:   ln,
		live: map[*ssh.ServerConn]bool{},
	}
	describeHostKey(s.Server, hostSigner.PublicKey())
	s.wg.Add(1)
	go s.accept(cfg)
	tb.Cleanup(s.Close)
	return s
}

// DropAfter arms a one-shot fault: once the server has received n more
// bytes of SFTP traffic (on any connection), it closes that connection
// abruptly, as a network failure mid-upload would.
func (s *InProcess) DropAfter(n int64) {
	s.dropSeen.Store(0)
	s.dropLimit.Store(n)
}

// DropAll closes every open connection now.
func (s *InProcess) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.live {
		_ = c.Close()
		s.drops.Add(1)
	}
}

// Conns is the number of SSH connections accepted so far.
func (s *InProcess) Conns() int64 { return s.conns.Load() }

// Drops is the number of connections closed by a fault so far.
func (s *InProcess) Drops() int64 { return s.drops.Load() }

// Close stops accepting, closes every connection and waits for them.
func (s *InProcess) Close() {
	s.close.Do(func() {
		_ = s.ln.Close()
		s.mu.Lock()
		for c := range s.live {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *InProcess) accept(cfg *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc, cfg)
		}()
	}
}

func (s *InProcess) serveConn(nc net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		_ = nc.Close()
		return
	}
	s.conns.Add(1)
	s.mu.Lock()
	s.live[sc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.live, sc)
		s.mu.Unlock()
		_ = sc.Close()
	}()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if !ok {
					continue
				}
				go ssh.DiscardRequests(creqs)
				srv, err := sftp.NewServer(&faultyRW{ReadWriteCloser: ch, s: s, sc: sc}, sftp.WithServerWorkingDirectory(s.Dir))
				if err != nil {
					return
				}
				_ = srv.Serve()
				_ = srv.Close()
				return
			}
		}()
	}
	wg.Wait()
}

// faultyRW counts the bytes the SFTP server reads and closes the SSH
// connection when an armed DropAfter limit is crossed.
type faultyRW struct {
	io.ReadWriteCloser
	s  *InProcess
	sc *ssh.ServerConn
}

func (f *faultyRW) Read(p []byte) (int, error) {
	n, err := f.ReadWriteCloser.Read(p)
	if limit := f.s.dropLimit.Load(); limit > 0 && f.s.dropSeen.Add(int64(n)) >= limit {
		if f.s.dropLimit.CompareAndSwap(limit, 0) {
			f.s.drops.Add(1)
			_ = f.sc.Close()
			return 0, io.ErrUnexpectedEOF
		}
	}
	return n, err
}
