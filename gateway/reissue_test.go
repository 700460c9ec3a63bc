package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"yktgw/internal/gen"
	"yktgw/spool"
)

// settleWith drives a submitted batch through deliveries of two records
// each and, per delivery, a return file with the outcome per seq; a
// delivery whose outcome is UNKNOWN gets no return file and passes its
// deadline.
func settleWith(t *testing.T, e *env, batchID string, outcome func(seq int) spool.RecordState) {
	t.Helper()
	ctx := context.Background()
	ds, err := e.store.PlanDeliveries(ctx, batchID, 2, BankBatchNo, spool.Event{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for _, c := range []spool.DeliveryChange{
			{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "f" + d.BankBatchNo, SealedPath: "/x", Size: 1, SM3: []byte{1}},
			{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
			{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, SentAt: time.Now(), DeadlineAt: time.Now().Add(-time.Second)},
		} {
			if err := e.store.ChangeDelivery(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.store.ExpireOverdue(ctx, time.Now()); err != nil { // every SENT record -> UNKNOWN
		t.Fatal(err)
	}
	recs, _ := e.store.Records(ctx, batchID, spool.RecordFilter{})
	for _, d := range ds {
		if outcome(d.FirstSeq) == spool.RecordUnknown {
			continue
		}
		res, err := e.store.ApplyFeedback(ctx, spool.Feedback{Bank: d.Bank, Name: "R-" + d.BankBatchNo, SM3: []byte("sm3-" + d.BankBatchNo), BankBatchNo: d.BankBatchNo},
			func(add func(spool.ResultRow) error) error {
				for _, r := range recs[d.FirstSeq-1 : d.LastSeq] {
					if outcome(r.Seq) == spool.RecordPaid {
						add(spool.ResultRow{Seq: r.Seq, Paid: true, AmountFen: r.AmountFen, BankCode: "0000"})
					} else {
						add(spool.ResultRow{Seq: r.Seq, AmountFen: 0, Reason: "ACCOUNT_CLOSED", BankCode: "E12"})
					}
				}
				return nil
			})
		if err != nil || len(res.Anomalies) > 0 {
			t.Fatalf("feedback %s: %+v %v", d.BankBatchNo, res.Anomalies, err)
		}
	}
}

// Money rule 6: only a FAILED record can be reissued, once; PAID and UNKNOWN never.
func TestReissue(t *testing.T) {
	e := newEnv(t)
	e.t = t
	orig := gen.Full(gen.Spec{BatchID: "B-ORIG", N: 6})
	if r := e.post("county", orig); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// seq 1,2 PAID; 3,4 FAILED; 5,6 no word (UNKNOWN).
	settleWith(t, e, "B-ORIG", func(seq int) spool.RecordState {
		switch {
		case seq <= 2:
			return spool.RecordPaid
		case seq <= 4:
			return spool.RecordFailed
		}
		return spool.RecordUnknown
	})
	reissue := func(id string, seqs ...int) gen.Batch {
		b := gen.Batch{Header: orig.Header}
		b.BatchID = id
		b.TotalCount, b.TotalFen = len(seqs), 0
		for i, s := range seqs {
			r := orig.Records[s-1]
			r.Seq = i + 1
			r.Account = "6222020200112239999"[:18] + fmt.Sprint(i) // the corrected account
			b.Records = append(b.Records, r)
			b.TotalFen += r.AmountFen
		}
		return b
	}
	withReissue := func(b gen.Batch, of string, seqs ...int) map[string]any {
		return map[string]any{"batch_id": b.BatchID, "tenant": b.Tenant, "bank": b.Bank, "subsidy": b.Subsidy, "period": b.Period,
			"memo": b.Memo, "total_count": b.TotalCount, "total_fen": b.TotalFen, "reissue_of": map[string]any{"batch_id": of, "seqs": seqs},
			"records": b.Records}
	}
	// PAID and UNKNOWN can never be reissued.
	for _, s := range []int{1, 5} {
		r := e.post("county", withReissue(reissue(fmt.Sprint("B-RE-BAD-", s), s), "B-ORIG", s))
		if r.status != 422 || !hasCode(codes(t, r), "1:reissue_of.seqs:reissue.not_failed") {
			t.Fatalf("reissue of seq %d: %d %s", s, r.status, r.body)
		}
	}
	// A FAILED record: accepted once, linked both ways.
	r := e.post("county", withReissue(reissue("B-RE-1", 3, 4), "B-ORIG", 3, 4))
	if r.status != 201 {
		t.Fatalf("reissue: %d %s", r.status, r.body)
	}
	var page ResultPage
	e.do("GET", "/v1/batches/B-RE-1/results", "county", "", nil).json(t, &page)
	if page.Items[0].ReissueOf == nil || *page.Items[0].ReissueOf != (RecordRef{"B-ORIG", 3}) || *page.Items[1].ReissueOf != (RecordRef{"B-ORIG", 4}) {
		t.Fatalf("chain forward: %+v", page.Items)
	}
	e.do("GET", "/v1/batches/B-ORIG/results?status=FAILED", "county", "", nil).json(t, &page)
	if len(page.Items) != 2 || page.Items[0].ReissuedBy == nil || *page.Items[0].ReissuedBy != (RecordRef{"B-RE-1", 1}) {
		t.Fatalf("chain back: %+v", page.Items)
	}
	// A second reissue of the same record is refused.
	r = e.post("county", withReissue(reissue("B-RE-2", 3), "B-ORIG", 3))
	if r.status != 422 || !hasCode(codes(t, r), "1:reissue_of.seqs:reissue.already_reissued") {
		t.Fatalf("second reissue: %d %s", r.status, r.body)
	}
	// Cancelling the reissue frees the original again.
	if r := e.do("POST", "/v1/batches/B-RE-1/cancel", "county", "", nil); r.status != 200 {
		t.Fatalf("cancel: %d", r.status)
	}
	if r := e.post("county", withReissue(reissue("B-RE-3", 3), "B-ORIG", 3)); r.status != 201 {
		t.Fatalf("reissue after cancel: %d %s", r.status, r.body)
	}
	// Another tenant's batch is not there; seqs must match the records.
	if r := e.post("other", withReissue(reissue("B-RE-4", 4), "B-ORIG", 4)); r.status != 403 && r.status != 422 {
		t.Fatalf("other tenant: %d", r.status)
	}
	b := reissue("B-RE-5", 4)
	b.Tenant = "210102"
	r = e.post("county", withReissue(b, "B-ORIG", 4, 3))
	if r.status != 422 || !hasCode(codes(t, r), "0:reissue_of.seqs:reissue.seqs_count") {
		t.Fatalf("seqs count: %d %s", r.status, r.body)
	}
	r = e.post("county", withReissue(reissue("B-RE-6", 4), "NOPE", 4))
	if r.status != 422 || !hasCode(codes(t, r), "0:reissue_of.batch_id:reissue.batch_not_found") {
		t.Fatalf("unknown original: %d %s", r.status, r.body)
	}
}
