package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"yktgw/spool"
	"yktgw/spool/spooltest"
)

// settledBatch drives a batch of n records to SETTLED through the Store's
// own calls (plan, send, apply one return file).
func settledBatch(tb testing.TB, s *Store, id, tenant string, n, offset int) {
	tb.Helper()
	ctx := context.Background()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	recs := make([]spool.Record, 0, n)
	for i := 1; i <= n; i++ {
		recs = append(recs, spooltest.Rec(i, fmt.Sprint("p", offset+i), fmt.Sprint("a", offset+i), "GDZL", "2026-11", int64(100+i)))
	}
	st, err := s.BeginBatch(ctx, spooltest.Header(id, tenant, "GDZL", "2026-11"))
	must(err)
	for i := 0; i < len(recs); i += 5000 {
		must(st.Add(ctx, recs[i:min(i+5000, len(recs))]))
	}
	b := *spooltest.Header(id, tenant, "GDZL", "2026-11")
	b.TotalCount = n
	for _, r := range recs {
		b.TotalFen += r.AmountFen
	}
	res, err := st.Finalize(ctx, &b, "test", nil)
	must(err)
	if len(res.Conflicts) > 0 {
		tb.Fatalf("conflicts %+v", res.Conflicts)
	}
	must(s.TransitionBatch(ctx, id, spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "test"}))
	ds, err := s.PlanDeliveries(ctx, id, n, func(bank string, k int64) string { return fmt.Sprintf("%s%08d", bank, k) }, spool.Event{})
	must(err)
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F" + d.BankBatchNo, SealedPath: "/x", Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now(), DeadlineAt: time.Now().Add(time.Hour)},
	} {
		must(s.ChangeDelivery(ctx, c))
	}
	ar, err := s.ApplyFeedback(ctx, spool.Feedback{Bank: d.Bank, Name: "R" + id, Size: 1, SM3: []byte("sm3-" + id), BankBatchNo: d.BankBatchNo},
		func(add func(spool.ResultRow) error) error {
			for seq := 1; seq <= n; seq++ {
				r := spool.ResultRow{Seq: seq, Paid: seq%10 != 0, AmountFen: int64(100 + seq), BankSerial: fmt.Sprint("S", seq)}
				if !r.Paid {
					r.Reason, r.BankCode, r.AmountFen = "ACCOUNT_CLOSED", "E12", 0
				}
				if err := add(r); err != nil {
					return err
				}
			}
			return nil
		})
	must(err)
	if !ar.Settled {
		tb.Fatalf("batch %s not settled: %+v", id, ar)
	}
}

func TestOutboxWrittenBySettle(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	settledBatch(t, s, "OB-1", "210102", 2345, 0)

	var events []spool.OutboxEvent
	rows, err := s.r.Query(`SELECT event_id, kind, page, pages, first_seq, last_seq FROM outbox_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var e spool.OutboxEvent
		rows.Scan(&e.EventID, &e.Kind, &e.Page, &e.Pages, &e.FirstSeq, &e.LastSeq)
		events = append(events, e)
	}
	rows.Close()
	want := []spool.OutboxEvent{
		{Kind: spool.EventBatchResults, Page: 1, Pages: 3, FirstSeq: 1, LastSeq: 1000},
		{Kind: spool.EventBatchResults, Page: 2, Pages: 3, FirstSeq: 1001, LastSeq: 2000},
		{Kind: spool.EventBatchResults, Page: 3, Pages: 3, FirstSeq: 2001, LastSeq: 2345},
		{Kind: spool.EventBatchSettled, Page: 0, Pages: 3},
	}
	if len(events) != len(want) {
		t.Fatalf("events %+v", events)
	}
	for i, w := range want {
		e := events[i]
		if e.Kind != w.Kind || e.Page != w.Page || e.Pages != w.Pages || e.FirstSeq != w.FirstSeq || e.LastSeq != w.LastSeq {
			t.Fatalf("event %d: %+v, want %+v", i, e, w)
		}
		if e.EventID != outboxEventID(w.Kind, "OB-1", w.Page) {
			t.Fatalf("event %d id %s is not derived from what it is about", i, e.EventID)
		}
	}

	// Routing: a tenant nobody covers routes to nothing; two endpoints get one item each.
	route := func(tenant string) []spool.OutboxTarget {
		if tenant != "210102" {
			return nil
		}
		return []spool.OutboxTarget{{URL: "https://a/h", Tenant: "210000"}, {URL: "https://b/h", Tenant: "*"}, {URL: "https://a/h", Tenant: "210000"}}
	}
	if n, err := s.RouteOutbox(ctx, route, 0); err != nil || n != 4 {
		t.Fatalf("routed %d %v", n, err)
	}
	if n, err := s.RouteOutbox(ctx, route, 0); err != nil || n != 0 {
		t.Fatalf("routed again %d %v", n, err)
	}
	items, err := s.OutboxItems(ctx, spool.OutboxFilter{States: []spool.OutboxState{spool.OutboxPending}, DueBy: time.Now()})
	if err != nil || len(items) != 8 {
		t.Fatalf("items %d %v", len(items), err)
	}

	// Failing: the alarm comes once, at the threshold; delivery resolves it.
	it := items[0]
	for i := 1; i <= 4; i++ {
		alarmed, err := s.OutboxFailed(ctx, spool.OutboxFailure{ID: it.ID, Status: 503, Error: "down", NextAttempt: time.Now().Add(time.Hour), AlarmAfter: 3})
		if err != nil || alarmed != (i == 3) {
			t.Fatalf("failure %d: alarmed %v %v", i, alarmed, err)
		}
	}
	failing, _ := s.OutboxItems(ctx, spool.OutboxFilter{States: []spool.OutboxState{spool.OutboxFailing}})
	if len(failing) != 1 || failing[0].Attempts != 4 || failing[0].LastStatus != 503 || failing[0].Event.BatchID != "OB-1" {
		t.Fatalf("failing %+v", failing)
	}
	if due, _ := s.OutboxItems(ctx, spool.OutboxFilter{States: []spool.OutboxState{spool.OutboxPending, spool.OutboxFailing}, DueBy: time.Now()}); len(due) != 7 {
		t.Fatalf("due %d, want 7 (the failing one waits)", len(due))
	}
	al, _ := s.Alarms(ctx, true, 10)
	if len(al) != 1 || al[0].Kind != "webhook_failing" || al[0].BatchID != "OB-1" {
		t.Fatalf("alarms %+v", al)
	}
	if err := s.OutboxDelivered(ctx, it.ID, 200); err != nil {
		t.Fatal(err)
	}
	if al, _ := s.Alarms(ctx, true, 10); len(al) != 0 {
		t.Fatalf("alarm not resolved: %+v", al)
	}
	// A late failure report cannot undo a delivery.
	if _, err := s.OutboxFailed(ctx, spool.OutboxFailure{ID: it.ID, Error: "late", AlarmAfter: 1}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.OutboxItems(ctx, spool.OutboxFilter{States: []spool.OutboxState{spool.OutboxDelivered}}); len(d) != 1 || d[0].ID != it.ID {
		t.Fatalf("delivered %+v", d)
	}
}

func TestOpsStats(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	settledBatch(t, s, "OS-1", "210102", 100, 0)
	// A second batch still PENDING: its records are read, the settled
	// batch's come from its applied files' sums.
	var pending []spool.Record
	for i := 1; i <= 7; i++ {
		pending = append(pending, spooltest.Rec(i, fmt.Sprint("q", i), fmt.Sprint("b", i), "GDZL", "2026-11", 1000))
	}
	spooltest.Submit(t, s, spooltest.Header("OS-2", "210102", "GDZL", "2026-11"), pending)
	st, err := s.OpsStats(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]spool.KeyCount{}
	for _, k := range st.Records {
		got[k.State+"/"+k.Bank] = k
	}
	// seqs 10, 20 ... 100 failed: 10 records; amounts 100+seq.
	paidFen := int64(100*100 + 5050 - (10*100 + 550))
	if got["PAID/DEMO"].Count != 90 || got["PAID/DEMO"].Fen != paidFen || got["FAILED/DEMO"].Count != 10 || got["FAILED/DEMO"].Fen != 10*100+550 ||
		got["PENDING/DEMO"].Count != 7 || got["PENDING/DEMO"].Fen != 7000 || len(got) != 3 {
		t.Fatalf("records %+v", st.Records)
	}
	if len(st.Batches) != 2 {
		t.Fatalf("batches %+v", st.Batches)
	}
	if len(st.OldestUnanswered) != 0 || st.SpoolBytes <= 0 || st.Outbox[spool.OutboxPending] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkOpsStats measures one metrics refresh over a spool of 200,000
// records (the collector caches it for 10 s).
func BenchmarkOpsStats(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "spool.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 4; i++ {
		settledBatch(b, s, fmt.Sprint("BS-", i), "210102", 50000, i*50000)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.OpsStats(ctx, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
