package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"yktgw/spool"
)

// storedStates counts the states as the rows hold them (not as shown).
func storedStates(t *testing.T, s *Store, first, last int) map[string]int {
	t.Helper()
	return countStates(t, s, "r.state", first, last)
}

// A record is SENT because its delivery is (migration 0013): sending a file
// does not rewrite its records, every reader shows them SENT, and only a
// SENT delivery's records take the bank's word.
func TestSentFromDelivery(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds := plannedBatch(t, s, 400, 100)
	advanceDelivery(t, s, ds[0], spool.DeliverySent)
	advanceDelivery(t, s, ds[1], spool.DeliverySending)
	advanceDelivery(t, s, ds[2], spool.DeliverySealed)
	advanceDelivery(t, s, ds[3], spool.DeliverySent)

	// The rows are as intake wrote them.
	if got := storedStates(t, s, 1, 400); got["PENDING"] != 400 {
		t.Fatalf("stored states %v: sending rewrote records", got)
	}
	// Shown: SENT for deliveries 1 and 4, PENDING for 2 and 3.
	all, err := s.Records(ctx, "B1", spool.RecordFilter{Limit: 1000})
	if err != nil || len(all) != 400 {
		t.Fatal(len(all), err)
	}
	var fen [2]int64 // PENDING, SENT
	for _, r := range all {
		want := spool.RecordPending
		if r.Seq <= 100 || r.Seq > 300 {
			want = spool.RecordSent
			fen[1] += r.AmountFen
		} else {
			fen[0] += r.AmountFen
		}
		if r.State != want {
			t.Fatalf("record %d shown %s, want %s", r.Seq, r.State, want)
		}
	}
	for st, want := range map[spool.RecordState]int{spool.RecordSent: 200, spool.RecordPending: 200} {
		got, err := s.Records(ctx, "B1", spool.RecordFilter{State: st, Limit: 1000})
		if err != nil || len(got) != want {
			t.Fatalf("filter %s: %d records, want %d (%v)", st, len(got), want, err)
		}
		for _, r := range got {
			if r.State != st {
				t.Fatalf("filter %s gave record %d %s", st, r.Seq, r.State)
			}
		}
	}
	counts, err := s.RecordCounts(ctx, "B1")
	if err != nil {
		t.Fatal(err)
	}
	want := []spool.StateCount{{State: spool.RecordPending, Count: 200, Fen: fen[0]}, {State: spool.RecordSent, Count: 200, Fen: fen[1]}}
	if len(counts) != 2 || counts[0] != want[0] || counts[1] != want[1] {
		t.Fatalf("counts %+v, want %+v", counts, want)
	}
	ops, err := s.OpsStats(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	byState := map[string]spool.KeyCount{}
	for _, k := range ops.Records {
		byState[k.State] = k
	}
	if byState["SENT"].Count != 200 || byState["SENT"].Fen != fen[1] || byState["PENDING"].Count != 200 || byState["PENDING"].Fen != fen[0] || len(byState) != 2 {
		t.Fatalf("ops stats records %+v", ops.Records)
	}

	// A return file for a delivery still SENDING (its outcome unsettled)
	// or only SEALED changes nothing: its records were never sent.
	for _, staged := range []bool{false, true} {
		for _, d := range ds[1:3] {
			f := spool.Feedback{Bank: d.Bank, Name: "R-" + d.BankBatchNo, Size: 1, SM3: []byte("sm3-" + d.BankBatchNo), BankBatchNo: d.BankBatchNo}
			res, err := applyFile(t, s, f, fileRows(d), nil, staged)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Anomalies) == 0 || res.Anomalies[0].Kind != "conflicting_result" || res.Paid+res.Failed != 0 {
				t.Fatalf("return for a %s delivery: %+v", d.BankBatchNo, res)
			}
			if got := storedStates(t, s, d.FirstSeq, d.LastSeq); got["PENDING"] != d.Count {
				t.Fatalf("return for an unsent delivery changed its records: %v", got)
			}
		}
	}

	// The SENT delivery's return applies to its PENDING rows.
	d := ds[0]
	f := spool.Feedback{Bank: d.Bank, Name: "R-" + d.BankBatchNo, Size: 1, SM3: []byte("sm3-ok"), BankBatchNo: d.BankBatchNo}
	res, err := applyFile(t, s, f, fileRows(d), nil, true)
	if err != nil || len(res.Anomalies) != 0 || res.Paid+res.Failed != d.Count {
		t.Fatalf("return for the sent delivery: %+v %v", res, err)
	}
	if got := storedStates(t, s, d.FirstSeq, d.LastSeq); got["PAID"]+got["FAILED"] != d.Count {
		t.Fatalf("after its return: %v", got)
	}

	// Past its deadline, the other SENT delivery's records become UNKNOWN.
	d = ds[3]
	if _, err := s.w.Exec(`UPDATE deliveries SET deadline_at = 1 WHERE id = ?`, d.ID); err != nil {
		t.Fatal(err)
	}
	over, err := s.ExpireOverdue(ctx, time.Now())
	if err != nil || len(over) != 1 || over[0].ID != d.ID {
		t.Fatalf("expired %+v %v", over, err)
	}
	if got := storedStates(t, s, d.FirstSeq, d.LastSeq); got["UNKNOWN"] != d.Count {
		t.Fatalf("overdue: %v", got)
	}
	if got := storedStates(t, s, ds[1].FirstSeq, ds[2].LastSeq); got["PENDING"] != 200 {
		t.Fatalf("overdue touched unsent records: %v", got)
	}
}
