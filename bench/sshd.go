package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshdPath is the OpenSSH server the bench starts (apt-get install openssh-server).
const sshdPath = "/usr/sbin/sshd"

// sshd is a throw-away OpenSSH server on a loopback port, adapted from
// internal/sshtest.StartOpenSSH (which is test-only: it takes testing.TB).
type sshd struct {
	Port       int
	User       string
	KnownHosts string // a known_hosts file pinning the host key ("[127.0.0.1]:port ssh-ed25519 ...")
	cmd        *exec.Cmd
	exited     chan struct{}
	logs       *syncBuffer
}

// startSSHD starts sshd -D as the current user on a free 127.0.0.1 port
// with a fresh ed25519 host key, authorizing exactly the given client key,
// internal-sftp and no PAM.
func startSSHD(dir string, client ssh.PublicKey) (*sshd, error) {
	if _, err := os.Stat(sshdPath); err != nil {
		return nil, fmt.Errorf("bench: %s not found (apt-get install openssh-server)", sshdPath)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return nil, fmt.Errorf("bench: ssh-keygen not found (apt-get install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if u.Uid == "0" {
		// sshd running as root insists on its privilege separation dir.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if _, err := os.Stat(hostKey); err != nil {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "yktgw-bench-host", "-f", hostKey).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: ssh-keygen: %v: %s", err, out)
		}
	}
	pubText, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		return nil, fmt.Errorf("bench: host key: %w", err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(client), 0o600); err != nil {
		return nil, err
	}
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg := filepath.Join(dir, "sshd_config")
		conf := strings.Join([]string{
			"Port " + strconv.Itoa(port),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKey,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + authKeys,
			"UsePAM no",
			"StrictModes no",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PermitRootLogin prohibit-password",
			"AllowUsers " + u.Username,
			"Subsystem sftp internal-sftp",
			"MaxStartups 64",
			"MaxSessions 64",
			"LogLevel ERROR",
			"",
		}, "\n")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		s := &sshd{Port: port, User: u.Username, exited: make(chan struct{}), logs: &syncBuffer{}}
		s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", cfg)
		s.cmd.Stdout = s.logs
		s.cmd.Stderr = s.logs
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench: start sshd: %w", err)
		}
		go func() { _ = s.cmd.Wait(); close(s.exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitBanner(addr, s.exited, 10*time.Second); err != nil {
			s.Stop()
			lastErr = fmt.Sprintf("%v; sshd said: %s", err, s.logs.String())
			continue
		}
		s.KnownHosts = filepath.Join(dir, "known_hosts")
		line := fmt.Sprintf("[127.0.0.1]:%d %s", port, bytes.TrimSpace(ssh.MarshalAuthorizedKey(hostPub)))
		if err := os.WriteFile(s.KnownHosts, []byte(line+"\n"), 0o644); err != nil {
			s.Stop()
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("bench: sshd did not come up: %s", lastErr)
}

// Stop kills the sshd (its sessions end with it).
func (s *sshd) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitBanner waits until addr answers with an SSH banner.
func waitBanner(addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no SSH banner on %s within %s", addr, limit)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
