package spooltest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"yktgw/spool"
)

// DeliveryCases are the delivery and feedback cases of the suite.
var deliveryCases = []struct {
	name string
	fn   func(t *testing.T, s spool.Store)
}{
	{"PlanSplitsAndNumbersNeverReused", planSplits},
	{"DeliveryLifecycle", deliveryLifecycle},
	{"DeadDeliveryKillsBatchWithAlarm", deadDelivery},
	{"FeedbackSettlesBatch", feedbackSettles},
	{"FeedbackDuplicateBytesAppliedOnce", feedbackDuplicate},
	{"FeedbackAnomaliesApplyNothing", feedbackAnomalies},
	{"OverdueBecomesUnknownUntilBankSpeaks", overdueUnknown},
	{"BadAccountsRemembered", badAccounts},
	{"ResultsFreeOrHoldPerson", resultsFreeOrHold},
}

func bankNo(bank string, n int64) string { return fmt.Sprintf("%s%08d", bank, n) }

func queued(t *testing.T, s spool.Store, id string, n int, offset int) {
	t.Helper()
	var recs []spool.Record
	for i := 1; i <= n; i++ {
		recs = append(recs, Rec(i, fmt.Sprint("p", offset+i), fmt.Sprint("a", offset+i), "GDZL", "2026-11", int64(100*i)))
	}
	if res := Submit(t, s, Header(id, "210102", "GDZL", "2026-11"), recs); len(res.Conflicts) > 0 {
		t.Fatalf("conflicts %+v", res.Conflicts)
	}
	if err := s.TransitionBatch(context.Background(), id, spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

// sendAll drives every delivery of a batch to SENT.
func sendAll(t *testing.T, s spool.Store, ds []spool.Delivery, deadline time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, d := range ds {
		for _, c := range []spool.DeliveryChange{
			{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F" + d.BankBatchNo, SealedPath: "/spool/" + d.BankBatchNo, Size: 10, SM3: []byte("digest")},
			{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
			{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now(), DeadlineAt: deadline},
		} {
			if err := s.ChangeDelivery(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func planSplits(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 25, 0)
	ds, err := s.PlanDeliveries(ctx, "B1", 10, bankNo, spool.Event{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[0].FirstSeq != 1 || ds[0].LastSeq != 10 || ds[2].FirstSeq != 21 || ds[2].LastSeq != 25 || ds[2].Count != 5 {
		t.Fatalf("deliveries = %+v", ds)
	}
	var fen int64
	for _, d := range ds {
		fen += d.TotalFen
		if d.State != spool.DeliveryPlanned || d.Bank != "DEMO" || d.BatchID != "B1" {
			t.Fatalf("delivery = %+v", d)
		}
	}
	b, _ := s.Batch(ctx, "B1")
	if fen != b.TotalFen || b.State != spool.BatchSending {
		t.Fatalf("sum %d vs %d, state %s", fen, b.TotalFen, b.State)
	}
	if _, err := s.PlanDeliveries(ctx, "B1", 10, bankNo, spool.Event{}); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("second plan: %v", err)
	}
	queued(t, s, "B2", 3, 100)
	ds2, err := s.PlanDeliveries(ctx, "B2", 10, bankNo, spool.Event{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range append(ds, ds2...) {
		if seen[d.BankBatchNo] {
			t.Fatalf("bank batch number %s reused", d.BankBatchNo)
		}
		seen[d.BankBatchNo] = true
	}
}

func deliveryLifecycle(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 4, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 2, bankNo, spool.Event{})
	if err := s.ChangeDelivery(ctx, spool.DeliveryChange{ID: ds[0].ID, From: spool.DeliveryPlanned, To: spool.DeliverySent}); !errors.Is(err, spool.ErrTransition) {
		t.Fatalf("PLANNED->SENT: %v", err)
	}
	if err := s.ChangeDelivery(ctx, spool.DeliveryChange{ID: ds[0].ID, From: spool.DeliverySealed, To: spool.DeliverySending}); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("wrong from: %v", err)
	}
	// Attempt, then retry later, then attempt again.
	steps := []spool.DeliveryChange{
		{ID: ds[0].ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "f1", SealedPath: "/p1", Size: 3, SM3: []byte{1}},
		{ID: ds[0].ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: ds[0].ID, From: spool.DeliverySending, To: spool.DeliverySealed, Error: "network down", NextAttempt: time.Now().Add(time.Minute)},
		{ID: ds[0].ID, From: spool.DeliverySealed, To: spool.DeliverySending},
	}
	for _, c := range steps {
		if err := s.ChangeDelivery(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := s.Delivery(ctx, ds[0].ID)
	if d.State != spool.DeliverySending || d.Attempts != 2 || d.FileName != "f1" || d.Size != 3 {
		t.Fatalf("delivery = %+v", d)
	}
	due, _ := s.Deliveries(ctx, spool.DeliveryFilter{States: []spool.DeliveryState{spool.DeliverySending}})
	if len(due) != 1 {
		t.Fatalf("sending = %+v", due)
	}
	if err := s.ChangeDelivery(ctx, spool.DeliveryChange{ID: ds[0].ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "ok", SentAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records(ctx, "B1", spool.RecordFilter{})
	if recs[0].State != spool.RecordSent || recs[1].State != spool.RecordSent || recs[2].State != spool.RecordPending {
		t.Fatalf("records = %v %v %v", recs[0].State, recs[1].State, recs[2].State)
	}
	if b, _ := s.Batch(ctx, "B1"); b.State != spool.BatchSending {
		t.Fatalf("batch %s before all sent", b.State)
	}
	sendAll(t, s, ds[1:], time.Time{})
	if b, _ := s.Batch(ctx, "B1"); b.State != spool.BatchSent {
		t.Fatalf("batch %s after all sent", b.State)
	}
}

func deadDelivery(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 2, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 10, bankNo, spool.Event{})
	if err := s.ChangeDelivery(ctx, spool.DeliveryChange{ID: ds[0].ID, From: spool.DeliveryPlanned, To: spool.DeliveryDead, Error: "cannot render"}); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Batch(ctx, "B1")
	al, _ := s.Alarms(ctx, true, 10)
	if b.State != spool.BatchDead || len(al) != 1 || al[0].Kind != "dead_delivery" || al[0].BatchID != "B1" {
		t.Fatalf("batch %s alarms %+v", b.State, al)
	}
}

func rows(first, last int, paid func(seq int) bool) func(add func(spool.ResultRow) error) error {
	return func(add func(spool.ResultRow) error) error {
		for seq := first; seq <= last; seq++ {
			r := spool.ResultRow{Seq: seq, Paid: paid(seq), AmountFen: int64(100 * seq), BankCode: "0000", BankSerial: fmt.Sprint("S", seq)}
			if !r.Paid {
				r.Reason, r.BankCode, r.AmountFen = "ACCOUNT_CLOSED", "E12", 0
			}
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	}
}

func fb(d spool.Delivery, name string) spool.Feedback {
	return spool.Feedback{Bank: d.Bank, Name: name, Size: 100, SM3: []byte("sm3-" + name), BankBatchNo: d.BankBatchNo, BadReasons: map[string]bool{"ACCOUNT_CLOSED": true}}
}

func feedbackSettles(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 6, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 3, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Now().Add(time.Hour))
	res, err := s.ApplyFeedback(ctx, fb(ds[0], "R1"), rows(1, 3, func(seq int) bool { return seq != 2 }))
	if err != nil || len(res.Anomalies) > 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if res.Paid != 2 || res.PaidFen != 100+300 || res.Failed != 1 || res.FailedFen != 200 || res.Settled {
		t.Fatalf("first file: %+v", res)
	}
	res, err = s.ApplyFeedback(ctx, fb(ds[1], "R2"), rows(4, 6, func(int) bool { return true }))
	if err != nil || !res.Settled || res.Paid != 3 {
		t.Fatalf("second file: %+v %v", res, err)
	}
	b, _ := s.Batch(ctx, "B1")
	recs, _ := s.Records(ctx, "B1", spool.RecordFilter{})
	if b.State != spool.BatchSettled || recs[1].State != spool.RecordFailed || recs[1].Reason != "ACCOUNT_CLOSED" || recs[1].BankCode != "E12" || recs[0].BankSerial != "S1" {
		t.Fatalf("batch %s, records %+v", b.State, recs[:2])
	}
}

func feedbackDuplicate(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 3, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 3, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Time{})
	f := fb(ds[0], "R1")
	if res, err := s.ApplyFeedback(ctx, f, rows(1, 3, func(int) bool { return true })); err != nil || res.Duplicate || res.Paid != 3 {
		t.Fatalf("first: %+v %v", res, err)
	}
	f.Name = "R1-copy" // the same bytes under another name
	calls := 0
	res, err := s.ApplyFeedback(ctx, f, func(add func(spool.ResultRow) error) error { calls++; return nil })
	if err != nil || !res.Duplicate || calls != 0 {
		t.Fatalf("duplicate: %+v %v (produce called %d times)", res, err, calls)
	}
	got, err := s.FeedbackByDigest(ctx, f.Bank, f.SM3)
	if err != nil || got.State != "APPLIED" || got.Name != "R1" {
		t.Fatalf("by digest: %+v %v", got, err)
	}
}

func feedbackAnomalies(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 4, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 4, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Time{})
	d := ds[0]
	cases := []struct {
		name    string
		f       spool.Feedback
		produce func(add func(spool.ResultRow) error) error
		kind    string
	}{
		{"missing", fb(d, "M"), rows(1, 3, func(int) bool { return true }), "missing_results"},
		{"amount", fb(d, "A"), func(add func(spool.ResultRow) error) error {
			rows(1, 3, func(int) bool { return true })(add)
			return add(spool.ResultRow{Seq: 4, Paid: true, AmountFen: 401})
		}, "amount_mismatch"},
		{"unknown record", fb(d, "U"), rows(1, 5, func(int) bool { return true }), "unknown_record"},
		{"twice", fb(d, "T"), func(add func(spool.ResultRow) error) error {
			rows(1, 4, func(int) bool { return true })(add)
			return add(spool.ResultRow{Seq: 2, Paid: true, AmountFen: 200})
		}, "duplicate_result"},
		{"parse", fb(d, "P"), func(add func(spool.ResultRow) error) error {
			rows(1, 4, func(int) bool { return true })(add)
			return errors.New("line 7: summary count 5, lines 4")
		}, "parse"},
		{"unknown batch no", spool.Feedback{Bank: d.Bank, Name: "X", SM3: []byte("x"), BankBatchNo: "NOPE"}, rows(1, 4, func(int) bool { return true }), "unknown_batch_no"},
	}
	for _, c := range cases {
		res, err := s.ApplyFeedback(ctx, c.f, c.produce)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(res.Anomalies) == 0 || res.Anomalies[0].Kind != c.kind {
			t.Fatalf("%s: anomalies %+v, want %s", c.name, res.Anomalies, c.kind)
		}
		recs, _ := s.Records(ctx, "B1", spool.RecordFilter{})
		for _, r := range recs {
			if r.State != spool.RecordSent {
				t.Fatalf("%s: record %d became %s: a refused file changed something", c.name, r.Seq, r.State)
			}
		}
		got, err := s.FeedbackByDigest(ctx, c.f.Bank, c.f.SM3)
		if err != nil || got.State != "ANOMALY" {
			t.Fatalf("%s: recorded as %+v %v", c.name, got, err)
		}
	}
	al, _ := s.Alarms(ctx, true, 100)
	if len(al) != len(cases) {
		t.Fatalf("%d alarms for %d refused files", len(al), len(cases))
	}
	// A good file applies; a second, different file for the same records conflicts.
	if res, err := s.ApplyFeedback(ctx, fb(d, "GOOD"), rows(1, 4, func(int) bool { return true })); err != nil || len(res.Anomalies) > 0 || !res.Settled {
		t.Fatalf("good: %+v %v", res, err)
	}
	res, err := s.ApplyFeedback(ctx, fb(d, "AGAIN"), rows(1, 4, func(int) bool { return false }))
	if err != nil || len(res.Anomalies) == 0 || res.Anomalies[0].Kind != "conflicting_result" {
		t.Fatalf("conflicting: %+v %v", res, err)
	}
	recs, _ := s.Records(ctx, "B1", spool.RecordFilter{State: spool.RecordPaid})
	if len(recs) != 4 {
		t.Fatalf("PAID records changed by a conflicting file: %d left", len(recs))
	}
}

func overdueUnknown(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 3, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 3, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Now().Add(-time.Minute))
	over, err := s.ExpireOverdue(ctx, time.Now())
	if err != nil || len(over) != 1 {
		t.Fatalf("overdue: %+v %v", over, err)
	}
	if again, _ := s.ExpireOverdue(ctx, time.Now()); len(again) != 0 {
		t.Fatalf("expired twice: %+v", again)
	}
	recs, _ := s.Records(ctx, "B1", spool.RecordFilter{State: spool.RecordUnknown})
	al, _ := s.Alarms(ctx, true, 10)
	if len(recs) != 3 || len(al) != 1 || al[0].Kind != "feedback_overdue" {
		t.Fatalf("unknown %d alarms %+v", len(recs), al)
	}
	if b, _ := s.Batch(ctx, "B1"); b.State != spool.BatchSent {
		t.Fatalf("batch %s: UNKNOWN is not final", b.State)
	}
	res, err := s.ApplyFeedback(ctx, fb(ds[0], "LATE"), rows(1, 3, func(int) bool { return true }))
	if err != nil || res.Resolved != 3 || !res.Settled {
		t.Fatalf("late feedback: %+v %v", res, err)
	}
}

func badAccounts(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 3, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 3, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Time{})
	if _, err := s.ApplyFeedback(ctx, fb(ds[0], "R"), rows(1, 3, func(seq int) bool { return seq != 3 })); err != nil {
		t.Fatal(err)
	}
	// Next period, same people and accounts: the closed account of p3 is flagged.
	var recs []spool.Record
	for i := 1; i <= 3; i++ {
		recs = append(recs, Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-12", 100))
	}
	res := Submit(t, s, Header("B2", "210102", "GDZL", "2026-12"), recs)
	if len(res.BadAccounts) != 1 || res.BadAccounts[0].Seq != 3 || res.BadAccounts[0].Reason != "ACCOUNT_CLOSED" {
		t.Fatalf("bad accounts = %+v", res.BadAccounts)
	}
	got, err := s.BadAccounts(ctx, "B2")
	if err != nil || got[3] != "ACCOUNT_CLOSED" || len(got) != 1 {
		t.Fatalf("BadAccounts = %v %v", got, err)
	}
}

// Money rule 4 after the bank speaks: a FAILED record frees its person for a
// later batch; PAID, SENT and UNKNOWN keep holding it.
func resultsFreeOrHold(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "B1", 6, 0)
	ds, _ := s.PlanDeliveries(ctx, "B1", 3, bankNo, spool.Event{})
	sendAll(t, s, ds, time.Now().Add(time.Hour))
	if res, err := s.ApplyFeedback(ctx, fb(ds[0], "R1"), rows(1, 3, func(seq int) bool { return seq != 2 })); err != nil || len(res.Anomalies) > 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	// p2 FAILED: free. p1 PAID, p4 SENT: held.
	if res := Submit(t, s, Header("B2", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p2", "a9", "GDZL", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("a FAILED person is still held: %+v", res.Conflicts)
	}
	for _, c := range []struct {
		p     string
		seq   int
		state spool.RecordState
	}{{"p1", 1, spool.RecordPaid}, {"p4", 4, spool.RecordSent}, {"p2", 1, spool.RecordPending}} {
		res := Submit(t, s, Header("B3"+c.p, "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, c.p, "a9", "GDZL", "2026-11", 100)})
		if len(res.Conflicts) != 1 || res.Conflicts[0].Kind != "cross_batch" || res.Conflicts[0].OtherSeq != c.seq || res.Conflicts[0].OtherState != c.state {
			t.Fatalf("%s: conflicts %+v, want one cross_batch against a %s record", c.p, res.Conflicts, c.state)
		}
	}
}
