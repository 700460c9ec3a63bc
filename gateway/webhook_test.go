package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "yktgw/banks/all"
	"yktgw/banks/sim"
	"yktgw/config"
	"yktgw/gateway"
	"yktgw/gateway/demo"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// The signature is HMAC-SM3 over "<timestamp>.<body>"; the expected value was
// computed independently with OpenSSL 3:
//
//	echo -n '1700000000.{"a":1}' | openssl dgst -sm3 -hmac 0123456789abcdef0123
func TestWebhookSignatureKnownAnswer(t *testing.T) {
	got := gateway.WebhookSignature([]byte("0123456789abcdef0123"), 1700000000, []byte(`{"a":1}`))
	want := "hmac-sm3=2f0bf5629e7477993bb026c6b5f89f0ccdaf9c15c1cc681771049bcb2115b297"
	if got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestWebhookReceiverVerifies(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_id":"ev_1","type":"batch.settled"}`)
	sign := func(ts int64, b []byte, key []byte, id string) http.Header {
		h := http.Header{}
		h.Set(gateway.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
		h.Set(gateway.HeaderWebhookSignature, gateway.WebhookSignature(key, ts, b))
		h.Set(gateway.HeaderWebhookEventID, id)
		return h
	}
	cases := []struct {
		name   string
		h      http.Header
		body   []byte
		status int
	}{
		{"good", sign(now.Unix(), body, secret, "ev_1"), body, 200},
		{"wrong key", sign(now.Unix(), body, []byte("another-secret-of-20b"), "ev_1"), body, 401},
		{"body changed", sign(now.Unix(), body, secret, "ev_1"), []byte(`{"event_id":"ev_1","type":"batch.settled" }`), 401},
		{"stale", sign(now.Add(-6*time.Minute).Unix(), body, secret, "ev_1"), body, 401},
		{"future", sign(now.Add(6*time.Minute).Unix(), body, secret, "ev_1"), body, 401},
		{"id header swapped", sign(now.Unix(), body, secret, "ev_2"), body, 401},
		{"no timestamp", http.Header{gateway.HeaderWebhookSignature: {"hmac-sm3=00"}}, body, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			handled := 0
			rcv := &gateway.WebhookReceiver{Secret: secret, Now: func() time.Time { return now },
				Handle: func(_ context.Context, id, _ string, _ []byte) error { handled++; return nil }}
			req := httptest.NewRequest("POST", "/hook", bytes.NewReader(tc.body))
			req.Header = tc.h
			rec := httptest.NewRecorder()
			rcv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.status == 200]; handled != want {
				t.Fatalf("handled %d times, want %d", handled, want)
			}
		})
	}
	t.Run("replay handled once", func(t *testing.T) {
		handled := 0
		rcv := &gateway.WebhookReceiver{Secret: secret, Now: func() time.Time { return now },
			Handle: func(_ context.Context, id, _ string, _ []byte) error { handled++; return nil }}
		for i, want := range []string{"accepted", "duplicate", "duplicate"} {
			req := httptest.NewRequest("POST", "/hook", bytes.NewReader(body))
			req.Header = sign(now.Unix()+int64(i), body, secret, "ev_1")
			rec := httptest.NewRecorder()
			rcv.ServeHTTP(rec, req)
			var got map[string]string
			json.Unmarshal(rec.Body.Bytes(), &got)
			if rec.Code != 200 || got["status"] != want {
				t.Fatalf("delivery %d: %d %v, want 200 %s", i, rec.Code, got, want)
			}
		}
		if handled != 1 {
			t.Fatalf("handled %d times, want once", handled)
		}
	})
}

// platform is a test receiver: the reference receiver behind a switch that
// takes it down (503 for everything) and a record of what it handled.
type platform struct {
	rcv      *gateway.WebhookReceiver
	down     atomic.Bool
	refused  atomic.Int64
	mu       sync.Mutex
	events   map[string]gateway.WebhookEvent
	handled  int
	srv      *httptest.Server
	verified atomic.Int64
}

func newPlatform(t *testing.T, secret []byte) *platform {
	p := &platform{events: map[string]gateway.WebhookEvent{}}
	p.rcv = &gateway.WebhookReceiver{Secret: secret, Handle: func(_ context.Context, id, typ string, body []byte) error {
		var ev gateway.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			return err
		}
		if ev.Type != typ {
			t.Errorf("event %s: type header %q, body %q", id, typ, ev.Type)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, dup := p.events[id]; dup {
			t.Errorf("event %s handled twice", id)
		}
		p.events[id] = ev
		p.handled++
		return nil
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			p.refused.Add(1)
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		p.rcv.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) snapshot() map[string]gateway.WebhookEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]gateway.WebhookEvent{}
	for k, v := range p.events {
		out[k] = v
	}
	return out
}

type hookEnv struct {
	t    *testing.T
	cfg  *config.Config
	log  *slog.Logger
	g    *gateway.Gateway
	stop func()
	side demo.Side
}

func newHookEnv(t *testing.T, hooks func(dir string) []config.Webhook) *hookEnv {
	t.Helper()
	dir := t.TempDir()
	ks, err := sim.SetupKeys(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, nil))
	root, _ := filepath.Abs("..")
	side, err := demo.StartSide(context.Background(), "sftp", demo.SideEnv{Dir: dir, Keys: ks, Root: root, FailRate: 0.1, Seed: 5,
		Delay: 50 * time.Millisecond, Log: log.With("side", "bank")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { side.Close() })
	cfgPath := filepath.Join(dir, "yktgw.yaml")
	if err := demo.WriteConfig(cfgPath, "127.0.0.1:0", ks, side.Profile(), side.Options(), filepath.Join(root, "config/calendar/cn-2026.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dispatcher.BackoffInitial = 100 * time.Millisecond
	cfg.Dispatcher.PollInterval = 100 * time.Millisecond
	cfg.Feedback.PollInterval = 200 * time.Millisecond
	cfg.Webhooks = hooks(dir)
	cfg.WebhookOutbox = config.WebhookOutbox{PollInterval: 50 * time.Millisecond, BackoffInitial: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond, AlarmAfter: 3}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := &hookEnv{t: t, cfg: cfg, log: log, side: side}
	e.start()
	t.Cleanup(func() { e.stop() })
	return e
}

// start opens the gateway on the config's spool and serves it.
func (e *hookEnv) start() {
	e.t.Helper()
	g, err := gateway.Open(context.Background(), e.cfg, e.log.With("side", "gateway"))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- g.Serve(ctx, func(string) { close(ready) }) }()
	<-ready
	e.g = g
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done; g.Close() }) }
}

func (e *hookEnv) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeSecret(t *testing.T, dir, name string, secret []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func outboxItems(t *testing.T, st spool.Store, states ...spool.OutboxState) []spool.OutboxItem {
	t.Helper()
	items, err := gateway.WebhookOutbox(context.Background(), st, states, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// Must show: webhook delivery survives a receiver that is down for a while
// and a daemon restart, with each event delivered and verified, none lost.
func TestWebhookSurvivesReceiverDownAndRestart(t *testing.T) {
	secret := []byte("platform-secret-0123456789")
	plat := newPlatform(t, secret)
	plat.down.Store(true)
	other := newPlatform(t, []byte("beijing-secret-0123456789"))
	e := newHookEnv(t, func(dir string) []config.Webhook {
		return []config.Webhook{
			{Tenant: "210000", URL: plat.srv.URL + "/yktgw", SecretFile: writeSecret(t, dir, "liaoning.secret", secret), Timeout: 2 * time.Second},
			{Tenant: "110000", URL: other.srv.URL + "/yktgw", SecretFile: writeSecret(t, dir, "beijing.secret", []byte("beijing-secret-0123456789"))},
		}
	})
	const n = 2500 // three result pages and the settled event
	var buf bytes.Buffer
	gen.WriteNDJSON(&buf, gen.Spec{BatchID: "WH-1", N: n})
	res, err := e.g.Submit(context.Background(), &gateway.Principal{TokenID: "test", Tenants: []string{"*"}, Roles: []string{gateway.RoleSubmitter}}, &buf, true)
	if err != nil || res.Status != 201 {
		t.Fatalf("submit: %d %+v %v", res.Status, res.Errors, err)
	}
	e.waitFor("batch settled", 60*time.Second, func() bool {
		b, err := e.g.Store().Batch(context.Background(), "WH-1")
		return err == nil && b.State == spool.BatchSettled
	})

	// The receiver is down: every item keeps failing, becomes FAILING and is
	// visible to ops as an alarm and in the outbox listing.
	e.waitFor("webhook_failing alarms", 30*time.Second, func() bool {
		return len(outboxItems(t, e.g.Store(), spool.OutboxFailing)) == 4
	})
	alarms, _ := e.g.Store().Alarms(context.Background(), true, 100)
	failing := 0
	for _, a := range alarms {
		if a.Kind == "webhook_failing" && a.BatchID == "WH-1" {
			failing++
		}
	}
	if failing != 4 {
		t.Fatalf("%d webhook_failing alarms, want 4: %+v", failing, alarms)
	}
	if len(outboxItems(t, e.g.Store())) != 4 {
		t.Fatalf("items routed to the Beijing webhook: %+v", outboxItems(t, e.g.Store()))
	}

	// Restart the daemon while the receiver is still down.
	e.stop()
	refusedBefore := plat.refused.Load()
	e.start()
	e.waitFor("retries after the restart", 20*time.Second, func() bool { return plat.refused.Load() > refusedBefore+2 })
	plat.down.Store(false)

	e.waitFor("every event delivered", 30*time.Second, func() bool {
		return len(outboxItems(t, e.g.Store(), spool.OutboxDelivered)) == 4
	})
	got := plat.snapshot()
	if len(got) != 4 {
		t.Fatalf("platform handled %d events, want 4", len(got))
	}
	seen := make([]bool, n+1)
	var settled *gateway.WebhookEvent
	var paidFen, failedFen int64
	for id, ev := range got {
		if ev.EventID != id || ev.BatchID != "WH-1" || ev.Tenant != "210102" {
			t.Fatalf("event %s: %+v", id, ev)
		}
		switch ev.Type {
		case spool.EventBatchSettled:
			ev := ev
			settled = &ev
		case spool.EventBatchResults:
			if ev.Pages != 3 || ev.Page < 1 || ev.Page > 3 {
				t.Fatalf("event %s page %d/%d", id, ev.Page, ev.Pages)
			}
			for _, r := range ev.Results {
				if seen[r.Seq] {
					t.Fatalf("seq %d in two pages", r.Seq)
				}
				seen[r.Seq] = true
				switch r.Status {
				case "PAID":
					paidFen += r.AmountFen
				case "FAILED":
					failedFen += r.AmountFen
					if r.Reason == "" || r.ReasonClass == "" {
						t.Fatalf("failed seq %d without a reason: %+v", r.Seq, r)
					}
				default:
					t.Fatalf("seq %d status %s in a settled batch", r.Seq, r.Status)
				}
			}
		default:
			t.Fatalf("event type %q", ev.Type)
		}
	}
	for seq := 1; seq <= n; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d never reported", seq)
		}
	}
	if settled == nil || settled.Pages != 3 || settled.TotalCount != n {
		t.Fatalf("settled event %+v", settled)
	}
	counts, _ := e.g.Store().RecordCounts(context.Background(), "WH-1")
	for _, c := range counts {
		want := map[spool.RecordState]int64{spool.RecordPaid: paidFen, spool.RecordFailed: failedFen}[c.State]
		if c.Fen != want {
			t.Fatalf("%s: spool %d fen, webhooks %d fen", c.State, c.Fen, want)
		}
		found := false
		for _, tot := range settled.Totals {
			found = found || (tot.Status == string(c.State) && tot.Fen == c.Fen && tot.Count == c.Count)
		}
		if !found {
			t.Fatalf("settled totals %+v lack %+v", settled.Totals, c)
		}
	}
	if failedFen == 0 || paidFen == 0 {
		t.Fatalf("paid %d failed %d fen: want both", paidFen, failedFen)
	}
	// The alarms are resolved once delivered; nothing went to Beijing.
	alarms, _ = e.g.Store().Alarms(context.Background(), true, 100)
	for _, a := range alarms {
		if a.Kind == "webhook_failing" {
			t.Fatalf("alarm still open: %+v", a)
		}
	}
	if len(other.snapshot()) != 0 || other.refused.Load() != 0 {
		t.Fatal("the Beijing webhook received Liaoning's events")
	}
}
