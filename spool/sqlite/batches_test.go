package sqlite

import (
	"fmt"
	"testing"

	"yktgw/spool"
	"yktgw/spool/spooltest"
)

// Finalize's warnings: people who failed before in another batch, whichever
// way previouslyFailed looks them up (fewer FAILED records in the spool than
// in the batch, or more), accounts a bank reported bad, and none of either
// when the spool has no FAILED record and no bad account.
func TestFinalizeWarnings(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	rec := func(seq int, p, a string) spool.Record { return spooltest.Rec(seq, p, a, "GDZL", "2026-11", 100) }
	var b1 []spool.Record
	for i := 1; i <= 6; i++ {
		b1 = append(b1, rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i)))
	}
	res := spooltest.Submit(t, s, spooltest.Header("B1", "210102", "GDZL", "2026-11"), b1)
	if res.PreviouslyFailed != nil || res.BadAccounts != nil {
		t.Fatalf("B1 on an empty spool: %+v", res)
	}
	// p2 and p3 failed; a bank reported a5 closed.
	for _, q := range []string{
		`UPDATE records SET state = 'SENT' WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B1')`,
		`UPDATE records SET state = CASE WHEN seq IN (2, 3) THEN 'FAILED' ELSE 'PAID' END WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B1')`,
	} {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.Exec(`INSERT INTO bad_accounts(account_index, reason, bank, at) VALUES (?, 'closed', 'DEMO', 0)`, rec(0, "", "a5").AccountIndex); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id     string
		recs   []spool.Record
		failed string
		bad    string
	}{
		// 2 FAILED in the spool, 4 records: looked up from the FAILED ones.
		{"B2", []spool.Record{rec(1, "p7", "a7"), rec(2, "p2", "a2"), rec(3, "p8", "a5"), rec(4, "p3", "a9")}, "[2 4]", "[{3 closed}]"},
		// 2 FAILED, 1 record: looked up from the batch's records.
		{"B3", []spool.Record{rec(1, "p2", "a5")}, "[1]", "[{1 closed}]"},
		{"B4", []spool.Record{rec(1, "p9", "a1")}, "[]", "[]"},
	} {
		// B2 and B3 both hold p2 (B3 is refused as long as B2 does).
		if c.id == "B3" {
			if _, err := s.w.Exec(`UPDATE records SET state = 'CANCELLED' WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B2')`); err != nil {
				t.Fatal(err)
			}
		}
		res := spooltest.Submit(t, s, spooltest.Header(c.id, "210102", "GDZL", "2026-11"), c.recs)
		if len(res.Conflicts) > 0 {
			t.Fatalf("%s: conflicts %+v", c.id, res.Conflicts)
		}
		if got := fmt.Sprint(append([]int{}, res.PreviouslyFailed...)); got != c.failed {
			t.Errorf("%s: previously failed %s, want %s", c.id, got, c.failed)
		}
		if got := fmt.Sprint(append([]spool.SeqReason{}, res.BadAccounts...)); got != c.bad {
			t.Errorf("%s: bad accounts %s, want %s", c.id, got, c.bad)
		}
	}
}
