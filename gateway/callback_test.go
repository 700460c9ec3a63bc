package gateway_test

// The push callback of the HTTPS channel: the bank simulator's HTTPS bank
// POSTs its signed return files to the gateway's /v1/banks/{code}/callback.
// A good push settles the batch; a replayed push (same nonce) is 409 and a
// push with a bad signature or a stale timestamp is 401, and neither applies
// anything.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"

	bankhttps "yktgw/banks/https"
	"yktgw/banks/sim"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/gateway"
	"yktgw/gateway/demo"
	"yktgw/internal/gen"
	"yktgw/spool"
)

func init() { crypto.PBKDF2Iterations = 2048 } // test keys only; the count is stored in each key file

type pushEnv struct {
	*faultEnv
	ks   *sim.KeySet
	api  string // http://host:port
	bank *sim.HTTPSBank
}

// newPushEnv starts the HTTPS bank in push mode and the whole gateway.
// With push false the bank never pushes (the test pushes by hand).
func newPushEnv(t *testing.T, push bool) *pushEnv { return newHTTPSEnv(t, feedPush(push), nil) }

type feedMode int

const (
	feedManual feedMode = iota // push mode, but the bank does not know where: the test pushes
	feedAuto                   // push mode, the bank pushes
	feedPoll                   // the gateway polls the bank
)

func feedPush(push bool) feedMode {
	if push {
		return feedAuto
	}
	return feedManual
}

// newHTTPSEnv starts the HTTPS bank and the whole gateway; mod may change
// the gateway's channel options.
func newHTTPSEnv(t *testing.T, mode feedMode, mod func(map[string]string)) *pushEnv {
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
	var target atomic.Value
	target.Store("")
	env := demo.SideEnv{Dir: dir, Keys: ks, Root: root, FailRate: 0.2, Seed: 5,
		Delay: 50 * time.Millisecond, Log: log.With("side", "bank"), Gateway: func() string { return target.Load().(string) }}
	wantFeed := bankhttps.FeedbackPush
	if mode == feedPoll {
		env.Gateway, wantFeed = nil, bankhttps.FeedbackPoll
	}
	side, err := demo.StartSide(context.Background(), "https", env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { side.Close() })
	opts := map[string]string{}
	for k, v := range side.Options() {
		opts[k] = v
	}
	if opts["feedback"] != wantFeed {
		t.Fatalf("side options %v: want feedback %s", opts, wantFeed)
	}
	if mod != nil {
		mod(opts)
	}
	cfgPath := filepath.Join(dir, "yktgw.yaml")
	if err := demo.WriteConfig(cfgPath, "127.0.0.1:0", ks, side.Profile(), opts, filepath.Join(root, "config/calendar/cn-2026.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dispatcher.BackoffInitial = 100 * time.Millisecond
	g, err := gateway.Open(context.Background(), cfg, log.With("side", "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() { done <- g.Serve(ctx, func(a string) { addrc <- a }) }()
	api := "http://" + <-addrc
	t.Cleanup(func() { cancel(); <-done; g.Close() })
	if mode == feedAuto {
		target.Store(api)
	}
	b, _ := demo.HTTPSBank(side)
	return &pushEnv{
		faultEnv: &faultEnv{t: t, g: g, sim: side, root: filepath.Join(dir, "bank"),
			who: &gateway.Principal{TokenID: "test", Tenants: []string{"*"}, Roles: []string{gateway.RoleSubmitter}}},
		ks: ks, api: api, bank: b,
	}
}

func TestCallbackPushSettles(t *testing.T) {
	e := newPushEnv(t, true)
	e.submit(gen.Spec{BatchID: "P-1", N: 700})
	e.waitState("P-1", spool.BatchSettled, 60*time.Second)
	e.reconciled("P-1")
	// The batch settles inside the push's request; the bank counts the push
	// once our answer reaches it, a moment later.
	hs := e.bank.HTTPSStats()
	for deadline := time.Now().Add(5 * time.Second); hs.Pushed == 0 && hs.PushAttempts == 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		hs = e.bank.HTTPSStats()
	}
	if hs.Pushed != 1 || hs.PushAttempts != 1 || len(hs.PushRejections) != 0 {
		t.Fatalf("https bank stats %+v: want one push, acknowledged at once", hs)
	}
}

// push is one hand-made callback request.
type push struct {
	url, nonce, ts string
	body           []byte
	key            *sm2.PrivateKey
	signedBody     []byte // what the signature covers (body when nil)
}

func (p push) do(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", p.url, bytes.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	sb := p.signedBody
	if sb == nil {
		sb = p.body
	}
	sig, err := bankhttps.Sign(p.key, nil, bankhttps.RequestString("POST", req.URL.RequestURI(), p.ts, p.nonce, sm3.Sum(sb)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(bankhttps.HeaderTimestamp, p.ts)
	req.Header.Set(bankhttps.HeaderNonce, p.nonce)
	req.Header.Set(bankhttps.HeaderSignature, sig)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	res.Request = req
	return res, b
}

func TestCallbackReplayAndBadSignature(t *testing.T) {
	e := newPushEnv(t, false)
	e.submit(gen.Spec{BatchID: "P-2", N: 500})
	// The bank answers into its feedback directory; it does not push (no
	// target), so the test pushes by hand.
	var name string
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for name == "" {
		ents, _ := os.ReadDir(filepath.Join(e.root, "feedback"))
		for _, en := range ents {
			if en.Type().IsRegular() && strings.HasPrefix(en.Name(), "DEMO_RET_") {
				name = en.Name()
				body, _ = os.ReadFile(filepath.Join(e.root, "feedback", name))
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no return file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.waitState("P-2", spool.BatchSent, 10*time.Second)
	url := e.api + "/v1/banks/DEMO/callback?name=" + name
	now := func() string { return bankhttps.Timestamp(time.Now()) }
	unapplied := func(step string) {
		t.Helper()
		c := e.counts("P-2")
		if c[spool.RecordPaid].Count != 0 || c[spool.RecordFailed].Count != 0 {
			t.Fatalf("%s: records applied: %+v", step, c)
		}
	}

	bad := []struct {
		name string
		p    push
		want int
	}{
		{"signed by another key", push{url: url, nonce: bankhttps.NewNonce(), ts: now(), body: body, key: e.ks.Gateway.Key}, 401},
		{"body changed after signing", push{url: url, nonce: bankhttps.NewNonce(), ts: now(), body: body, key: e.ks.Bank.Key, signedBody: append([]byte("x"), body...)}, 401},
		{"stale timestamp", push{url: url, nonce: bankhttps.NewNonce(), ts: bankhttps.Timestamp(time.Now().Add(-6 * time.Minute)), body: body, key: e.ks.Bank.Key}, 401},
		{"no nonce", push{url: url, nonce: "", ts: now(), body: body, key: e.ks.Bank.Key}, 401},
		{"unknown bank", push{url: e.api + "/v1/banks/NOPE/callback?name=" + name, nonce: bankhttps.NewNonce(), ts: now(), body: body, key: e.ks.Bank.Key}, 404},
		{"not a plain name", push{url: e.api + "/v1/banks/DEMO/callback?name=..%2Fx", nonce: bankhttps.NewNonce(), ts: now(), body: body, key: e.ks.Bank.Key}, 400},
	}
	for _, c := range bad {
		res, b := c.p.do(t)
		if res.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, b, c.want)
		}
		unapplied(c.name)
	}

	good := push{url: url, nonce: bankhttps.NewNonce(), ts: now(), body: body, key: e.ks.Bank.Key}
	res, b := good.do(t)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"applied"`) {
		t.Fatalf("good push: %d %s", res.StatusCode, b)
	}
	// The 200 is ours, signed with the gateway's key over the bank's request.
	if err := bankhttps.VerifyResponse(res, res.Request.URL.RequestURI(), good.nonce, b, e.ks.Gateway.Cert, nil, time.Now(), time.Minute); err != nil {
		t.Errorf("the callback's answer does not verify: %v", err)
	}
	e.waitState("P-2", spool.BatchSettled, 5*time.Second)
	e.reconciled("P-2")
	before := e.counts("P-2")

	// The very same request again: refused by its nonce, nothing applied.
	res, b = good.do(t)
	if res.StatusCode != 409 {
		t.Fatalf("replayed push: %d %s, want 409", res.StatusCode, b)
	}
	// The same return file under a fresh nonce (a bank's honest retry):
	// acknowledged as a duplicate, nothing applied again.
	again := good
	again.nonce, again.ts = bankhttps.NewNonce(), now()
	res, b = again.do(t)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"duplicate"`) {
		t.Fatalf("retried push: %d %s, want 200 duplicate", res.StatusCode, b)
	}
	after := e.counts("P-2")
	for _, st := range []spool.RecordState{spool.RecordPaid, spool.RecordFailed} {
		if before[st] != after[st] {
			t.Errorf("%s: %+v before the replays, %+v after", st, before[st], after[st])
		}
	}
	e.reconciled("P-2")
}

// TestHTTPSPollSettles: with feedback poll the gateway lists, fetches and
// acks the return file over the bank's query endpoints.
func TestHTTPSPollSettles(t *testing.T) {
	e := newHTTPSEnv(t, feedPoll, nil)
	e.submit(gen.Spec{BatchID: "Q-1", N: 600})
	e.waitState("Q-1", spool.BatchSettled, 60*time.Second)
	e.reconciled("Q-1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(e.root, "feedback", "archive"))
		if len(ents) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("return file not acknowledged (archive holds %d)", len(ents))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hs := e.bank.HTTPSStats(); hs.PushAttempts != 0 {
		t.Errorf("poll mode pushed: %+v", hs)
	}
}

// TestHTTPSBankHangsAfterAccept: the bank stores and accepts the batch and
// never answers. The send ends with an unknown outcome after the channel's
// timeout; the dispatcher asks the bank, which says it arrived; the batch
// settles and the bank was sent the batch once.
func TestHTTPSBankHangsAfterAccept(t *testing.T) {
	e := newHTTPSEnv(t, feedAuto, func(o map[string]string) { o["timeout"] = "500ms" })
	e.bank.SetHTTPSFaults(sim.HTTPSFaults{HangAfterAccept: 1, HangFor: time.Minute})
	e.submit(gen.Spec{BatchID: "H-1", N: 800})
	e.waitState("H-1", spool.BatchSettled, 60*time.Second)
	e.reconciled("H-1")
	hs := e.bank.HTTPSStats()
	if hs.Hung != 1 || hs.Repeats != 0 || hs.Conflicts != 0 {
		t.Fatalf("https bank stats %+v: want the one hang and no second send", hs)
	}
	if st := e.sim.Stats(); st.Accepted != 1 || st.Duplicates != 0 {
		t.Fatalf("bank stats %+v", st)
	}
	ds, _ := e.g.Store().Deliveries(context.Background(), spool.DeliveryFilter{BatchID: "H-1"})
	if len(ds) != 1 || ds[0].Attempts != 1 {
		t.Fatalf("deliveries %+v: want one, sent once", ds)
	}
}
