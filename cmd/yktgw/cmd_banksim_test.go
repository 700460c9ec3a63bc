package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks"
	"yktgw/banks/format"
	_ "yktgw/banks/sftp"
	"yktgw/banks/sim"
	"yktgw/crypto"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBanksimExampleConfig runs `banksim` from config/example.yaml, with the
// keys --setup-keys writes, and delivers one file to it over the real sftp
// channel.
func TestBanksimExampleConfig(t *testing.T) {
	root := t.TempDir()
	cfgPath := filepath.Join(root, "config", "example.yaml")
	copyTestFile(t, "../../config/example.yaml", cfgPath)
	copyTestFile(t, "../../testdata/banks/demo/profile.yaml", filepath.Join(root, "testdata", "banks", "demo", "profile.yaml"))
	keyDir := filepath.Join(root, "config", "keys")
	var setupOut bytes.Buffer
	t.Setenv("YKT_KEY_PASSPHRASE", "")
	if err := runSetupKeys(keyDir, "DEMO", &setupOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(setupOut.String(), "host key fingerprint: SHA256:") {
		t.Fatalf("setup output: %q", setupOut.String())
	}
	for _, f := range []string{"data.key", "passphrase", "gateway.key.pem", "gateway.cert.pem", "bank-demo.key.pem",
		"bank-demo.cert.pem", "banksim_host_ed25519", "gateway_ssh", "gateway_ssh.pub", "banksim_host.known_hosts"} {
		if _, err := os.Stat(filepath.Join(keyDir, f)); err != nil {
			t.Fatalf("--setup-keys did not write %s: %v", f, err)
		}
	}
	t.Setenv("YKT_BANKSIM_LISTEN", "127.0.0.1:0")
	t.Setenv("YKT_BANKSIM_DELAY", "10ms")
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- runBanksim(ctx, cfg, quiet, &out) }()
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no listen line: %q", out.String())
		}
		if _, rest, ok := strings.Cut(out.String(), "listening on "); ok {
			addr, _, _ = strings.Cut(rest, " ")
		}
		time.Sleep(10 * time.Millisecond)
	}

	pass := []byte("")
	if b, err := os.ReadFile(filepath.Join(keyDir, "passphrase")); err == nil {
		pass = bytes.TrimRight(b, "\n")
	}
	gw, err := sim.LoadParty(filepath.Join(keyDir, "gateway.key.pem"), filepath.Join(keyDir, "gateway.cert.pem"), pass)
	if err != nil {
		t.Fatal(err)
	}
	bankCert, err := crypto.LoadCertificate(filepath.Join(keyDir, "bank-demo.cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := banks.LoadProfile(filepath.Join(root, "testdata", "banks", "demo", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var plain, sealed bytes.Buffer
	rec := format.Record{Seq: 1, Name: "张三", IDNumber: "11010519491231002X", Account: "6222020200112233445", AmountFen: 12345}
	if err := prof.Outbound.Render(&plain, format.Batch{BankBatchNo: "CLI1", FileSeq: 1, Date: time.Now(), Count: 1, TotalFen: 12345, Memo: "test"},
		func(yield func(format.Record, error) bool) { yield(rec, nil) }); err != nil {
		t.Fatal(err)
	}
	opt := crypto.SealOptions{Cipher: prof.Envelope.Cipher, SignerID: []byte(prof.SignerID)}
	if err := crypto.SignAndSeal(&sealed, &plain, gw, []*smx509.Certificate{bankCert}, opt); err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(filepath.Join(keyDir, "banksim_host.known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	ch, err := banks.New(banks.WithLogger(ctx, quiet), "sftp", banks.Options{"host": host, "port": port, "user": "ykt",
		"key_file": filepath.Join(keyDir, "gateway_ssh"), "host_key": string(known),
		"outbound_dir": "upload", "inbound_dir": "feedback", "min_age": "0s", "settle": "0s"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	data := sealed.Bytes()
	if _, err := ch.Send(ctx, &banks.Outbound{Bank: "DEMO", BankBatchNo: "CLI1", Name: "DEMO_PAY_CLI1.txt.p7", Size: int64(len(data)),
		SM3: sm3.Sum(data), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}); err != nil {
		t.Fatal(err)
	}
	simRoot := filepath.Join(root, "config", "var", "banksim")
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, err := sim.ReadStats(simRoot)
		if err == nil && st.Accepted == 1 && st.ReturnsWritten == 1 && st.Records == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats file: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refs, err := ch.ListFeedback(ctx); err != nil || len(refs) != 1 {
		t.Fatalf("feedback: %+v, %v", refs, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("banksim did not stop")
	}
	if !strings.Contains(out.String(), "banksim: stopped: accepted=1 duplicates=0 rejected=0 returns=1") {
		t.Fatalf("output: %q", out.String())
	}
}
