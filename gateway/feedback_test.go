package gateway_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/banks/sim"
	"yktgw/gateway"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// TestFeedbackManyFilesOneRefused: five return files, each written twice
// (same bytes, two names), the first one malformed. Files are prepared up
// to two ahead of the one being applied; still the malformed file and its copy
// raise one alarm and change nothing, every other file applies once, and
// only applied files (and their copies) are archived.
func TestFeedbackManyFilesOneRefused(t *testing.T) {
	e := newFaultEnv(t, 0.1, 0, sim.Faults{DuplicateReturn: true, MalformedReturn: 1}, func(g *gateway.Gateway) {
		g.Profile("DEMO").MaxRecordsPerFile = 200
	})
	e.submit(gen.Spec{BatchID: "F-MANY", N: 1000})
	e.waitState("F-MANY", spool.BatchSent, 60*time.Second)
	ctx := context.Background()
	ds, err := e.g.Store().Deliveries(ctx, spool.DeliveryFilter{BatchID: "F-MANY"})
	if err != nil || len(ds) != 5 {
		t.Fatalf("deliveries %d %v", len(ds), err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := e.counts("F-MANY")
		if c[spool.RecordPaid].Count+c[spool.RecordFailed].Count == 800 && c[spool.RecordSent].Count == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let a few more polls see what is left at the bank.
	time.Sleep(1500 * time.Millisecond)
	al, _ := e.g.Store().Alarms(ctx, true, 10)
	if len(al) != 1 || al[0].Kind != "feedback_anomaly" {
		t.Fatalf("alarms %+v", al)
	}
	if b, _ := e.g.Store().Batch(ctx, "F-MANY"); b.State != spool.BatchSent {
		t.Fatalf("batch %s with a refused file", b.State)
	}
	// The refused delivery's records are all still SENT.
	var refused *spool.Delivery
	for i := range ds {
		n := 0
		e.g.Store().RecordRange(ctx, "F-MANY", ds[i].FirstSeq, ds[i].LastSeq, func(r *spool.Record) error {
			if r.State == spool.RecordSent {
				n++
			}
			return nil
		})
		switch n {
		case ds[i].Count:
			if refused != nil {
				t.Fatalf("two deliveries untouched")
			}
			refused = &ds[i]
		case 0:
		default:
			t.Fatalf("delivery %s half applied: %d of %d SENT", ds[i].BankBatchNo, n, ds[i].Count)
		}
	}
	if refused == nil {
		t.Fatal("no delivery left SENT")
	}
	// Left at the bank: the malformed file and its copy, nothing else.
	entries, _ := os.ReadDir(filepath.Join(e.root, "feedback"))
	var left []string
	for _, en := range entries {
		if !en.IsDir() {
			left = append(left, en.Name())
		}
	}
	if len(left) != 2 || !strings.Contains(left[0], refused.BankBatchNo) || !strings.Contains(left[1], refused.BankBatchNo) {
		t.Fatalf("left at the bank: %v (refused %s)", left, refused.BankBatchNo)
	}
	if st := e.sim.Stats(); st.DuplicateReturns != 5 || st.MalformedReturns != 1 {
		t.Fatalf("bank stats %+v", st)
	}
}
