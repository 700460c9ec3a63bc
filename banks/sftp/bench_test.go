package sftp

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
	"yktgw/internal/sshtest"
)

const benchSize = 64 << 20

// spoolFile writes n random bytes to a file and returns an Outbound over it.
func spoolFile(b *testing.B, n int) (*banks.Outbound, string) {
	b.Helper()
	p := filepath.Join(b.TempDir(), "sealed.bin")
	data := make([]byte, n)
	_, _ = rand.Read(data)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	var sum [32]byte
	h := sm3.New()
	h.Write(data)
	h.Sum(sum[:0])
	return &banks.Outbound{Bank: "B", Size: int64(n), SM3: sum,
		Open: func() (io.ReadCloser, error) { return os.Open(p) }}, p
}

// benchSend uploads 64 MiB per op; cold dials a new connection per op
// (as the baseline's sftp process does), warm reuses one.
func benchSend(b *testing.B, s *sshtest.Server, cold bool) { benchSendPacket(b, s, cold, false) }

func benchSendPacket(b *testing.B, s *sshtest.Server, cold, defaultPacket bool) {
	bank := newDirBank(b, s.Dir)
	o := options(s, bank)
	ch := open(b, o)
	ch.defaultPacket = defaultPacket
	defer func() { ch.Close() }()
	out, _ := spoolFile(b, benchSize)
	if err := ch.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if cold {
			ch.Close()
			ch = open(b, o)
			ch.defaultPacket = defaultPacket
		}
		out.Name = fmt.Sprintf("bench%d.dat", i)
		if _, err := ch.Send(context.Background(), out); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = os.Remove(filepath.Join(bank.out, out.Name))
		b.StartTimer()
	}
}

// BenchmarkSendOpenSSH: our channel uploading 64 MiB to a real sshd on
// loopback (temp name, SM3 check while streaming, fsync, rename, stat).
func BenchmarkSendOpenSSH(b *testing.B) { benchSend(b, sshtest.StartOpenSSH(b), false) }

// BenchmarkSendOpenSSHDefaultPacket: as BenchmarkSendOpenSSH with SFTP's
// default 32 KiB requests instead of the server's stated limits.
func BenchmarkSendOpenSSHDefaultPacket(b *testing.B) {
	benchSendPacket(b, sshtest.StartOpenSSH(b), false, true)
}

// BenchmarkSendOpenSSHCold: as above with a new SSH connection per file.
func BenchmarkSendOpenSSHCold(b *testing.B) { benchSend(b, sshtest.StartOpenSSH(b), true) }

// BenchmarkSendInProcess: the same against the in-process pkg/sftp server.
func BenchmarkSendInProcess(b *testing.B) { benchSend(b, sshtest.StartInProcess(b).Server, false) }

// BenchmarkOpenSSHPutBaseline: OpenSSH's own sftp client "put" of the same
// 64 MiB file to the same kind of sshd: the baseline for the ratio.
func BenchmarkOpenSSHPutBaseline(b *testing.B) {
	client, err := exec.LookPath("sftp")
	if err != nil {
		sshtest.SkipOrFail(b, "sftp client not found (apt-get install openssh-client)")
	}
	s := sshtest.StartOpenSSH(b)
	bank := newDirBank(b, s.Dir)
	_, src := spoolFile(b, benchSize)
	known := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(s.HostKeyLine+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	batch := filepath.Join(b.TempDir(), "batch")
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dst := filepath.Join(bank.out, fmt.Sprintf("base%d.dat", i))
		_ = os.WriteFile(batch, []byte("put "+src+" "+dst+"\n"), 0o600)
		b.StartTimer()
		out, err := exec.Command(client, "-q", "-b", batch, "-i", s.KeyFile, "-P", strconv.Itoa(s.Port),
			"-o", "UserKnownHostsFile="+known, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			s.User+"@"+s.Host).CombinedOutput()
		if err != nil {
			b.Fatalf("sftp put: %v: %s", err, out)
		}
		b.StopTimer()
		_ = os.Remove(dst)
		b.StartTimer()
	}
}
