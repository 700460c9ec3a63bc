package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// scriptChannel is a bank channel whose Send and Probe answers are scripted.
type scriptChannel struct {
	mu     sync.Mutex
	sends  int
	probes int
	send   func(n int) error // answer of the n-th Send (1-based)
	probe  banks.ProbeResult
}

func (c *scriptChannel) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sends++
	if err := c.send(c.sends); err != nil {
		return banks.Receipt{}, err
	}
	return banks.Receipt{Ref: o.Name, Size: o.Size, At: time.Now()}, nil
}
func (c *scriptChannel) ListFeedback(context.Context) ([]banks.FeedbackRef, error) { return nil, nil }
func (c *scriptChannel) OpenFeedback(context.Context, banks.FeedbackRef) (io.ReadCloser, error) {
	return nil, banks.ErrNotFound
}
func (c *scriptChannel) AckFeedback(context.Context, banks.FeedbackRef) error { return nil }
func (c *scriptChannel) Close() error                                         { return nil }

type scriptProber struct{ *scriptChannel }

func (p scriptProber) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes++
	return p.probe, nil
}

// dispatchEnv is a gateway with a scripted channel for the DEMO bank.
func dispatchEnv(t testing.TB, ch banks.Channel) (*env, *dispatcher) {
	t.Helper()
	e := newEnv(t)
	e.t = t
	dir := t.TempDir()
	for _, p := range []string{"gateway", "bank"} {
		if err := crypto.GenerateParty(dir, p, []byte("pass"), 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	key, err := crypto.LoadPrivateKey(filepath.Join(dir, "gateway.key.pem"), []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := crypto.LoadCertificate(filepath.Join(dir, "gateway.cert.pem"))
	bcert, _ := crypto.LoadCertificate(filepath.Join(dir, "bank.cert.pem"))
	e.g.party = crypto.Party{Key: key, Cert: cert}
	e.g.now = time.Now // backoff needs a moving clock
	e.g.cfg.Spool.Dir = filepath.Join(dir, "spool")
	e.g.cfg.Dispatcher.MaxAttempts = 3
	e.g.cfg.Dispatcher.BackoffInitial = time.Millisecond
	e.g.cfg.Dispatcher.BackoffMax = 2 * time.Millisecond
	e.g.banks = map[string]*Bank{"DEMO": {Profile: e.g.profiles["DEMO"], Cert: bcert, Channel: ch, sem: make(chan struct{}, 2)}}
	return e, newDispatcher(e.g)
}

func (e *env) delivery(t *testing.T, batch string) spool.Delivery {
	t.Helper()
	ds, err := e.store.Deliveries(context.Background(), spool.DeliveryFilter{BatchID: batch})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	return ds[0]
}

func (e *env) queue(t *testing.T, id string) {
	t.Helper()
	if r := e.post("county", gen.Full(gen.Spec{BatchID: id, N: 20})); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func tickUntil(t *testing.T, d *dispatcher, e *env, batch string, want spool.DeliveryState) spool.Delivery {
	t.Helper()
	for i := 0; i < 50; i++ {
		d.tickWait(context.Background())
		if dl := e.delivery(t, batch); dl.State == want {
			return dl
		}
		time.Sleep(5 * time.Millisecond)
	}
	dl := e.delivery(t, batch)
	t.Fatalf("delivery %s is %s, want %s (%s)", dl.BankBatchNo, dl.State, want, dl.LastError)
	return dl
}

func TestDispatchPermanentErrorIsDead(t *testing.T) {
	ch := &scriptChannel{send: func(int) error { return errors.New("bank refused the file") }}
	e, d := dispatchEnv(t, scriptProber{ch})
	e.queue(t, "D-PERM")
	dl := tickUntil(t, d, e, "D-PERM", spool.DeliveryDead)
	al, _ := e.store.Alarms(context.Background(), true, 10)
	b, _ := e.store.Batch(context.Background(), "D-PERM")
	if ch.sends != 1 || dl.Attempts != 1 || len(al) != 1 || al[0].Kind != "dead_delivery" || b.State != spool.BatchDead {
		t.Fatalf("sends %d attempts %d alarms %+v batch %s", ch.sends, dl.Attempts, al, b.State)
	}
}

func TestDispatchRetriesThenDead(t *testing.T) {
	ch := &scriptChannel{send: func(int) error { return banks.Transient(errors.New("connection reset")) }}
	e, d := dispatchEnv(t, scriptProber{ch})
	e.queue(t, "D-RETRY")
	dl := tickUntil(t, d, e, "D-RETRY", spool.DeliveryDead)
	if ch.sends != 3 || dl.Attempts != 3 {
		t.Fatalf("sends %d attempts %d, want 3 (max_attempts)", ch.sends, dl.Attempts)
	}
	// A transient error that clears: sent on the second attempt.
	ch2 := &scriptChannel{send: func(n int) error {
		if n == 1 {
			return banks.Transient(errors.New("timeout"))
		}
		return nil
	}}
	e2, d2 := dispatchEnv(t, scriptProber{ch2})
	e2.queue(t, "D-OK")
	dl = tickUntil(t, d2, e2, "D-OK", spool.DeliverySent)
	if ch2.sends != 2 || dl.Attempts != 2 {
		t.Fatalf("sends %d attempts %d", ch2.sends, dl.Attempts)
	}
}

// Money rule 5: after an unknown outcome the bank is asked before anything is re-sent.
func TestDispatchUnknownOutcomeAsksFirst(t *testing.T) {
	unknownOnce := func(n int) error {
		if n == 1 {
			return errors.Join(banks.ErrOutcomeUnknown, banks.Transient(errors.New("connection lost during rename")))
		}
		return nil
	}
	for _, c := range []struct {
		probe     banks.ProbeResult
		wantState spool.DeliveryState
		wantSends int
	}{
		{banks.ProbeArrived, spool.DeliverySent, 1},    // it was there: never sent again
		{banks.ProbeNotArrived, spool.DeliverySent, 2}, // provably missing: sent again
		{banks.ProbeMismatch, spool.DeliveryDead, 1},   // something else there: ops
	} {
		ch := &scriptChannel{send: unknownOnce, probe: c.probe}
		e, d := dispatchEnv(t, scriptProber{ch})
		e.queue(t, "D-UNK")
		d.tickWait(context.Background()) // plan, seal, send -> unknown
		if dl := e.delivery(t, "D-UNK"); dl.State != spool.DeliverySending || ch.sends != 1 {
			t.Fatalf("%v: after the unknown outcome: %s, %d sends", c.probe, dl.State, ch.sends)
		}
		dl := tickUntil(t, d, e, "D-UNK", c.wantState)
		if ch.sends != c.wantSends || ch.probes < 1 {
			t.Fatalf("%v: sends %d probes %d, want %d sends", c.probe, ch.sends, ch.probes, c.wantSends)
		}
		if dl.BankBatchNo != "DEMO0000000001" {
			t.Fatalf("bank batch number changed: %s", dl.BankBatchNo)
		}
	}
	// A channel that cannot be asked: DEAD with an alarm, never a blind re-send.
	ch := &scriptChannel{send: unknownOnce}
	e, d := dispatchEnv(t, ch)
	e.queue(t, "D-NOPROBE")
	tickUntil(t, d, e, "D-NOPROBE", spool.DeliveryDead)
	if ch.sends != 1 {
		t.Fatalf("re-sent blindly: %d sends", ch.sends)
	}
}

func TestSendWindowsAndCalendar(t *testing.T) {
	e := newEnv(t)
	cal, err := config.LoadCalendar(filepath.Join(repoRoot(), "config/calendar/cn-2026.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.g.calendar = cal
	p := *e.g.profiles["DEMO"]
	prof, err := banksProfileWith(&p, []string{"* 9-16 * * *"}, true)
	if err != nil {
		t.Fatal(err)
	}
	sh := time.FixedZone("CST", 8*3600)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 27, 10, 0, 0, 0, sh), true},  // Friday, in the window
		{time.Date(2026, 11, 27, 18, 0, 0, 0, sh), false}, // Friday evening: outside the window
		{time.Date(2026, 11, 28, 10, 0, 0, 0, sh), false}, // Saturday
		{time.Date(2026, 10, 1, 10, 0, 0, 0, sh), false},  // 国庆, a Thursday
		{time.Date(2026, 10, 10, 10, 0, 0, 0, sh), true},  // Saturday made a working day (调休)
		{time.Date(2027, 3, 1, 10, 0, 0, 0, sh), true},    // a Monday of a year without data: weekdays
		{time.Date(2027, 3, 6, 10, 0, 0, 0, sh), false},   // a Saturday of that year
	} {
		if got := e.g.maySend(prof, c.at); got != c.want {
			t.Errorf("%s: maySend = %v, want %v", c.at, got, c.want)
		}
	}
}

// banksProfileWith loads the DEMO profile with other send windows and the
// business-day rule.
func banksProfileWith(_ *banks.Profile, windows []string, businessDays bool) (*banks.Profile, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "testdata/banks/demo/profile.yaml"))
	if err != nil {
		return nil, err
	}
	s := string(raw)
	ws := "send_windows: ["
	for i, w := range windows {
		if i > 0 {
			ws += ", "
		}
		ws += strconv.Quote(w)
	}
	s = strings.Replace(s, "send_windows: []", ws+"]", 1)
	s = strings.Replace(s, "business_days_only: false", "business_days_only: "+strconv.FormatBool(businessDays), 1)
	path := filepath.Join(os.TempDir(), fmt.Sprintf("yktgw-profile-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(path)
	return banks.LoadProfile(path)
}

// TestIntakeKicksDispatcher: a batch intake queues is planned and sent at
// once, not at the dispatcher's next tick (an hour here).
func TestIntakeKicksDispatcher(t *testing.T) {
	ch := &scriptChannel{send: func(int) error { return nil }}
	e, _ := dispatchEnv(t, scriptProber{ch})
	e.g.cfg.Dispatcher.PollInterval = time.Hour
	e.g.cfg.Feedback.PollInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	wg := e.g.startWorkers(ctx)
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(50 * time.Millisecond) // the first tick has run
	e.queue(t, "D-KICK")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds, err := e.store.Deliveries(context.Background(), spool.DeliveryFilter{BatchID: "D-KICK"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].State == spool.DeliverySent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v: not sent 5 s after intake with an hour's poll interval", ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
