package https_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/banks/banktest"
	bankhttps "yktgw/banks/https"
	"yktgw/banks/sim"
	"yktgw/crypto"
)

func init() { crypto.PBKDF2Iterations = 2048 } // test keys only

type env struct {
	bank *sim.HTTPSBank
	ks   *sim.KeySet
	tls  *sim.HTTPSTLS
	root string
	addr string
}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBank starts the simulator's HTTPS bank on loopback with a fresh key
// set. Batches land in "drop", which the simulator does not process (the
// suite sends random bytes).
func startBank(t testing.TB, mod func(*sim.HTTPSConfig)) *env {
	t.Helper()
	dir := t.TempDir()
	ks, err := sim.SetupKeys(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := sim.SetupHTTPSTLS(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	prof, err := banks.LoadProfile("../../testdata/banks/demo/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "bank")
	cfg := sim.HTTPSConfig{
		Config: sim.Config{Listen: "127.0.0.1:0", Root: root, Profile: prof, Bank: ks.Bank, Gateway: ks.Gateway.Cert,
			FailRate: 0.2, Seed: 1, Delay: 20 * time.Millisecond, Log: quiet()},
		TLS: tl, DeliveryDir: "drop",
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := sim.NewHTTPS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := b.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &env{bank: b, ks: ks, tls: tl, root: root, addr: addr}
}

func (e *env) options() banks.Options {
	return banks.Options{
		"base_url": "https://" + e.addr, "ca_file": e.tls.CAFile, "cert_file": e.tls.ClientCertFile, "key_file": e.tls.ClientKeyFile,
		"sign_key_file": e.ks.GatewayKeyFile, "passphrase_file": e.ks.PassphraseFile, "bank_cert_file": e.ks.BankCertFile,
		"timeout": "10s",
	}
}

func (e *env) channel(t testing.TB, mod func(banks.Options)) banks.Channel {
	t.Helper()
	o := e.options()
	if mod != nil {
		mod(o)
	}
	ch, err := banks.New(banks.WithLogger(context.Background(), quiet()), "https", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

// side is the HTTPS bank's tree as banktest sees it.
type side struct{ e *env }

func (s side) dir(d string) string { return filepath.Join(s.e.root, d) }

func (s side) Received(t *testing.T) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(s.dir(s.e.bank.DeliveryDir()))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, en := range ents {
		if en.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(s.dir(s.e.bank.DeliveryDir()), en.Name()))
			if err != nil {
				t.Fatal(err)
			}
			m[en.Name()] = b
		}
	}
	return m
}

func (s side) Replace(t *testing.T, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(s.dir(s.e.bank.DeliveryDir()), name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s side) PutFeedback(t *testing.T, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(s.dir("feedback"), name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s side) Backdate(t *testing.T, name string, age time.Duration) {
	at := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(s.dir("feedback"), name), at, at); err != nil {
		t.Fatal(err)
	}
}

func (s side) Archived(t *testing.T) []string {
	ents, err := os.ReadDir(s.dir(s.e.bank.ArchiveDir()))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

// TestConformance: the channel conformance suite against the simulator's
// HTTPS bank over real mutual TLS on loopback.
func TestConformance(t *testing.T) {
	e := startBank(t, nil)
	const minAge = 10 * time.Second
	banktest.Run(t, banktest.Opts{
		New: func(t *testing.T) banks.Channel {
			return e.channel(t, func(o banks.Options) { o["min_age"] = minAge.String(); o["feedback_pattern"] = "FB_*.txt" })
		},
		Bank:                side{e},
		MinAge:              minAge,
		BigSize:             5 << 20,
		IgnoredFeedbackName: "OTHER_1.txt",
	})
	if st := e.bank.Stats(); st.Accepted+st.Rejected+st.Duplicates != 0 {
		t.Fatalf("batches outside the outbound dir were processed: %+v", st)
	}
	// The one request the bank may refuse is the suite's "bad source" send:
	// its bytes do not match the SM3 the signature covers.
	if hs := e.bank.HTTPSStats(); hs.Refused["signature"] > 1 || hs.Refused["replay"] != 0 {
		t.Errorf("the bank refused requests of the channel: %+v", hs.Refused)
	}
}

// TestHangAfterAccept: the bank stores the batch and never answers. The
// channel's Send ends in ErrOutcomeUnknown after its timeout; the probe then
// says it arrived, and nothing was stored twice.
func TestHangAfterAccept(t *testing.T) {
	e := startBank(t, nil)
	ch := e.channel(t, func(o banks.Options) { o["timeout"] = "400ms" })
	e.bank.SetHTTPSFaults(sim.HTTPSFaults{HangAfterAccept: 1, HangFor: 30 * time.Second})
	o := banktest.NewOutbound("DEMO", "HANG_1.dat", banktest.RandomBytes(t, 50_000))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := ch.Send(ctx, o)
	if !errors.Is(err, banks.ErrOutcomeUnknown) {
		t.Fatalf("Send to a bank that accepted and hangs: err = %v, want ErrOutcomeUnknown", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Send took %s with a 400ms timeout", el)
	}
	res, err := ch.(banks.Prober).Probe(ctx, o)
	if err != nil || res != banks.ProbeArrived {
		t.Fatalf("Probe after the hang = %v, %v; want arrived", res, err)
	}
	// What the gateway does next for an arrived delivery is to mark it sent;
	// were it to send again, the bank answers from its index, stores nothing.
	if _, err := ch.Send(ctx, o); err != nil {
		t.Fatalf("repeat Send: %v", err)
	}
	hs := e.bank.HTTPSStats()
	if hs.Hung != 1 || hs.Repeats != 1 {
		t.Errorf("stats = %+v, want one hang and one repeat answered from the index", hs)
	}
	if got := (side{e}).Received(t); len(got) != 1 {
		t.Errorf("bank holds %d files, want 1", len(got))
	}
}

// TestUnavailable: a 503 is retryable and not an unknown outcome; nothing
// was stored, the probe says so.
func TestUnavailable(t *testing.T) {
	e := startBank(t, nil)
	ch := e.channel(t, nil)
	e.bank.SetHTTPSFaults(sim.HTTPSFaults{Unavailable: 1})
	o := banktest.NewOutbound("DEMO", "BUSY_1.dat", banktest.RandomBytes(t, 1000))
	ctx := context.Background()
	_, err := ch.Send(ctx, o)
	if err == nil || !banks.IsRetryable(err) || errors.Is(err, banks.ErrOutcomeUnknown) {
		t.Fatalf("Send to a busy bank: %v; want retryable, known outcome", err)
	}
	if res, err := ch.(banks.Prober).Probe(ctx, o); err != nil || res != banks.ProbeNotArrived {
		t.Fatalf("Probe = %v, %v; want not_arrived", res, err)
	}
	if _, err := ch.Send(ctx, o); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// TestPins: a bank whose TLS certificate does not chain to the pinned CA is
// ErrHostKey; a client certificate the bank does not trust is ErrAuth; an
// answer not signed by the pinned bank SM2 certificate is refused.
func TestPins(t *testing.T) {
	e := startBank(t, nil)
	other := startBank(t, nil) // another CA, other SM2 keys
	ctx := context.Background()
	cases := []struct {
		name string
		mod  func(banks.Options)
		want error
		text string
	}{
		{"server CA not pinned", func(o banks.Options) { o["ca_file"] = other.tls.CAFile }, banks.ErrHostKey, ""},
		{"server name mismatch", func(o banks.Options) { o["server_name"] = "bank.example" }, banks.ErrHostKey, ""},
		{"client cert of another CA", func(o banks.Options) {
			o["cert_file"], o["key_file"] = other.tls.ClientCertFile, other.tls.ClientKeyFile
		}, banks.ErrAuth, ""},
		{"our SM2 key unknown to the bank", func(o banks.Options) {
			o["sign_key_file"], o["passphrase_file"] = other.ks.GatewayKeyFile, other.ks.PassphraseFile
		}, banks.ErrAuth, ""},
		{"bank SM2 certificate not the pinned one", func(o banks.Options) { o["bank_cert_file"] = other.ks.BankCertFile }, nil, "not trusted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := e.channel(t, c.mod)
			err := ch.(banks.Pinger).Ping(ctx)
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("Ping: %v, want %v", err, c.want)
			}
			if c.text != "" && !strings.Contains(err.Error(), c.text) {
				t.Errorf("Ping: %v, want %q", err, c.text)
			}
			if banks.IsRetryable(err) {
				t.Errorf("Ping: %v is retryable, want permanent", err)
			}
		})
	}
	if err := e.channel(t, nil).(banks.Pinger).Ping(ctx); err != nil {
		t.Fatalf("Ping with the right pins: %v", err)
	}
}

// TestOptions: every problem is reported at once; plain http is refused.
func TestOptions(t *testing.T) {
	_, err := banks.New(context.Background(), "https", banks.Options{
		"base_url": "http://bank.example", "ca_file": "rel/ca.pem", "cert_file": "/x/c.pem", "key_file": "/x/k.pem",
		"sign_key_file": "/x/s.pem", "bank_cert_file": "/x/b.pem", "feedback": "carrier-pigeon", "min_age": "soon",
	})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"base_url", "ca_file", "feedback", "min_age"} {
		if !strings.Contains(err.Error(), "option "+want) {
			t.Errorf("error lacks option %s:\n%v", want, err)
		}
	}
	_, err = banks.New(context.Background(), "https", banks.Options{})
	if err == nil || !strings.Contains(err.Error(), `missing required option "base_url"`) || !strings.Contains(err.Error(), `missing required option "bank_cert_file"`) {
		t.Errorf("empty options: %v", err)
	}
}

// TestPushListsNothing: in push mode the bank pushes; ListFeedback lists
// nothing even with return files waiting at the bank.
func TestPushListsNothing(t *testing.T) {
	e := startBank(t, nil)
	ch := e.channel(t, func(o banks.Options) { o["feedback"] = bankhttps.FeedbackPush })
	(side{e}).PutFeedback(t, "FB_1.txt", []byte("x"))
	refs, err := ch.ListFeedback(context.Background())
	if err != nil || len(refs) != 0 {
		t.Fatalf("ListFeedback in push mode = %v, %v; want nothing", refs, err)
	}
	if ch.(*bankhttps.Channel).FeedbackMode() != bankhttps.FeedbackPush {
		t.Error("FeedbackMode")
	}
}
