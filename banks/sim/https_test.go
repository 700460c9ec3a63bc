package sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"yktgw/banks"
	bankhttps "yktgw/banks/https"
)

// startHTTPS runs the HTTPS bank over the DEMO profile on root (fresh when
// "") and connects the real https channel to it (poll mode).
func startHTTPS(t *testing.T, root string, mod func(*HTTPSConfig)) (*env, *HTTPSBank) {
	t.Helper()
	ks := testKeys(t)
	if root == "" {
		root = t.TempDir()
	}
	tl, err := SetupHTTPSTLS(filepath.Join(root, "..", filepath.Base(root)+"-tls"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ks: ks, prof: demo(t), root: root}
	cfg := HTTPSConfig{Config: Config{Listen: "127.0.0.1:0", Root: root, Profile: e.prof, Bank: ks.Bank, Gateway: ks.Gateway.Cert,
		FailRate: 0.3, Seed: 7, Delay: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, TLS: tl}
	if mod != nil {
		mod(&cfg)
	}
	b, err := NewHTTPS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := b.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ch, err := banks.New(banks.WithLogger(context.Background(), cfg.Log), "https", banks.Options{
		"base_url": "https://" + addr, "ca_file": tl.CAFile, "cert_file": tl.ClientCertFile, "key_file": tl.ClientKeyFile,
		"sign_key_file": ks.GatewayKeyFile, "passphrase_file": ks.PassphraseFile, "bank_cert_file": ks.BankCertFile,
		"feedback_pattern": e.prof.FeedbackPattern, "timeout": "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	e.ch, e.sim, e.addr = ch, b.Sim, addr
	return e, b
}

// TestHTTPSAcceptReturnAndRestart: a batch POSTed over HTTPS is processed
// like an uploaded file (accepted once, sealed return listed and fetched);
// a restarted bank on the same root still knows the batch number: the same
// bytes again are answered from its index, other bytes are a conflict.
func TestHTTPSAcceptReturnAndRestart(t *testing.T) {
	e, b := startHTTPS(t, "", nil)
	data, recs := e.batch("DEMO0001", 5, e.ks.Gateway)
	if err := e.send("DEMO0001", "DEMO_PAY_DEMO0001.txt.p7", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "return file", 10*time.Second, func() bool { return len(e.feedback()) == 1 })
	ref := e.feedback()[0]
	res, sum, err := e.open(e.fetch(ref))
	if err != nil || len(res) != len(recs) || sum.BankBatchNo != "DEMO0001" {
		t.Fatalf("return: %d results, %+v, %v", len(res), sum, err)
	}
	if err := e.ch.AckFeedback(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.root, b.ArchiveDir(), ref.ID)); err != nil {
		t.Fatalf("acknowledged return not archived: %v", err)
	}
	if st := b.Stats(); st.Accepted != 1 || st.Records != 5 {
		t.Fatalf("stats %+v", st)
	}
	b.Close()

	e2, b2 := startHTTPS(t, e.root, nil)
	if err := e2.send("DEMO0001", "DEMO_PAY_DEMO0001.txt.p7", data); err != nil {
		t.Fatalf("same batch to the restarted bank: %v", err)
	}
	other, _ := e.batch("DEMO0001", 6, e.ks.Gateway)
	if err := e2.send("DEMO0001", "DEMO_PAY_DEMO0001.txt.p7", other); !errors.Is(err, banks.ErrConflict) {
		t.Fatalf("other bytes under the same batch number: %v, want ErrConflict", err)
	}
	time.Sleep(100 * time.Millisecond)
	if st, hs := b2.Stats(), b2.HTTPSStats(); st.Accepted != 1 || st.Duplicates != 0 || hs.Repeats != 1 || hs.Conflicts != 1 {
		t.Fatalf("after restart: stats %+v, https %+v", st, hs)
	}
}

// TestHTTPSPushRetriesUntilAcknowledged: in push mode the bank POSTs its
// signed return file to the callback until it answers 200 with the
// gateway's signature; refusals and unsigned 200s are retried with a new
// nonce; the file is archived only after the good answer.
func TestHTTPSPushRetriesUntilAcknowledged(t *testing.T) {
	ks := testKeys(t)
	var mu sync.Mutex
	var calls int
	nonces := map[string]bool{}
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sr, err := bankhttps.VerifyRequest(r, body, ks.Bank.Cert, nil, time.Now(), time.Minute)
		mu.Lock()
		calls++
		n := calls
		if err == nil {
			if nonces[sr.Nonce] {
				t.Errorf("push %d reused a nonce", n)
			}
			nonces[sr.Nonce] = true
		}
		mu.Unlock()
		switch {
		case err != nil:
			t.Errorf("push %d: bad signature: %v", n, err)
			w.WriteHeader(401)
		case r.URL.Query().Get("name") == "":
			t.Errorf("push %d without a name", n)
			w.WriteHeader(400)
		case n == 1:
			w.WriteHeader(503)
		case n == 2:
			w.WriteHeader(200) // unsigned: not an acknowledgement
		default:
			bankhttps.WriteSigned(w, r, ks.Gateway.Key, nil, time.Now(), 200, []byte(`{"status":"applied"}`))
		}
	}))
	defer cb.Close()
	e, b := startHTTPS(t, "", func(c *HTTPSConfig) { c.Callback = func() string { return cb.URL + "/v1/banks/DEMO/callback" } })
	data, _ := e.batch("DEMO0002", 3, e.ks.Gateway)
	if err := e.send("DEMO0002", "DEMO_PAY_DEMO0002.txt.p7", data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acknowledged push", 20*time.Second, func() bool { return b.HTTPSStats().Pushed == 1 })
	hs := b.HTTPSStats()
	if hs.PushAttempts != 3 || hs.PushRejections[503] != 1 || hs.PushRejections[200] != 1 {
		t.Fatalf("https stats %+v: want 3 attempts (503, unsigned 200, signed 200)", hs)
	}
	ents, _ := os.ReadDir(filepath.Join(e.root, b.ArchiveDir()))
	if len(ents) != 1 {
		t.Fatalf("archive holds %d files, want the pushed one", len(ents))
	}
}
