package gateway_test

// Faults of the bank side, injected by the simulator, against the whole
// gateway in this process (real SFTP, real SQLite, real crypto). Each must
// end in the right state with nothing lost and nothing applied twice.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

type faultEnv struct {
	t    *testing.T
	root string
	g    *gateway.Gateway
	sim  demo.Side
	who  *gateway.Principal
}

// newFaultEnv starts a simulated bank and the whole gateway; prepare runs
// before the gateway's workers start.
func newFaultEnv(t *testing.T, failRate float64, deadline time.Duration, faults sim.Faults, prepare ...func(*gateway.Gateway)) *faultEnv {
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
	side, err := demo.StartSide(context.Background(), "sftp", demo.SideEnv{Dir: dir, Keys: ks, Root: root, FailRate: failRate, Seed: 11,
		Delay: 100 * time.Millisecond, Log: log.With("side", "bank")})
	if err != nil {
		t.Fatal(err)
	}
	side.SetFaults(faults)
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
	g, err := gateway.Open(context.Background(), cfg, log.With("side", "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	if deadline > 0 {
		g.Profile("DEMO").FeedbackDeadline = deadline
	}
	for _, p := range prepare {
		p(g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- g.Serve(ctx, func(string) { close(ready) }) }()
	<-ready
	t.Cleanup(func() { cancel(); <-done; g.Close() })
	return &faultEnv{t: t, g: g, sim: side, root: filepath.Join(dir, "bank"), who: &gateway.Principal{TokenID: "test", Tenants: []string{"*"}, Roles: []string{gateway.RoleSubmitter}}}
}

func (e *faultEnv) submit(spec gen.Spec) {
	e.t.Helper()
	var buf bytes.Buffer
	gen.WriteNDJSON(&buf, spec)
	res, err := e.g.Submit(context.Background(), e.who, &buf, true)
	if err != nil || res.Status != 201 {
		e.t.Fatalf("submit: %d %+v %v", res.Status, res.Errors, err)
	}
}

func (e *faultEnv) waitState(id string, want spool.BatchState, timeout time.Duration) *spool.Batch {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := e.g.Store().Batch(context.Background(), id)
		if err == nil && b.State == want {
			return b
		}
		if time.Now().After(deadline) {
			state := spool.BatchState("?")
			if b != nil {
				state = b.State
			}
			e.t.Fatalf("batch %s is %s, want %s", id, state, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *faultEnv) counts(id string) map[spool.RecordState]spool.StateCount {
	cs, err := e.g.Store().RecordCounts(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[spool.RecordState]spool.StateCount{}
	for _, c := range cs {
		out[c.State] = c
	}
	return out
}

// reconciled: every record final, sums equal the bank's returns, each file accepted once.
func (e *faultEnv) reconciled(id string) {
	e.t.Helper()
	c := e.counts(id)
	st := e.sim.Stats()
	if c[spool.RecordPaid].Fen != st.PaidFen || c[spool.RecordFailed].Fen != st.FailedFen || c[spool.RecordPaid].Count != st.PaidRecords {
		e.t.Fatalf("spool %+v vs bank paid %d/%d failed %d/%d", c, st.PaidRecords, st.PaidFen, st.FailedRecords, st.FailedFen)
	}
	if st.Duplicates != 0 {
		e.t.Fatalf("bank saw duplicates: %+v", st.DuplicatesByBatchNo)
	}
	for no, n := range st.AcceptedByBatchNo {
		if n != 1 {
			e.t.Fatalf("bank accepted %s %d times", no, n)
		}
	}
}

func TestFaultDroppedConnectionMidUpload(t *testing.T) {
	e := newFaultEnv(t, 0.1, 0, sim.Faults{DropMidUpload: 2})
	e.submit(gen.Spec{BatchID: "F-DROP", N: 3000})
	e.waitState("F-DROP", spool.BatchSettled, 60*time.Second)
	e.reconciled("F-DROP")
	if st := e.sim.Stats(); st.DroppedUploads != 2 || st.Accepted != 1 {
		t.Fatalf("bank stats %+v", st)
	}
	ds, _ := e.g.Store().Deliveries(context.Background(), spool.DeliveryFilter{BatchID: "F-DROP"})
	if len(ds) != 1 || ds[0].Attempts < 3 {
		t.Fatalf("deliveries %+v: want one, sent on the third attempt or later", ds)
	}
}

func TestFaultDuplicateReturnFileAppliedOnce(t *testing.T) {
	e := newFaultEnv(t, 0.2, 0, sim.Faults{DuplicateReturn: true})
	e.submit(gen.Spec{BatchID: "F-DUP", N: 1000})
	e.waitState("F-DUP", spool.BatchSettled, 60*time.Second)
	// Both copies get looked at and archived; the second changes nothing.
	deadline := time.Now().Add(20 * time.Second)
	for {
		al, _ := e.g.Store().Alarms(context.Background(), true, 10)
		if len(al) != 0 {
			t.Fatalf("alarms for a duplicate: %+v", al)
		}
		entries, _ := os.ReadDir(filepath.Join(e.root, "feedback"))
		files := 0
		for _, en := range entries {
			if !en.IsDir() {
				files++
			}
		}
		if files == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d return files never archived", files)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.reconciled("F-DUP")
	if st := e.sim.Stats(); st.DuplicateReturns != 1 {
		t.Fatalf("bank stats %+v", st)
	}
}

func TestFaultMalformedReturnFileRefusedWhole(t *testing.T) {
	e := newFaultEnv(t, 0.1, 0, sim.Faults{MalformedReturn: 1})
	e.submit(gen.Spec{BatchID: "F-BAD", N: 1000})
	e.waitState("F-BAD", spool.BatchSent, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		al, _ := e.g.Store().Alarms(context.Background(), true, 10)
		if len(al) > 0 {
			if al[0].Kind != "feedback_anomaly" || al[0].BatchID != "" && al[0].BatchID != "F-BAD" {
				t.Fatalf("alarm %+v", al[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alarm for a malformed return file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	c := e.counts("F-BAD")
	if c[spool.RecordSent].Count != 1000 || c[spool.RecordPaid].Count != 0 || c[spool.RecordFailed].Count != 0 {
		t.Fatalf("a malformed file changed records: %+v", c)
	}
	if b, _ := e.g.Store().Batch(context.Background(), "F-BAD"); b.State != spool.BatchSent {
		t.Fatalf("batch %s", b.State)
	}
	// The file stays at the bank for ops, and is not re-alarmed on every poll.
	time.Sleep(time.Second)
	if al, _ := e.g.Store().Alarms(context.Background(), true, 10); len(al) != 1 {
		t.Fatalf("%d alarms", len(al))
	}
}

func TestFaultLateReturnFileResolvesUnknown(t *testing.T) {
	e := newFaultEnv(t, 0.1, 500*time.Millisecond, sim.Faults{LateReturn: 2 * time.Second})
	e.submit(gen.Spec{BatchID: "F-LATE", N: 800})
	deadline := time.Now().Add(30 * time.Second)
	for e.counts("F-LATE")[spool.RecordUnknown].Count != 800 {
		if time.Now().After(deadline) {
			t.Fatalf("records never became UNKNOWN: %+v", e.counts("F-LATE"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	al, _ := e.g.Store().Alarms(context.Background(), true, 10)
	if len(al) != 1 || al[0].Kind != "feedback_overdue" {
		t.Fatalf("alarms %+v", al)
	}
	e.waitState("F-LATE", spool.BatchSettled, 60*time.Second)
	e.reconciled("F-LATE")
}
