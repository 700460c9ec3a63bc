// Package spooltest is the conformance suite every spool.Store passes. A
// Store's own test file is a few lines:
//
//	func TestConformance(t *testing.T) {
//		spooltest.Run(t, func(t *testing.T) spool.Store { return openFresh(t) })
//	}
//
// It checks behaviour the gateway relies on: invisible stages, idempotent
// batch ids, the duplicate guards of money rule 4, the state machine, tokens
// and the audit chain. It must not depend on a particular backend.
package spooltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"yktgw/spool"
)

// Run runs every case against fresh stores from open.
func Run(t *testing.T, open func(t *testing.T) spool.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s spool.Store)
	}{
		{"StageInvisibleUntilFinalize", stageInvisible},
		{"FinalizeMakesBatchReceived", finalizeReceived},
		{"AbortRemovesEverything", abortRemoves},
		{"SameBatchIDTwiceIsConflict", sameBatchID},
		{"SeqTwiceInStageIsConflict", seqTwice},
		{"InBatchDuplicatePerson", inBatchDuplicate},
		{"CrossBatchDuplicateRefused", crossBatchDuplicate},
		{"OtherSubsidyOrPeriodAllowed", otherSubsidyAllowed},
		{"CancelledBatchFreesPerson", cancelledFrees},
		{"SharedAccountWarning", sharedAccount},
		{"ConcurrentFinalizeSamePerson", concurrentFinalize},
		{"StateMachineEnforced", stateMachine},
		{"RecordsPaging", recordsPaging},
		{"BatchesListing", batchesListing},
		{"Tokens", tokens},
		{"AuditChain", auditChain},
	}
	cases = append(cases, deliveryCases...)
	cases = append(cases, replayCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			c.fn(t, s)
		})
	}
}

// Person builds deterministic fake encrypted fields for a person id; the suite
// never needs real crypto, only stable blind indexes.
func idx(kind string, v string) []byte {
	h := sha256.Sum256([]byte(kind + "\x00" + v))
	return h[:16]
}

// Rec is a record of person p for subsidy/period, paid to account a, its
// fields in the combined layout intake writes (FieldsEnc).
func Rec(seq int, p, a, subsidy, period string, fen int64) spool.Record {
	return spool.Record{
		Seq: seq, FieldsEnc: []byte("enc-fields-" + p + "-" + a), Remark: "remark-" + p,
		IDIndex: idx("id", p), AccountIndex: idx("acct", a), DedupeKey: idx("dedupe", p+"|"+subsidy+"|"+period),
		AccountKind: "card", AmountFen: fen,
	}
}

// Header returns a batch header.
func Header(id, tenant, subsidy, period string) *spool.Batch {
	return &spool.Batch{BatchID: id, Tenant: tenant, Bank: "DEMO", SubsidyCode: subsidy, SubsidyName: "补贴", Period: period, Memo: "补贴"}
}

// Submit stages and finalizes a batch of records.
func Submit(t *testing.T, s spool.Store, h *spool.Batch, recs []spool.Record) spool.FinalizeResult {
	t.Helper()
	res, err := submit(s, h, recs)
	if err != nil {
		t.Fatalf("submit %s: %v", h.BatchID, err)
	}
	return res
}

func submit(s spool.Store, h *spool.Batch, recs []spool.Record) (spool.FinalizeResult, error) {
	ctx := context.Background()
	decl := *h
	decl.TotalCount = len(recs) // declared at the start, as intake does
	st, err := s.BeginBatch(ctx, &decl)
	if err != nil {
		return spool.FinalizeResult{}, err
	}
	if err := st.Add(ctx, recs); err != nil {
		st.Abort(ctx)
		return spool.FinalizeResult{}, err
	}
	b := *h
	b.TotalCount = len(recs)
	b.TotalFen = 0
	for _, r := range recs {
		b.TotalFen += r.AmountFen
	}
	b.ContentHash = []byte("hash-" + h.BatchID)
	return st.Finalize(ctx, &b, "test", nil)
}

func stageInvisible(t *testing.T, s spool.Store) {
	ctx := context.Background()
	st, err := s.BeginBatch(ctx, Header("B1", "210102", "GDZL", "2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Batch(ctx, "B1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("staged batch visible: err=%v", err)
	}
	bs, err := s.Batches(ctx, spool.BatchFilter{})
	if err != nil || len(bs) != 0 {
		t.Fatalf("staged batch listed: %v %v", bs, err)
	}
	// A staged record does not block the same person in another batch.
	if res := Submit(t, s, Header("B2", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("staged record blocked another batch: %+v", res.Conflicts)
	}
}

func finalizeReceived(t *testing.T, s spool.Store) {
	ctx := context.Background()
	recs := []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100), Rec(2, "p2", "a2", "GDZL", "2026-11", 250)}
	// Record 2 carries its fields in the combined layout, record 1 in the
	// legacy one: the store keeps each as given.
	recs[0].FieldsEnc, recs[0].NameEnc, recs[0].IDEnc, recs[0].AccountEnc = nil, []byte("enc-name-p1"), []byte("enc-id-p1"), []byte("enc-acct-a1")
	h := Header("B1", "210102", "GDZL", "2026-11")
	h.Body = "0123456789abcdef"
	res := Submit(t, s, h, recs)
	if len(res.Conflicts) != 0 {
		t.Fatalf("unexpected conflicts %+v", res.Conflicts)
	}
	b, err := s.Batch(ctx, "B1")
	if err != nil {
		t.Fatal(err)
	}
	if b.State != spool.BatchReceived || b.TotalCount != 2 || b.TotalFen != 350 || b.Tenant != "210102" || string(b.ContentHash) != "hash-B1" ||
		b.Body != h.Body {
		t.Fatalf("batch = %+v", b)
	}
	got, err := s.Records(ctx, "B1", spool.RecordFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[1].AmountFen != 250 || got[0].State != spool.RecordPending ||
		!bytes.Equal(got[0].IDEnc, recs[0].IDEnc) || !bytes.Equal(got[1].DedupeKey, recs[1].DedupeKey) ||
		got[0].Remark != recs[0].Remark || got[1].Remark != recs[1].Remark {
		t.Fatalf("records = %+v", got)
	}
	if len(got[0].FieldsEnc) != 0 || !bytes.Equal(got[0].NameEnc, recs[0].NameEnc) || !bytes.Equal(got[0].AccountEnc, recs[0].AccountEnc) ||
		!bytes.Equal(got[1].FieldsEnc, recs[1].FieldsEnc) || len(got[1].NameEnc)+len(got[1].IDEnc)+len(got[1].AccountEnc) != 0 {
		t.Fatalf("fields not kept in their layouts: %q %q %q %q / %q %q %q %q", got[0].FieldsEnc, got[0].NameEnc, got[0].IDEnc, got[0].AccountEnc,
			got[1].FieldsEnc, got[1].NameEnc, got[1].IDEnc, got[1].AccountEnc)
	}
	counts, err := s.RecordCounts(ctx, "B1")
	if err != nil || len(counts) != 1 || counts[0].State != spool.RecordPending || counts[0].Count != 2 || counts[0].Fen != 350 {
		t.Fatalf("counts = %+v, %v", counts, err)
	}
}

func abortRemoves(t *testing.T, s spool.Store) {
	ctx := context.Background()
	st, err := s.BeginBatch(ctx, Header("B1", "210102", "GDZL", "2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{Rec(2, "p2", "a2", "GDZL", "2026-11", 100)}); err == nil {
		t.Fatal("Add after Abort succeeded")
	}
	// The same id can now be submitted afresh.
	if res := Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("conflicts after abort: %+v", res.Conflicts)
	}
}

func sameBatchID(t *testing.T, s spool.Store) {
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	_, err := submit(s, Header("B1", "210102", "GDZL", "2026-12"), []spool.Record{Rec(1, "p9", "a9", "GDZL", "2026-12", 100)})
	if !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("second B1: err = %v, want ErrConflict", err)
	}
	recs, err := s.Records(context.Background(), "B1", spool.RecordFilter{})
	if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].FieldsEnc, []byte("enc-fields-p1-a1")) {
		t.Fatalf("first batch changed: %+v %v", recs, err)
	}
}

func seqTwice(t *testing.T, s spool.Store) {
	_, err := submit(s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100), Rec(1, "p2", "a2", "GDZL", "2026-11", 100)})
	if !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}

func inBatchDuplicate(t *testing.T, s spool.Store) {
	res := Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{
		Rec(1, "p1", "a1", "GDZL", "2026-11", 100), Rec(2, "p2", "a2", "GDZL", "2026-11", 100),
		Rec(3, "p1", "a3", "GDZL", "2026-11", 100), Rec(4, "p1", "a4", "GDZL", "2026-11", 100)})
	want := []spool.Conflict{{Seq: 3, Kind: "in_batch", OtherSeq: 1}, {Seq: 4, Kind: "in_batch", OtherSeq: 1}}
	if len(res.Conflicts) != 2 {
		t.Fatalf("conflicts = %+v", res.Conflicts)
	}
	for i, w := range want {
		c := res.Conflicts[i]
		if c.Seq != w.Seq || c.Kind != w.Kind || c.OtherSeq != w.OtherSeq {
			t.Fatalf("conflict %d = %+v, want %+v", i, c, w)
		}
	}
	if _, err := s.Batch(context.Background(), "B1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("refused batch stored: %v", err)
	}
}

func crossBatchDuplicate(t *testing.T, s spool.Store) {
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100), Rec(2, "p2", "a2", "GDZL", "2026-11", 100)})
	res := Submit(t, s, Header("B2", "210103", "GDZL", "2026-11"), []spool.Record{Rec(1, "p3", "a3", "GDZL", "2026-11", 100), Rec(2, "p2", "a9", "GDZL", "2026-11", 500)})
	if len(res.Conflicts) != 1 {
		t.Fatalf("conflicts = %+v", res.Conflicts)
	}
	c := res.Conflicts[0]
	if c.Seq != 2 || c.Kind != "cross_batch" || c.OtherBatch != "B1" || c.OtherSeq != 2 || c.OtherState != spool.RecordPending {
		t.Fatalf("conflict = %+v", c)
	}
	if _, err := s.Batch(context.Background(), "B2"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("refused batch stored: %v", err)
	}
	// And p3 of the refused batch left nothing behind: it can be paid elsewhere.
	if res := Submit(t, s, Header("B3", "210103", "GDZL", "2026-11"), []spool.Record{Rec(1, "p3", "a3", "GDZL", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("refused batch left a trace: %+v", res.Conflicts)
	}
}

func otherSubsidyAllowed(t *testing.T, s spool.Store) {
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	if res := Submit(t, s, Header("B2", "210102", "GDZL", "2026-12"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-12", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("other period refused: %+v", res.Conflicts)
	}
	if res := Submit(t, s, Header("B3", "210102", "NJBT", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "NJBT", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("other subsidy refused: %+v", res.Conflicts)
	}
}

func cancelledFrees(t *testing.T, s spool.Store) {
	ctx := context.Background()
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	if err := s.TransitionBatch(ctx, "B1", spool.BatchReceived, spool.BatchCancelled, spool.Event{Actor: "test", Reason: "wrong file"}); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records(ctx, "B1", spool.RecordFilter{})
	if len(recs) != 1 || recs[0].State != spool.RecordCancelled {
		t.Fatalf("records after cancel: %+v", recs)
	}
	if res := Submit(t, s, Header("B2", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)}); len(res.Conflicts) != 0 {
		t.Fatalf("cancelled record still blocks: %+v", res.Conflicts)
	}
}

func sharedAccount(t *testing.T, s spool.Store) {
	res := Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{
		Rec(1, "p1", "shared", "GDZL", "2026-11", 100), Rec(2, "p2", "a2", "GDZL", "2026-11", 100), Rec(3, "p3", "shared", "GDZL", "2026-11", 100)})
	if len(res.Conflicts) != 0 || len(res.SharedAccounts) != 1 || fmt.Sprint(res.SharedAccounts[0].Seqs) != "[1 3]" {
		t.Fatalf("res = %+v", res)
	}
}

func concurrentFinalize(t *testing.T, s spool.Store) {
	ctx := context.Background()
	const n = 4
	stages := make([]spool.Stage, n)
	for i := range stages {
		st, err := s.BeginBatch(ctx, Header(fmt.Sprintf("B%d", i), "210102", "GDZL", "2026-11"))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Add(ctx, []spool.Record{Rec(1, "same-person", fmt.Sprintf("a%d", i), "GDZL", "2026-11", 100)}); err != nil {
			t.Fatal(err)
		}
		stages[i] = st
	}
	var wg sync.WaitGroup
	results := make([]spool.FinalizeResult, n)
	errs := make([]error, n)
	for i := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := Header(fmt.Sprintf("B%d", i), "210102", "GDZL", "2026-11")
			b.TotalCount, b.TotalFen = 1, 100
			results[i], errs[i] = stages[i].Finalize(ctx, b, "test", nil)
		}()
	}
	wg.Wait()
	accepted := 0
	for i := range stages {
		if errs[i] != nil {
			t.Fatalf("finalize %d: %v", i, errs[i])
		}
		if len(results[i].Conflicts) == 0 {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d batches paying the same person accepted, want 1", accepted)
	}
}

func stateMachine(t *testing.T, s spool.Store) {
	ctx := context.Background()
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	ev := spool.Event{Actor: "test"}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchReceived, spool.BatchSettled, ev); !errors.Is(err, spool.ErrTransition) {
		t.Fatalf("RECEIVED->SETTLED: %v, want ErrTransition", err)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchQueued, spool.BatchSending, ev); !errors.Is(err, spool.ErrStale) {
		t.Fatalf("from wrong state: %v, want ErrStale", err)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchReceived, spool.BatchQueued, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchQueued, spool.BatchSending, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchSending, spool.BatchCancelled, ev); !errors.Is(err, spool.ErrTransition) {
		t.Fatalf("cancel while SENDING: %v, want ErrTransition", err)
	}
	if err := s.TransitionBatch(ctx, "NOPE", spool.BatchReceived, spool.BatchQueued, ev); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("missing batch: %v", err)
	}
	b, _ := s.Batch(ctx, "B1")
	if b.State != spool.BatchSending {
		t.Fatalf("state = %s", b.State)
	}
}

func recordsPaging(t *testing.T, s spool.Store) {
	ctx := context.Background()
	var recs []spool.Record
	for i := 1; i <= 25; i++ {
		recs = append(recs, Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-11", int64(i)))
	}
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), recs)
	var seen []int
	after := 0
	for {
		page, err := s.Records(ctx, "B1", spool.RecordFilter{AfterSeq: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			seen = append(seen, r.Seq)
		}
		after = page[len(page)-1].Seq
	}
	if len(seen) != 25 || seen[0] != 1 || seen[24] != 25 {
		t.Fatalf("paged seqs = %v", seen)
	}
	none, err := s.Records(ctx, "B1", spool.RecordFilter{State: spool.RecordPaid})
	if err != nil || len(none) != 0 {
		t.Fatalf("PAID filter = %v %v", none, err)
	}
	if _, err := s.Records(ctx, "NOPE", spool.RecordFilter{}); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("missing batch: %v", err)
	}
}

func batchesListing(t *testing.T, s spool.Store) {
	ctx := context.Background()
	Submit(t, s, Header("A", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 1)})
	Submit(t, s, Header("B", "210203", "GDZL", "2026-11"), []spool.Record{Rec(1, "p2", "a2", "GDZL", "2026-11", 1)})
	Submit(t, s, Header("C", "210103", "GDZL", "2026-11"), []spool.Record{Rec(1, "p3", "a3", "GDZL", "2026-11", 1)})
	ids := func(f spool.BatchFilter) string {
		bs, err := s.Batches(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, b.BatchID)
		}
		return fmt.Sprint(out)
	}
	if got := ids(spool.BatchFilter{}); got != "[C B A]" {
		t.Fatalf("all = %s", got)
	}
	if got := ids(spool.BatchFilter{Tenants: []string{"2101"}}); got != "[C A]" {
		t.Fatalf("tenant 2101 = %s", got)
	}
	if got := ids(spool.BatchFilter{Tenants: []string{}}); got != "[]" {
		t.Fatalf("no tenants = %s", got)
	}
	if got := ids(spool.BatchFilter{Before: "C", Limit: 1}); got != "[B]" {
		t.Fatalf("before C = %s", got)
	}
}

func tokens(t *testing.T, s spool.Store) {
	ctx := context.Background()
	tok := &spool.Token{ID: "t1", Name: "county", Hash: []byte("h"), Tenants: []string{"210102"}, Roles: []string{"submitter", "viewer"}}
	if err := s.CreateToken(ctx, tok, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok, "admin"); !errors.Is(err, spool.ErrConflict) {
		t.Fatalf("duplicate token id: %v", err)
	}
	got, err := s.Token(ctx, "t1")
	if err != nil || got.Name != "county" || fmt.Sprint(got.Roles) != "[submitter viewer]" || !got.RevokedAt.IsZero() {
		t.Fatalf("token = %+v %v", got, err)
	}
	if err := s.RevokeToken(ctx, "t1", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", "admin"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	got, _ = s.Token(ctx, "t1")
	if got.RevokedAt.IsZero() {
		t.Fatal("revoked token not marked")
	}
	if _, err := s.Token(ctx, "nope"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
	all, err := s.Tokens(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("tokens = %v %v", all, err)
	}
}

func auditChain(t *testing.T, s spool.Store) {
	ctx := context.Background()
	Submit(t, s, Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	if err := s.Audit(ctx, spool.Event{Actor: "ops", Action: "test.action", Subject: "x", Reason: "because"}); err != nil {
		t.Fatal(err)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "system"}); err != nil {
		t.Fatal(err)
	}
	es, err := s.AuditEntries(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Action != "batch.received" || es[1].Action != "test.action" || es[2].Action != "batch.queued" {
		t.Fatalf("entries = %+v", es)
	}
	prev := spool.GenesisHash
	for i, e := range es {
		if e.Seq != int64(i+1) || !bytes.Equal(e.Prev, prev) || !bytes.Equal(e.Hash, spool.AuditHash(prev, &e)) {
			t.Fatalf("entry %d breaks the chain: %+v", i, e)
		}
		prev = e.Hash
	}
	rest, err := s.AuditEntries(ctx, 2, 100)
	if err != nil || len(rest) != 1 || rest[0].Seq != 3 {
		t.Fatalf("after 2: %+v %v", rest, err)
	}
}
