package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"

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

func recordStates(t *testing.T, s *Store, first, last int) map[string]int {
	t.Helper()
	rows, err := s.r.Query(`SELECT state, count(*) FROM records WHERE seq BETWEEN ? AND ? GROUP BY state`, first, last)
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
