package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"yktgw/gateway/report"
	"yktgw/spool"
	"yktgw/spool/spooltest"
)

// packRec is a record of the combined layout with fields and a remark of its own.
func packRec(batch string, seq int) spool.Record {
	r := spooltest.Rec(seq, fmt.Sprintf("%s-p%d", batch, seq), fmt.Sprintf("%s-a%d", batch, seq), "GDZL", "2026-11", int64(100+seq))
	r.FieldsEnc = []byte(fmt.Sprintf("sealed fields of %s/%d", batch, seq))
	r.Remark = fmt.Sprintf("备注 %d", seq)
	if seq%5 == 0 {
		r.Remark = ""
	}
	return r
}

// packRun is n records of batch from seq first on.
func packRun(batch string, first, n int) []spool.Record {
	recs := make([]spool.Record, n)
	for i := range recs {
		recs[i] = packRec(batch, first+i)
	}
	return recs
}

type packRow struct{ first, last int }

// packRows are a batch's packs, by first seq.
func packRows(t *testing.T, s *Store, batchID string) []packRow {
	return seqRanges(t, s, `SELECT first_seq, last_seq FROM record_packs WHERE batch = (SELECT id FROM batches WHERE batch_id = ?) ORDER BY first_seq`, batchID)
}

// fieldRows are the seqs of a batch's record_fields rows.
func fieldRows(t *testing.T, s *Store, batchID string) []int {
	var out []int
	for _, r := range seqRanges(t, s, `SELECT seq, seq FROM record_fields WHERE batch = (SELECT id FROM batches WHERE batch_id = ?) ORDER BY seq`, batchID) {
		out = append(out, r.first)
	}
	return out
}

func seqRanges(t *testing.T, s *Store, q, batchID string) []packRow {
	t.Helper()
	rows, err := s.r.Query(q, batchID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []packRow
	for rows.Next() {
		var p packRow
		if err := rows.Scan(&p.first, &p.last); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecordPacks: intake's records (combined layout) are stored in packs
// of consecutive seqs, legacy-layout records in record_fields; every reader
// gives back each record's own fields and remark, whatever the order and
// gaps of the seqs an Add was given; the rewrite meets every record once,
// in order, at any page size, and what it changes reads back.
func TestRecordPacks(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	want := map[string]map[int]spool.Record{}
	submit := func(batchID string, adds ...[]int) {
		t.Helper()
		h := spooltest.Header(batchID, "210102", "GDZL", "2026-11")
		st, err := s.BeginBatch(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		want[batchID] = map[int]spool.Record{}
		n := 0
		var fen int64
		for _, seqs := range adds {
			recs := make([]spool.Record, len(seqs))
			for i, seq := range seqs {
				recs[i] = packRec(batchID, seq)
				if seq < 0 { // legacy layout
					recs[i] = packRec(batchID, -seq)
					recs[i].FieldsEnc, recs[i].NameEnc, recs[i].IDEnc, recs[i].AccountEnc = nil, []byte("n"), []byte("i"), []byte(fmt.Sprint("a", -seq))
				}
				want[batchID][recs[i].Seq] = recs[i]
				fen += recs[i].AmountFen
			}
			n += len(recs)
			if err := st.Add(ctx, recs); err != nil {
				t.Fatal(err)
			}
		}
		h.TotalCount, h.TotalFen, h.ContentHash = n, fen, []byte("h")
		if res, err := st.Finalize(ctx, h, "test", nil); err != nil || len(res.Conflicts) != 0 {
			t.Fatalf("finalize: %+v %v", res, err)
		}
	}
	seqs := func(lo, hi int) []int { // lo..hi
		var out []int
		for i := lo; i <= hi; i++ {
			out = append(out, i)
		}
		return out
	}
	// P1: 70 consecutive records in one Add: groups of 32 and 6 single rows.
	submit("P1", seqs(1, 70))
	if got := packRows(t, s, "P1"); !slices.Equal(got, []packRow{{1, 32}, {33, 64}, {65, 70}}) || len(fieldRows(t, s, "P1")) != 0 {
		t.Fatalf("P1 packs %v, field rows %v", got, fieldRows(t, s, "P1"))
	}
	// P2: gaps, seqs out of order, a run across two Adds, a legacy record
	// (its group of 32 goes to record_fields), a run across groups.
	first := append(append(seqs(100, 110), seqs(112, 120)...), 95, 96, 300) // 23
	first = append(first, seqs(301, 309)...)                                // 32: one group
	second := append(seqs(400, 430), -431)                                  // a group with a legacy record
	second = append(second, seqs(432, 436)...)                              // single rows after it
	third := append(seqs(437, 440), 90, 91)
	submit("P2", first, second, third)
	packs, fields := packRows(t, s, "P2"), fieldRows(t, s, "P2")
	if !slices.Equal(packs, []packRow{{90, 91}, {95, 96}, {100, 110}, {112, 120}, {300, 309}, {432, 436}, {437, 440}}) ||
		!slices.Equal(fields, seqs(400, 431)) {
		t.Fatalf("P2 packs %v, field rows %v", packs, fields)
	}

	check := func(what, batchID string, r *spool.Record) {
		t.Helper()
		w, ok := want[batchID][r.Seq]
		if !ok || !bytes.Equal(r.FieldsEnc, w.FieldsEnc) || !bytes.Equal(r.NameEnc, w.NameEnc) || !bytes.Equal(r.AccountEnc, w.AccountEnc) ||
			r.Remark != w.Remark || r.AmountFen != w.AmountFen {
			t.Fatalf("%s %s/%d: %q %q %q, want %q %q %q", what, batchID, r.Seq, r.FieldsEnc, r.AccountEnc, r.Remark, w.FieldsEnc, w.AccountEnc, w.Remark)
		}
	}
	readAll := func() {
		t.Helper()
		for batchID, recs := range want {
			got, err := s.Records(ctx, batchID, spool.RecordFilter{Limit: 1000})
			if err != nil || len(got) != len(recs) {
				t.Fatalf("records %s: %d %v", batchID, len(got), err)
			}
			for i := range got {
				check("Records", batchID, &got[i])
			}
			// Pages that start inside a pack.
			page, err := s.Records(ctx, batchID, spool.RecordFilter{AfterSeq: 104, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for i := range page {
				check("Records page", batchID, &page[i])
			}
			n := 0
			if err := s.RecordRange(ctx, batchID, 20, 433, func(r *spool.Record) error { n++; check("RecordRange", batchID, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("empty range")
			}
		}
		n := 0
		err := s.ScopeRecords(ctx, report.Scope{}, func(r *report.Row) error {
			n++
			w := want[r.BatchID][r.Seq]
			if !bytes.Equal(r.FieldsEnc, w.FieldsEnc) || !bytes.Equal(r.AccountEnc, w.AccountEnc) {
				t.Fatalf("report %s/%d: %q %q", r.BatchID, r.Seq, r.FieldsEnc, r.AccountEnc)
			}
			return nil
		})
		if err != nil || n != len(want["P1"])+len(want["P2"]) {
			t.Fatalf("report: %d rows, %v", n, err)
		}
	}
	readAll()
	// A report's callback error comes back as the callback gave it.
	stop := errors.New("stop")
	if err := s.ScopeRecords(ctx, report.Scope{}, func(*report.Row) error { return stop }); err != stop {
		t.Fatalf("callback error came back as %v", err)
	}

	// The rewrite meets each record once, in (batch, seq) order, at any page size.
	var order []string
	for _, b := range []string{"P1", "P2"} {
		var ss []int
		for seq := range want[b] {
			ss = append(ss, seq)
		}
		slices.Sort(ss)
		for _, seq := range ss {
			order = append(order, fmt.Sprint(b, "/", seq))
		}
	}
	for _, limit := range []int{1, 7, 33, 1000} {
		var seen []string
		var cur spool.FieldCursor
		for {
			next, read, changed, err := s.RewriteFields(ctx, cur, limit, func(r *spool.FieldRow) (bool, error) {
				seen = append(seen, fmt.Sprint(r.BatchID, "/", r.Seq))
				w := want[r.BatchID][r.Seq]
				if !bytes.Equal(r.FieldsEnc, w.FieldsEnc) || !bytes.Equal(r.NameEnc, w.NameEnc) {
					t.Fatalf("rewrite saw %s/%d: %q", r.BatchID, r.Seq, r.FieldsEnc)
				}
				return false, nil
			})
			if err != nil || changed != 0 {
				t.Fatal(err, changed)
			}
			if read == 0 {
				break
			}
			cur = next
		}
		if !slices.Equal(seen, order) {
			t.Fatalf("limit %d: the rewrite met\n%v\nwant\n%v", limit, seen, order)
		}
	}
	// Change every third record, in both storages; remarks stay.
	var cur spool.FieldCursor
	for {
		next, read, _, err := s.RewriteFields(ctx, cur, 10, func(r *spool.FieldRow) (bool, error) {
			if r.Seq%3 != 0 {
				return false, nil
			}
			w := want[r.BatchID][r.Seq]
			if len(r.FieldsEnc) > 0 {
				r.FieldsEnc = append([]byte("new "), r.FieldsEnc...)
				w.FieldsEnc = r.FieldsEnc
			} else {
				r.AccountEnc = append([]byte("new "), r.AccountEnc...)
				w.AccountEnc = r.AccountEnc
			}
			want[r.BatchID][r.Seq] = w
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if read == 0 {
			break
		}
		cur = next
	}
	readAll()

	// A packed record cannot be turned into the legacy layout.
	_, _, _, err := s.RewriteFields(ctx, spool.FieldCursor{}, 10, func(r *spool.FieldRow) (bool, error) {
		r.FieldsEnc, r.NameEnc = nil, []byte("n")
		return true, nil
	})
	if err == nil {
		t.Fatal("a packed record took the legacy layout")
	}
	readAll()
}

// TestAddRefusesSeqInAnotherPack: a seq given again in a later Add, inside
// an earlier pack's range, is refused (records' primary key), and the stage
// keeps what it had.
func TestAddRefusesSeqInAnotherPack(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	st := beginB1(t, s)
	if err := st.Add(ctx, packRun("B1", 1, 40)); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{packRec("B1", 41), packRec("B1", 20)}); err == nil {
		t.Fatal("seq 20 taken twice")
	}
	var n int
	if err := s.w.QueryRow(`SELECT (SELECT count(*) FROM records) * 1000 + (SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM record_packs)`).Scan(&n); err != nil || n != 40*1000+40 {
		t.Fatalf("%d (%v)", n, err)
	}
}

func FuzzParsePack(f *testing.F) {
	recs := []spool.Record{packRec("F", 1), packRec("F", 2), {Seq: 3}}
	f.Add(appendPack(nil, recs), 3)
	f.Add(appendPack(nil, recs[:1]), 1)
	f.Add([]byte{packVersion, 0x80}, 1)
	f.Fuzz(func(t *testing.T, blob []byte, n int) {
		if n > 1000 {
			n = 1000
		}
		es, err := parsePack(blob, n, nil)
		if err != nil {
			return
		}
		if len(es) != n {
			t.Fatalf("%d entries, want %d", len(es), n)
		}
		// What parsed packs again to a blob that parses the same.
		again := make([]spool.Record, n)
		for i, e := range es {
			again[i] = spool.Record{FieldsEnc: e.fields, Remark: e.remark}
		}
		es2, err := parsePack(appendPack(nil, again), n, nil)
		if err != nil || len(es2) != n {
			t.Fatal(err)
		}
		for i := range es {
			if !bytes.Equal(es[i].fields, es2[i].fields) || es[i].remark != es2[i].remark {
				t.Fatalf("entry %d differs", i)
			}
		}
	})
}

// TestAddPackFailureIsNotARecordsFault: when a group's records go in and
// its pack does not, the Add fails as the spool's fault, not as a seq given
// twice (the retry a row at a time that names a bad record would meet the
// group's own rows), and leaves nothing behind.
func TestAddPackFailureIsNotARecordsFault(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	st := beginB1(t, s)
	// A pack row in the way of the first group's pack (nothing writes one
	// without its records; this stands for a failing write).
	if _, err := s.w.Exec(`INSERT INTO record_packs(batch, first_seq, last_seq, packed) SELECT id, 1, 1, x'01' FROM batches WHERE batch_id = 'B1'`); err != nil {
		t.Fatal(err)
	}
	err := st.Add(ctx, packRun("B1", 1, 40))
	if err == nil || errors.Is(err, spool.ErrConflict) || !strings.Contains(err.Error(), "fields of seq 1..32") {
		t.Fatalf("add with a failing pack: %v", err)
	}
	var n int
	if err := s.w.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d records left (%v)", n, err)
	}
}

// TestPackValuesInBuffer: a pack's blob is built in the Add's buffer while
// it has room (packSize bounds every split of an Add), and in memory of its
// own when it has not; either way it parses back to the records.
func TestPackValuesInBuffer(t *testing.T) {
	recs := packRun("B", 1, 3)
	check := func(vals []driver.NamedValue) {
		t.Helper()
		es, err := parsePack(vals[2].Value.([]byte), len(recs), nil)
		if err != nil || vals[0].Value != int64(1) || vals[1].Value != int64(3) {
			t.Fatalf("pack values %v: %v", vals[:2], err)
		}
		for i, e := range es {
			if !bytes.Equal(e.fields, recs[i].FieldsEnc) || e.remark != recs[i].Remark {
				t.Fatalf("entry %d: %q %q", i, e.fields, e.remark)
			}
		}
	}
	buf := make([]byte, 0, packSize(recs))
	var a, b []driver.NamedValue
	a, buf = packValues(recs[:1], buf)
	b, buf = packValues(recs[1:], buf)
	if len(buf) == 0 || &buf[0] != &a[2].Value.([]byte)[0] || len(buf) != len(a[2].Value.([]byte))+len(b[2].Value.([]byte)) {
		t.Fatal("blobs not built in the buffer")
	}
	small := make([]byte, 0, 4)
	c, rest := packValues(recs, small)
	if len(rest) != 0 {
		t.Fatalf("a buffer without room grew to %d", len(rest))
	}
	check(c)
}
