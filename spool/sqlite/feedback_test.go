package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"yktgw/spool"
)

// fileRows is a whole return file for d (1 record in 100 failed) as a slice.
func fileRows(d spool.Delivery) []spool.ResultRow {
	var rows []spool.ResultRow
	resultRows(d)(func(r spool.ResultRow) error { rows = append(rows, r); return nil })
	return rows
}

func produceRows(rows []spool.ResultRow, tail error) func(add func(spool.ResultRow) error) error {
	return func(add func(spool.ResultRow) error) error {
		for _, r := range rows {
			if err := add(r); err != nil {
				return err
			}
		}
		return tail
	}
}

// recordStates counts the records of seq first..last by their effective
// state (a PENDING row of a SENT delivery is SENT: sentstate.go).
func recordStates(t *testing.T, s *Store, first, last int) map[string]int {
	t.Helper()
	return countStates(t, s, stateOf("r"), first, last)
}

// countStates counts the records of seq first..last by the SQL expression
// state over records r.
func countStates(t *testing.T, s *Store, state string, first, last int) map[string]int {
	t.Helper()
	rows, err := s.r.Query(`SELECT `+state+` AS st, count(*) FROM records r WHERE seq BETWEEN ? AND ? GROUP BY st`, first, last)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		rows.Scan(&st, &n)
		got[st] = n
	}
	return got
}

// TestFeedbackAnomalyInLastLine: a 50,000-line return file that is wrong in
// its last line only applies nothing, and names the same anomalies as the
// line-by-line check always did; the good file then applies in one pass.
// The same with every file's lines staged ahead (StageFeedback).
func TestFeedbackAnomalyInLastLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 50,000-record spool")
	}
	t.Run("temp", func(t *testing.T) { testFeedbackAnomalyInLastLine(t, false) })
	t.Run("staged", func(t *testing.T) { testFeedbackAnomalyInLastLine(t, true) })
}

// applyFile applies rows as file f, staged ahead first when staged is set.
func applyFile(t *testing.T, s *Store, f spool.Feedback, rows []spool.ResultRow, tail error, staged bool) (spool.ApplyResult, error) {
	t.Helper()
	if staged {
		release, err := s.StageFeedback(context.Background(), f, rows)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
	}
	return s.ApplyFeedback(context.Background(), f, produceRows(rows, tail))
}

// usedStaged counts the files applied from staged lines.
func usedStaged(t *testing.T) *[]string {
	var used []string
	feedbackStagedHook = func(name string) { used = append(used, name) }
	t.Cleanup(func() { feedbackStagedHook = nil })
	return &used
}

func testFeedbackAnomalyInLastLine(t *testing.T, staged bool) {
	const n = 50_000
	s, ds := sentBatch(t, n, n)
	defer s.Close()
	ctx := context.Background()
	d := ds[0]
	var checked []string
	feedbackCheckedHook = func(name string) { checked = append(checked, name) }
	defer func() { feedbackCheckedHook = nil }()
	used := usedStaged(t)
	last := func(rows []spool.ResultRow) *spool.ResultRow { return &rows[len(rows)-1] }
	fb := func(name string) spool.Feedback {
		return spool.Feedback{Bank: d.Bank, Name: name, Size: 1, SM3: []byte("sm3-" + name), BankBatchNo: d.BankBatchNo,
			BadReasons: map[string]bool{"ACCOUNT_NOT_FOUND": true}}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.w.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		rows   func() []spool.ResultRow
		tail   error
		before func()
		after  func()
		want   []spool.Anomaly
	}{
		{name: "amount", rows: func() []spool.ResultRow {
			rows := fileRows(d)
			last(rows).AmountFen++
			return rows
		}, want: []spool.Anomaly{{Seq: n, Kind: "amount_mismatch", Message: fmt.Sprintf("bank processed %d fen, we sent %d fen", 100+n%7+1, 100+n%7)}}},
		{name: "failed with another amount", rows: func() []spool.ResultRow {
			rows := fileRows(d)
			r := last(rows)
			r.Paid, r.AmountFen, r.Reason = false, 1, "ACCOUNT_NOT_FOUND"
			return rows
		}, want: []spool.Anomaly{{Seq: n, Kind: "amount_mismatch", Message: fmt.Sprintf("bank processed 1 fen, we sent %d fen", 100+n%7)}}},
		{name: "not ours", rows: func() []spool.ResultRow {
			rows := fileRows(d)
			last(rows).Seq = n + 1
			return rows
		}, want: []spool.Anomaly{{Seq: n + 1, Kind: "unknown_record", Message: fmt.Sprintf("not a record of delivery %s (seq 1..%d)", d.BankBatchNo, n)}}},
		{name: "twice", rows: func() []spool.ResultRow {
			rows := fileRows(d)
			last(rows).Seq = 1
			return rows
		}, want: []spool.Anomaly{{Seq: 1, Kind: "duplicate_result", Message: "the file reports this record twice"}}},
		{name: "missing", rows: func() []spool.ResultRow {
			rows := fileRows(d)
			return rows[:len(rows)-1]
		}, want: []spool.Anomaly{{Kind: "missing_results", Message: fmt.Sprintf("file reports %d of %d records (missing seq %d)", n-1, n, n)}}},
		{name: "parse", rows: func() []spool.ResultRow { return fileRows(d) }, tail: errors.New("line 50002: summary count 50001, lines 50000"),
			want: []spool.Anomaly{{Kind: "parse", Message: "line 50002: summary count 50001, lines 50000"}}},
		{name: "already paid", rows: func() []spool.ResultRow { return fileRows(d) },
			before: func() { exec(`UPDATE records SET state = 'PAID' WHERE seq = ?`, n) },
			after:  func() { exec(`UPDATE records SET state = 'SENT' WHERE seq = ?`, n) },
			want:   []spool.Anomaly{{Seq: n, Kind: "conflicting_result", Message: "record already PAID"}}},
		{name: "sums", rows: func() []spool.ResultRow { return fileRows(d) },
			before: func() { exec(`UPDATE deliveries SET total_fen = total_fen + 1 WHERE id = ?`, d.ID) },
			after:  func() { exec(`UPDATE deliveries SET total_fen = total_fen - 1 WHERE id = ?`, d.ID) },
			want:   []spool.Anomaly{{Kind: "sum_mismatch", Message: fmt.Sprintf("records in the file total %d fen, the delivery %d fen", d.TotalFen, d.TotalFen+1)}}},
	}
	for i, c := range cases {
		if c.before != nil {
			c.before()
		}
		name := fmt.Sprint("BAD", i)
		res, err := applyFile(t, s, fb(name), c.rows(), c.tail, staged)
		if c.after != nil {
			c.after()
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(res.Anomalies, c.want) {
			t.Errorf("%s: anomalies %+v, want %+v", c.name, res.Anomalies, c.want)
		}
		if got := recordStates(t, s, 1, n); got["SENT"] != n {
			t.Fatalf("%s: records %v after a refused file", c.name, got)
		}
		if f, err := s.FeedbackByDigest(ctx, d.Bank, []byte("sm3-"+name)); err != nil || f.State != "ANOMALY" {
			t.Fatalf("%s: recorded as %+v %v", c.name, f, err)
		}
		if len(checked) != i+1 || checked[i] != name {
			t.Fatalf("%s: checked line by line: %v", c.name, checked)
		}
	}
	if al, _ := s.Alarms(ctx, true, 100); len(al) != len(cases) {
		t.Fatalf("%d alarms for %d refused files", len(al), len(cases))
	}

	// The good file: two records UNKNOWN (overdue) before, one failed line
	// with no amount; one pass, nothing checked line by line.
	exec(`UPDATE records SET state = 'UNKNOWN' WHERE seq IN (5, 137)`)
	rows := fileRows(d)
	rows[236].AmountFen = 0 // seq 237 failed: the bank may say 0 fen
	if rows[236].Paid || rows[136].Paid {
		t.Fatal("test data: seq 137 and 237 should fail")
	}
	var paidN, failedN int
	var paidFen, failedFen int64
	for seq := 1; seq <= n; seq++ {
		if seq%100 == 37 {
			failedN++
			failedFen += int64(100 + seq%7)
		} else {
			paidN++
			paidFen += int64(100 + seq%7)
		}
	}
	res, err := applyFile(t, s, fb("GOOD"), rows, nil, staged)
	if err != nil || len(res.Anomalies) > 0 {
		t.Fatalf("good: %+v %v", res, err)
	}
	if wantUsed := map[bool]int{false: 0, true: len(cases) + 1}[staged]; len(*used) != wantUsed {
		t.Fatalf("%d files applied from staged lines, want %d", len(*used), wantUsed)
	}
	want := spool.ApplyResult{DeliveryID: d.ID, BatchID: "B1", Paid: paidN, PaidFen: paidFen, Failed: failedN, FailedFen: failedFen, Resolved: 2, Settled: true}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("good: %+v, want %+v", res, want)
	}
	if len(checked) != len(cases) {
		t.Fatalf("the good file was checked line by line")
	}
	if got := recordStates(t, s, 1, n); got["PAID"] != paidN || got["FAILED"] != failedN {
		t.Fatalf("records %v", got)
	}
	var code, msg, serial, reason string
	var paid int64
	if err := s.r.QueryRow(`SELECT bank_code, bank_message, bank_serial, reason, paid_fen FROM records WHERE seq = 237`).Scan(&code, &msg, &serial, &reason, &paid); err != nil {
		t.Fatal(err)
	}
	if code != "E103" || msg != "卡或帐号不存在" || serial != fmt.Sprintf("%s%08d", d.BankBatchNo, 237) || reason != "ACCOUNT_NOT_FOUND" || paid != 0 {
		t.Fatalf("seq 237: %q %q %q %q %d", code, msg, serial, reason, paid)
	}
	var bad int
	s.r.QueryRow(`SELECT count(*) FROM bad_accounts`).Scan(&bad)
	if bad != failedN {
		t.Fatalf("%d bad accounts remembered, want %d", bad, failedN)
	}
	if b, _ := s.Batch(ctx, "B1"); b.State != spool.BatchSettled {
		t.Fatalf("batch %s", b.State)
	}
	// The same bytes again: a duplicate, nothing staged.
	res, err = s.ApplyFeedback(ctx, fb("GOOD"), func(func(spool.ResultRow) error) error { t.Fatal("produce called for a duplicate"); return nil })
	if err != nil || !res.Duplicate {
		t.Fatalf("again: %+v %v", res, err)
	}
}

// TestFeedbackStagedMustMatch: lines staged ahead are only a copy. A file
// whose lines are not exactly the staged ones applies what its produce
// function yields (or is refused for it), never what was staged; released
// lines are not used, and their slots are reused.
func TestFeedbackStagedMustMatch(t *testing.T) {
	s, ds := sentBatch(t, 300, 100)
	defer s.Close()
	ctx := context.Background()
	var checked []string
	feedbackCheckedHook = func(name string) { checked = append(checked, name) }
	defer func() { feedbackCheckedHook = nil }()
	used := usedStaged(t)
	fb := func(d spool.Delivery, name string) spool.Feedback {
		return spool.Feedback{Bank: d.Bank, Name: name, Size: 1, SM3: []byte("sm3-" + name), BankBatchNo: d.BankBatchNo}
	}
	stage := func(f spool.Feedback, rows []spool.ResultRow) func() {
		t.Helper()
		release, err := s.StageFeedback(ctx, f, rows)
		if err != nil {
			t.Fatal(err)
		}
		return release
	}
	serial := func(seq int) string {
		var v string
		if err := s.r.QueryRow(`SELECT bank_serial FROM records WHERE seq = ?`, seq).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Other lines than staged (one serial differs): the produced ones apply.
	d := ds[0]
	staged := fileRows(d)
	given := fileRows(d)
	given[10].BankSerial = "OTHER"
	f := fb(d, "R1")
	release := stage(f, staged)
	if _, err := s.StageFeedback(ctx, f, staged); err == nil {
		t.Fatal("the same file staged twice")
	}
	res, err := s.ApplyFeedback(ctx, f, produceRows(given, nil))
	release()
	if err != nil || len(res.Anomalies) > 0 || res.Paid+res.Failed != d.Count {
		t.Fatalf("R1: %+v %v", res, err)
	}
	if len(checked) != 1 || serial(d.FirstSeq+10) != "OTHER" {
		t.Fatalf("R1: checked %v, serial %q", checked, serial(d.FirstSeq+10))
	}

	// Fewer lines than staged: refused for the missing one.
	d = ds[1]
	rows := fileRows(d)
	f = fb(d, "R2")
	release = stage(f, rows)
	res, err = s.ApplyFeedback(ctx, f, produceRows(rows[:len(rows)-1], nil))
	release()
	if err != nil || len(res.Anomalies) != 1 || res.Anomalies[0].Kind != "missing_results" {
		t.Fatalf("R2: %+v %v", res, err)
	}
	if got := recordStates(t, s, d.FirstSeq, d.LastSeq); got["SENT"] != d.Count {
		t.Fatalf("R2: records %v", got)
	}

	// A seq twice in the staged lines: refused, as unstaged.
	dup := fileRows(d)
	dup[5].Seq = dup[4].Seq
	f = fb(d, "R3")
	release = stage(f, dup)
	res, err = s.ApplyFeedback(ctx, f, produceRows(dup, nil))
	release()
	if err != nil || len(res.Anomalies) == 0 || res.Anomalies[0].Kind != "duplicate_result" {
		t.Fatalf("R3: %+v %v", res, err)
	}

	// Released before it applies: not used, the file stages its own lines.
	f = fb(d, "R4")
	stage(f, rows)()
	n := len(*used)
	res, err = s.ApplyFeedback(ctx, f, produceRows(rows, nil))
	if err != nil || len(res.Anomalies) > 0 || len(*used) != n {
		t.Fatalf("R4: %+v %v (staged lines used: %v)", res, err, len(*used) != n)
	}

	// The last delivery staged while nothing else is: one pass from the
	// staged lines, the batch settles.
	d = ds[2]
	f = fb(d, "R5")
	release = stage(f, fileRows(d))
	res, err = s.ApplyFeedback(ctx, f, produceRows(fileRows(d), nil))
	release()
	if err != nil || len(res.Anomalies) > 0 || !res.Settled || (*used)[len(*used)-1] != "R5" {
		t.Fatalf("R5: %+v %v", res, err)
	}
	if len(checked) != 3 {
		t.Fatalf("checked line by line: %v", checked)
	}
	// Files staged one at a time use one slot; released slots are reused.
	if s.scratch.slots != 1 || len(s.scratch.free) != 1 || len(s.scratch.staged) != 0 {
		t.Fatalf("slots %d, free %v, staged %d", s.scratch.slots, s.scratch.free, len(s.scratch.staged))
	}
	path := s.scratch.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("scratch database left after Close: %v", err)
	}
}

// checkTotals: for every visible batch, the sums kept with its applied files
// and the ones batchTotals answers equal a scan of its records, and
// batchTotals raised no alarm.
func checkTotals(t *testing.T, s *Store, step string) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT id, batch_id FROM batches WHERE state <> 'STAGING'`)
	if err != nil {
		t.Fatal(err)
	}
	type b struct {
		pk int64
		id string
	}
	var bs []b
	for rows.Next() {
		var x b
		rows.Scan(&x.pk, &x.id)
		bs = append(bs, x)
	}
	rows.Close()
	for _, x := range bs {
		scanned, err := scanTotals(ctx, tx, x.pk)
		if err != nil {
			t.Fatal(err)
		}
		var kept resultTotals
		if err := tx.QueryRow(`SELECT coalesce(sum(f.paid),0), coalesce(sum(f.paid_fen),0), coalesce(sum(f.failed),0), coalesce(sum(f.failed_fen),0)
			FROM deliveries d JOIN feedback_files f ON f.delivery = d.id AND f.state = 'APPLIED' WHERE d.batch = ?`, x.pk).
			Scan(&kept.paid, &kept.paidFen, &kept.failed, &kept.failedFen); err != nil {
			t.Fatal(err)
		}
		got, err := s.batchTotals(ctx, tx, x.pk)
		if err != nil {
			t.Fatal(err)
		}
		if kept != scanned || got != scanned {
			t.Fatalf("%s: batch %s: files say %+v, batchTotals %+v, records %+v", step, x.id, kept, got, scanned)
		}
	}
	var alarms int
	tx.QueryRow(`SELECT count(*) FROM alarms WHERE kind = 'settle_totals'`).Scan(&alarms)
	if alarms != 0 {
		t.Fatalf("%s: %d settle_totals alarms", step, alarms)
	}
}

// TestSettleTotalsEqualScan: the sums settle uses instead of reading every
// record equal a scan of the records after every kind of change: results
// applied in one pass, from staged lines and line by line, refused and
// duplicate files, records gone UNKNOWN and then resolved, a failed line
// with no amount, a cancelled batch, a reissue; and the batch.settled audit
// event says what the scan says. If they disagree, the scan answers.
func TestSettleTotalsEqualScan(t *testing.T) {
	s, ds := sentBatch(t, 600, 100)
	defer s.Close()
	ctx := context.Background()
	fb := func(d spool.Delivery, name string) spool.Feedback {
		return spool.Feedback{Bank: d.Bank, Name: name, Size: 1, SM3: []byte("sm3-" + name), BankBatchNo: d.BankBatchNo,
			BadReasons: map[string]bool{"ACCOUNT_NOT_FOUND": true}}
	}
	apply := func(f spool.Feedback, rows []spool.ResultRow, staged bool) spool.ApplyResult {
		t.Helper()
		res, err := applyFile(t, s, f, rows, nil, staged)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	checkTotals(t, s, "sent")

	if res := apply(fb(ds[0], "F0"), fileRows(ds[0]), false); res.Paid+res.Failed != ds[0].Count {
		t.Fatalf("F0: %+v", res)
	}
	checkTotals(t, s, "one pass")
	if res := apply(fb(ds[1], "F1"), fileRows(ds[1]), true); res.Paid+res.Failed != ds[1].Count {
		t.Fatalf("F1: %+v", res)
	}
	checkTotals(t, s, "staged")

	bad := fileRows(ds[2])
	bad[3].AmountFen++
	if res := apply(fb(ds[2], "F2-bad"), bad, false); len(res.Anomalies) == 0 {
		t.Fatalf("F2-bad applied: %+v", res)
	}
	checkTotals(t, s, "refused")
	// Staged lines that differ from the file's: checked line by line, applied.
	other := fileRows(ds[2])
	other[7].BankSerial = "X"
	release, err := s.StageFeedback(ctx, fb(ds[2], "F2"), fileRows(ds[2]))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ApplyFeedback(ctx, fb(ds[2], "F2"), produceRows(other, nil))
	release()
	if err != nil || res.Paid+res.Failed != ds[2].Count {
		t.Fatalf("F2: %+v %v", res, err)
	}
	checkTotals(t, s, "line by line")
	again := fb(ds[0], "F0-again")
	again.SM3 = fb(ds[0], "F0").SM3
	if res := apply(again, fileRows(ds[0]), false); !res.Duplicate {
		t.Fatalf("F0-again: %+v", res)
	}
	checkTotals(t, s, "duplicate")
	// Other bytes for a delivery already applied: refused.
	if res := apply(fb(ds[0], "F0-other"), fileRows(ds[0]), true); len(res.Anomalies) == 0 {
		t.Fatalf("F0-other: %+v", res)
	}
	checkTotals(t, s, "applied twice")

	// Overdue: records UNKNOWN, then the bank's file resolves them.
	if _, err := s.w.Exec(`UPDATE deliveries SET deadline_at = 1 WHERE id = ?`, ds[3].ID); err != nil {
		t.Fatal(err)
	}
	if od, err := s.ExpireOverdue(ctx, time.Now()); err != nil || len(od) != 1 {
		t.Fatalf("expire: %v %v", od, err)
	}
	checkTotals(t, s, "unknown")
	if res := apply(fb(ds[3], "F3"), fileRows(ds[3]), true); res.Resolved != ds[3].Count {
		t.Fatalf("F3: %+v", res)
	}
	checkTotals(t, s, "resolved")
	zero := fileRows(ds[4])
	for i := range zero {
		if !zero[i].Paid {
			zero[i].AmountFen = 0
		}
	}
	apply(fb(ds[4], "F4"), zero, false)
	checkTotals(t, s, "failed with no amount")

	// Another batch, cancelled before sending.
	b2 := &spool.Batch{BatchID: "B2", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-10"}
	stg, err := s.BeginBatch(ctx, b2)
	if err != nil {
		t.Fatal(err)
	}
	recs := []spool.Record{{Seq: 1, NameEnc: []byte("n"), IDEnc: []byte("i"), AccountEnc: []byte("a"), IDIndex: []byte("ii"),
		AccountIndex: []byte("ai"), DedupeKey: []byte("dedupe-b2-1"), AccountKind: "card", AmountFen: 500}}
	if err := stg.Add(ctx, recs); err != nil {
		t.Fatal(err)
	}
	b2.TotalCount, b2.TotalFen = 1, 500
	if r, err := stg.Finalize(ctx, b2, "test", nil); err != nil || len(r.Conflicts) > 0 {
		t.Fatal(err, r.Conflicts)
	}
	if err := s.TransitionBatch(ctx, "B2", spool.BatchReceived, spool.BatchCancelled, spool.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s, "cancelled")

	// The last file settles B1: the audit event says what the scan says.
	res = apply(fb(ds[5], "F5"), fileRows(ds[5]), true)
	if !res.Settled {
		t.Fatalf("F5: %+v", res)
	}
	checkTotals(t, s, "settled")
	var detail string
	if err := s.r.QueryRow(`SELECT detail FROM audit WHERE action = 'batch.settled' AND subject = 'B1'`).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	tx, _ := s.r.Begin()
	scanned, _ := scanTotals(ctx, tx, 1)
	tx.Rollback()
	if want := fmt.Sprintf(`{"paid":%d,"paid_fen":%d,"failed":%d,"failed_fen":%d}`, scanned.paid, scanned.paidFen, scanned.failed, scanned.failedFen); detail != want {
		t.Fatalf("batch.settled says %s, the records %s", detail, want)
	}

	// A reissue of one of B1's failed records in a batch of its own.
	orig := spool.Record{Seq: 1, NameEnc: []byte("n"), IDEnc: []byte("i"), AccountEnc: []byte("a"), AccountKind: "card", ReissueOfSeq: 37}
	if err := s.r.QueryRow(`SELECT id_index, account_index, dedupe_key, amount_fen FROM records WHERE batch = 1 AND seq = 37 AND state = 'FAILED'`).
		Scan(&orig.IDIndex, &orig.AccountIndex, &orig.DedupeKey, &orig.AmountFen); err != nil {
		t.Fatal(err)
	}
	b3 := &spool.Batch{BatchID: "B3", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11", ReissueOf: "B1"}
	if stg, err = s.BeginBatch(ctx, b3); err != nil {
		t.Fatal(err)
	}
	if err := stg.Add(ctx, []spool.Record{orig}); err != nil {
		t.Fatal(err)
	}
	b3.TotalCount, b3.TotalFen = 1, orig.AmountFen
	if r, err := stg.Finalize(ctx, b3, "test", nil); err != nil || len(r.Conflicts) > 0 {
		t.Fatal(err, r.Conflicts)
	}
	checkTotals(t, s, "reissued")

	// Files applied before version 11: the migration's UPDATE gives them
	// the same sums.
	body, err := migrations.ReadFile("migrations/0011_feedback_totals.sql")
	if err != nil {
		t.Fatal(err)
	}
	fill := string(body)[strings.Index(string(body), "UPDATE feedback_files"):]
	fill = fill[:strings.Index(fill, ";")]
	if _, err := s.w.Exec(`UPDATE feedback_files SET paid = 0, paid_fen = 0, failed = 0, failed_fen = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fill); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, s, "migrated")

	// Sums that disagree with the records: the scan answers, with an alarm.
	if _, err := s.w.Exec(`UPDATE feedback_files SET paid = paid + 1 WHERE name = 'F5'`); err != nil {
		t.Fatal(err)
	}
	tx2, _ := s.w.Begin()
	got, err := s.batchTotals(ctx, tx2, 1)
	var alarms int
	tx2.QueryRow(`SELECT count(*) FROM alarms WHERE kind = 'settle_totals'`).Scan(&alarms)
	tx2.Rollback()
	if err != nil || got != scanned || alarms != 1 {
		t.Fatalf("after tampering: %+v %v (scan %+v), %d alarms", got, err, scanned, alarms)
	}
}

// TestSettleChecksTheRecords: a record changed behind the files (here put
// back to SENT after its file applied) keeps the batch from settling when
// its last file applies, with an alarm; the deliveries alone would say done.
func TestSettleChecksTheRecords(t *testing.T) {
	s, ds := sentBatch(t, 300, 100)
	defer s.Close()
	ctx := context.Background()
	for i, d := range ds {
		if i == len(ds)-1 {
			if _, err := s.w.Exec(`UPDATE records SET state = 'SENT' WHERE batch = 1 AND seq = 7`); err != nil {
				t.Fatal(err)
			}
		}
		f := spool.Feedback{Bank: d.Bank, Name: fmt.Sprint("S", i), Size: 1, SM3: []byte(fmt.Sprint("sm3-S", i)), BankBatchNo: d.BankBatchNo}
		if _, err := applyFile(t, s, f, fileRows(d), nil, false); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.Batch(ctx, ds[0].BatchID)
	if err != nil {
		t.Fatal(err)
	}
	var alarms int
	s.w.QueryRow(`SELECT count(*) FROM alarms WHERE kind = 'settle_open'`).Scan(&alarms)
	if b.State != spool.BatchSent || alarms != 1 {
		t.Fatalf("batch %s with a SENT record, %d settle_open alarms", b.State, alarms)
	}
}
