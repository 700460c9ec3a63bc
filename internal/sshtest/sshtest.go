// Package sshtest starts SSH/SFTP servers on loopback for tests and
// benchmarks: a real OpenSSH sshd with a throw-away configuration
// (StartOpenSSH) and an in-process x/crypto/ssh + pkg/sftp server with
// fault injection (StartInProcess). Both serve the real file system; tests
// use absolute paths under Server.Dir.
//
// It is a test helper only: it must not be imported by production code,
// and never touches the machine's own sshd or its configuration.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDPath is where the OpenSSH server is looked for.
const SSHDPath = "/usr/sbin/sshd"

// Server describes a running test server and the client credentials that
// log in to it.
type Server struct {
	Host string
	Port int
	Addr string // host:port
	User string
	// KeyFile is the client's private key (OpenSSH format, mode 0600).
	KeyFile string
	// HostKeyLine is a known_hosts line for the server's host key.
	HostKeyLine string
	// HostKeyFingerprint is the host key's "SHA256:..." fingerprint.
	HostKeyFingerprint string
	// Dir is a fresh temporary directory for the test's remote files.
	Dir string
}

// SkipOrFail skips the test with a message, or fails it when the
// environment says services are required (YKT_REQUIRE_SERVICES=1, as CI
// sets it).
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
		tb.Fatalf("%s (YKT_REQUIRE_SERVICES=1)", msg)
	}
	tb.Skip(msg)
}

// ClientKey creates an ed25519 key pair, writes the private key in OpenSSH
// format to dir/name (0600) and returns its path and public key.
func ClientKey(tb testing.TB, dir, name string) (string, ssh.PublicKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "yktgw-test")
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return p, spub
}

func describeHostKey(s *Server, pub ssh.PublicKey) {
	s.HostKeyLine = knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, pub)
	s.HostKeyFingerprint = ssh.FingerprintSHA256(pub)
}

// StartOpenSSH starts /usr/sbin/sshd -D on a free 127.0.0.1 port with a
// temporary sshd_config (fresh ed25519 host key from ssh-keygen, one
// authorized client key, internal-sftp, no PAM) as the current user, and
// stops it when the test ends. Without sshd or ssh-keygen it skips (or
// fails under YKT_REQUIRE_SERVICES=1).
func StartOpenSSH(tb testing.TB) *Server {
	tb.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		SkipOrFail(tb, "sshtest: %s not found (apt-get install openssh-server)", SSHDPath)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		SkipOrFail(tb, "sshtest: ssh-keygen not found (apt-get install openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	if u.Uid == "0" {
		// sshd running as root insists on its privilege separation dir.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("sshtest: %v", err)
		}
	}
	cfgDir := tb.TempDir()
	hostKey := filepath.Join(cfgDir, "host_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "yktgw-test-host", "-f", hostKey).CombinedOutput(); err != nil {
		tb.Fatalf("sshtest: ssh-keygen: %v: %s", err, out)
	}
	pubText, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		tb.Fatal(err)
	}
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		tb.Fatalf("sshtest: host key: %v", err)
	}
	keyFile, clientPub := ClientKey(tb, cfgDir, "client_ed25519")
	authKeys := filepath.Join(cfgDir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		tb.Fatal(err)
	}

	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(tb)
		cfg := filepath.Join(cfgDir, "sshd_config")
		conf := strings.Join([]string{
			"Port " + strconv.Itoa(port),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKey,
			"PidFile " + filepath.Join(cfgDir, "sshd.pid"),
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
			tb.Fatal(err)
		}
		var logs syncBuffer
		cmd := exec.Command(SSHDPath, "-D", "-e", "-f", cfg)
		cmd.Stdout = &logs
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			tb.Fatalf("sshtest: start sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitBanner(addr, exited, 10*time.Second); err != nil {
			stop()
			lastErr = fmt.Sprintf("%v; sshd said: %s", err, logs.String())
			continue
		}
		tb.Cleanup(func() {
			stop()
			if tb.Failed() && logs.Len() > 0 {
				tb.Logf("sshd log:\n%s", logs.String())
			}
		})
		s := &Server{Host: "127.0.0.1", Port: port, Addr: addr, User: u.Username, KeyFile: keyFile, Dir: tb.TempDir()}
		describeHostKey(s, hostPub)
		return s
	}
	tb.Fatalf("sshtest: sshd did not come up: %s", lastErr)
	return nil
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}
