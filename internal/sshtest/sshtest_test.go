package sshtest

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// echoServer echoes every connection back.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestProxyForwardsAndDrops(t *testing.T) {
	p := StartProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
	p.DropAfter(10)
	_, _ = c.Write([]byte(strings.Repeat("x", 20) + "\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(r); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection not cut after DropAfter")
		}
	}
	if p.Drops() != 1 || p.Conns() != 1 {
		t.Errorf("drops = %d, conns = %d; want 1, 1", p.Drops(), p.Conns())
	}
}

func TestInProcessAuth(t *testing.T) {
	s := StartInProcess(t)
	dial := func(keyFile string) error {
		signer := readSigner(t, keyFile)
		hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.SplitN(s.HostKeyLine, " ", 2)[1]))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{User: s.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(hk), Timeout: 5 * time.Second})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(s.KeyFile); err != nil {
		t.Errorf("authorized key refused: %v", err)
	}
	stranger, _ := ClientKey(t, t.TempDir(), "stranger")
	if err := dial(stranger); err == nil {
		t.Error("unknown key accepted")
	}
	if s.Conns() != 1 {
		t.Errorf("Conns = %d, want 1 (only the authorized one completes)", s.Conns())
	}
}

func readSigner(t *testing.T, p string) ssh.Signer {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
