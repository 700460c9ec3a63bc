package spooltest

import (
	"context"
	"errors"
	"testing"

	"yktgw/spool"
)

var replayCases = []struct {
	name string
	fn   func(t *testing.T, s spool.Store)
}{
	{"ReplayOnlyDeadAndMakerChecker", replayMakerChecker},
	{"ReplayFinishMovesDeliveryAndBatch", replayFinish},
}

func deadDeliveryOf(t *testing.T, s spool.Store, id string, offset int) spool.Delivery {
	t.Helper()
	ctx := context.Background()
	queued(t, s, id, 2, offset)
	ds, err := s.PlanDeliveries(ctx, id, 10, bankNo, spool.Event{})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "f", SealedPath: "/p", Size: 1, SM3: []byte{1}},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliveryDead, Error: "gave up"},
	} {
		if err := s.ChangeDelivery(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Delivery(ctx, d.ID)
	return *got
}

func replayMakerChecker(t *testing.T, s spool.Store) {
	ctx := context.Background()
	queued(t, s, "LIVE", 1, 500)
	live, _ := s.PlanDeliveries(ctx, "LIVE", 10, bankNo, spool.Event{})
	if _, err := s.RequestReplay(ctx, live[0].ID, "why", "alice", false); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("replay of a PLANNED delivery: %v", err)
	}
	d := deadDeliveryOf(t, s, "B1", 0)
	r, err := s.RequestReplay(ctx, d.ID, "bank was down", "alice", true)
	if err != nil || r.State != spool.ReplayPending || r.BankBatchNo != d.BankBatchNo || r.TotalFen != d.TotalFen {
		t.Fatalf("request: %+v %v", r, err)
	}
	if _, err := s.RequestReplay(ctx, d.ID, "again", "bob", true); !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("second open request: %v", err)
	}
	if _, err := s.FinishReplay(ctx, r.ID, spool.DeliverySealed, "x"); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("finish before approval: %v", err)
	}
	if _, err := s.ApproveReplay(ctx, r.ID, "alice"); !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("self-approval: %v", err)
	}
	r, err = s.ApproveReplay(ctx, r.ID, "carol")
	if err != nil || r.State != spool.ReplayApproved || r.ApprovedBy != "carol" {
		t.Fatalf("approve: %+v %v", r, err)
	}
	if _, err := s.ApproveReplay(ctx, r.ID, "dave"); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("second approval: %v", err)
	}
	// Refused after asking the bank: the delivery stays DEAD, a new request is possible.
	r, err = s.FinishReplay(ctx, r.ID, "", "bank holds another file")
	if err != nil || r.State != spool.ReplayRefused {
		t.Fatalf("refuse: %+v %v", r, err)
	}
	if got, _ := s.Delivery(ctx, d.ID); got.State != spool.DeliveryDead {
		t.Fatalf("delivery %s after refusal", got.State)
	}
	list, _ := s.Replays(ctx, spool.ReplayRefused, 10)
	if len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("replays = %+v", list)
	}
}

func replayFinish(t *testing.T, s spool.Store) {
	ctx := context.Background()
	d := deadDeliveryOf(t, s, "B1", 0)
	if b, _ := s.Batch(ctx, "B1"); b.State != spool.BatchDead {
		t.Fatalf("batch %s", b.State)
	}
	r, _ := s.RequestReplay(ctx, d.ID, "retry", "alice", false)
	r, err := s.FinishReplay(ctx, r.ID, spool.DeliverySealed, "not arrived")
	if err != nil || r.State != spool.ReplayDone {
		t.Fatalf("finish: %+v %v", r, err)
	}
	got, _ := s.Delivery(ctx, d.ID)
	b, _ := s.Batch(ctx, "B1")
	if got.State != spool.DeliverySealed || got.BankBatchNo != d.BankBatchNo || got.SealedPath != d.SealedPath || b.State != spool.BatchSending {
		t.Fatalf("after replay: delivery %+v batch %s", got, b.State)
	}
	// Arrived after all: DEAD -> SENT, records SENT, batch SENT.
	d2 := deadDeliveryOf(t, s, "B2", 100)
	r, _ = s.RequestReplay(ctx, d2.ID, "check", "alice", false)
	if _, err := s.FinishReplay(ctx, r.ID, spool.DeliverySent, "arrived"); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records(ctx, "B2", spool.RecordFilter{State: spool.RecordSent})
	b, _ = s.Batch(ctx, "B2")
	if len(recs) != 2 || b.State != spool.BatchSent {
		t.Fatalf("arrived: %d SENT records, batch %s", len(recs), b.State)
	}
}
