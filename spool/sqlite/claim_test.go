package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"yktgw/spool"
	"yktgw/spool/spooltest"
)

// dumpDedupe lists dedupe_active in key order.
func dumpDedupe(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.r.Query(`SELECT hex(dedupe_key), batch, seq FROM dedupe_active ORDER BY dedupe_key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		var b, seq int64
		if err := rows.Scan(&k, &b, &seq); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(k, b, seq))
	}
	return out
}

// stageB stages recs as batch id, declaring their count at BeginBatch (as
// intake does) or not, and finalizes it; kept says whether Finalize could
// take the kept keys.
func stageB(t *testing.T, s *Store, id string, recs []spool.Record, declare int) (res spool.FinalizeResult, kept bool, err error) {
	t.Helper()
	ctx := context.Background()
	h := spooltest.Header(id, "210102", "GDZL", "2026-11")
	h.TotalCount = declare
	st, err := s.BeginBatch(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += 37 { // several Adds
		if err := st.Add(ctx, recs[i:min(i+37, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	b := *h
	b.TotalCount = len(recs)
	for _, r := range recs {
		b.TotalFen += r.AmountFen
	}
	kept = st.(*stage).kept.usable(int64(len(recs)))
	res, err = st.Finalize(ctx, &b, "test", nil)
	return res, kept, err
}

// Finalize's claim and shared-account warning from the keys the Adds kept
// (claim.go) give exactly what the SQL versions give: the same conflicts,
// the same warnings, the same dedupe_active, over random batches with
// people twice in the batch, people active in another batch, accounts
// shared by several people and accounts repeated by one person.
func TestFinalizeKeptEqualsSQL(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	var clean, refused int
	for trial := range 30 {
		var a, b []spool.Record
		for i := 1; i <= 100; i++ {
			a = append(a, spooltest.Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-11", 100))
		}
		n := 50 + rng.IntN(400)
		dupIn := rng.IntN(3) == 0    // someone twice within B
		dupCross := rng.IntN(3) == 0 // someone of A in B
		for i := 1; i <= n; i++ {
			p := fmt.Sprint("q", trial, "-", i)
			switch {
			case dupIn && rng.IntN(40) == 0 && i > 1:
				p = fmt.Sprint("q", trial, "-", 1+rng.IntN(i-1))
			case dupCross && rng.IntN(40) == 0:
				p = fmt.Sprint("p", 1+rng.IntN(100))
			}
			acct := fmt.Sprint("b", trial, "-", i)
			if rng.IntN(10) == 0 { // an account met before in the batch (shared, or the same person's)
				acct = fmt.Sprint("b", trial, "-", 1+rng.IntN(i))
			}
			b = append(b, spooltest.Rec(i, p, acct, "GDZL", "2026-11", int64(100+rng.IntN(900))))
		}
		var got [2]spool.FinalizeResult
		var dumps [2][]string
		var errs [2]error
		for k, declare := range []int{n, 0} {
			s := openTemp(t)
			if _, kept, err := stageB(t, s, "A", a, len(a)); err != nil || !kept {
				t.Fatalf("A: %v kept %v", err, kept)
			}
			var kept bool
			got[k], kept, errs[k] = stageB(t, s, "B", b, declare)
			if kept != (declare > 0) {
				t.Fatalf("trial %d: declared %d, kept keys usable %v", trial, declare, kept)
			}
			dumps[k] = dumpDedupe(t, s)
			s.Close()
		}
		if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) || !reflect.DeepEqual(got[0], got[1]) || !reflect.DeepEqual(dumps[0], dumps[1]) {
			t.Fatalf("trial %d (n %d, in-batch dup %v, cross-batch dup %v):\nkept: %+v %v\nSQL:  %+v %v\ndedupe_active equal: %v",
				trial, n, dupIn, dupCross, got[0], errs[0], got[1], errs[1], reflect.DeepEqual(dumps[0], dumps[1]))
		}
		if len(got[0].Conflicts) == 0 {
			clean++
			if len(got[0].SharedAccounts) == 0 {
				t.Fatalf("trial %d: no shared account found; the test shares some", trial)
			}
		} else {
			refused++
		}
	}
	if clean < 5 || refused < 5 {
		t.Fatalf("%d accepted and %d refused trials: the test should see both", clean, refused)
	}
}

// A stage holding more records than declared keeps nothing: Finalize reads
// the spool (and refuses the batch on its totals).
func TestKeptKeysGiveUp(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	var recs []spool.Record
	for i := 1; i <= 50; i++ {
		recs = append(recs, spooltest.Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-11", 100))
	}
	_, kept, err := stageB(t, s, "B", recs, 40)
	if kept {
		t.Fatal("kept keys usable for a stage over its declared count")
	}
	if err != nil {
		t.Fatal(err) // the stage's own totals are given to Finalize here: it is accepted from the SQL paths
	}
	if len(dumpDedupe(t, s)) != 50 {
		t.Fatal("the SQL claim did not claim the batch")
	}
}

// The kept keys live off the Go heap and are unmapped once, at Finalize or
// Abort (or by a cleanup); giving up or releasing twice is harmless.
func TestKeptKeysReleased(t *testing.T) {
	sk := newStageKeys(100)
	if sk.off || sk.mem == nil || cap(sk.keys) != 100 {
		t.Fatalf("declared 100: %+v", sk)
	}
	var recs []spool.Record
	for i := 1; i <= 100; i++ {
		recs = append(recs, spooltest.Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-11", 100))
	}
	sk.commit(sk.prepare(recs[:60]), 60)
	sk.commit(sk.prepare(recs[60:]), len(recs)-60)
	if !sk.usable(100) || sk.keys[99].seq != 100 {
		t.Fatal("kept keys do not cover the 100 records")
	}
	m := sk.mem.m
	sk.release()
	sk.release()
	sk.giveUp()
	if !sk.off || sk.keys != nil || sk.mem != nil || sk.usable(100) {
		t.Fatalf("after release: %+v", sk)
	}
	done := false
	m.once.Do(func() { done = true })
	if done {
		t.Fatal("the mapping was not unmapped")
	}
	if sk := newStageKeys(0); !sk.off || sk.mem != nil {
		t.Fatal("an undeclared stage mapped memory")
	}

	s := openTemp(t)
	defer s.Close()
	st, err := s.BeginBatch(context.Background(), &spool.Batch{BatchID: "X", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11", TotalCount: 100})
	if err != nil {
		t.Fatal(err)
	}
	kept := st.(*stage).kept
	if kept.off {
		t.Fatal("stage keeps nothing")
	}
	if err := st.Abort(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !kept.off || kept.mem != nil {
		t.Fatal("Abort left the kept keys mapped")
	}
}

// sortClaimKeys gives slices.SortFunc's order, for uniform keys as the
// HMAC gives, for keys all in one bucket, and for equal keys told apart by
// seq only.
func TestSortClaimKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, c := range []struct {
		name string
		n    int
		key  func(i int) claimKey
	}{
		{"uniform", 100_000, func(i int) claimKey { return claimKey{hi: rng.Uint64(), lo: rng.Uint64(), seq: int64(i)} }},
		{"one bucket", 20_000, func(i int) claimKey { return claimKey{hi: 0xab<<56 | rng.Uint64()>>8, lo: rng.Uint64(), seq: int64(i)} }},
		{"equal keys", 5_000, func(i int) claimKey { return claimKey{hi: uint64(i%3) << 62, lo: 7, seq: int64(rng.IntN(1000))} }},
		{"empty", 0, nil},
		{"one", 1, func(i int) claimKey { return claimKey{hi: 5} }},
	} {
		keys := make([]claimKey, c.n)
		for i := range keys {
			keys[i] = c.key(i)
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, compareKeys)
		sortClaimKeys(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("%s: not sorted as compareKeys orders", c.name)
		}
	}
}
