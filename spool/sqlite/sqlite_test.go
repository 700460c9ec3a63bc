package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"yktgw/spool"
	"yktgw/spool/spooltest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	spooltest.Run(t, func(t *testing.T) spool.Store { return openTemp(t) })
}

func TestReopenRemovesStagesAndKeepsBatches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	spooltest.Submit(t, s, spooltest.Header("KEEP", "210102", "GDZL", "2026-11"), []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	st, err := s.BeginBatch(ctx, spooltest.Header("CUT", "210102", "GDZL", "2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{spooltest.Rec(1, "p2", "a2", "GDZL", "2026-11", 100)}); err != nil {
		t.Fatal(err)
	}
	s.Close() // as if the process died mid-upload

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var staged, records int
	s.r.QueryRow(`SELECT count(*) FROM batches WHERE state = 'STAGING'`).Scan(&staged)
	s.r.QueryRow(`SELECT count(*) FROM records`).Scan(&records)
	if staged != 0 || records != 1 {
		t.Fatalf("after reopen: %d stages, %d records; want 0, 1", staged, records)
	}
	if _, err := s.Batch(ctx, "KEEP"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Batch(ctx, "CUT"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("cut batch: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v < 1 {
		t.Fatalf("schema version %d %v", v, err)
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	var mode string
	var sync, fk int
	s.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync)
	s.w.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	// A stage's relaxed commits leave the connection at FULL for everything else.
	spooltest.Submit(t, s, spooltest.Header("P1", "210102", "GDZL", "2026-11"), []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync)
	if mode != "wal" || sync != 2 || fk != 1 {
		t.Fatalf("journal_mode=%s synchronous=%d foreign_keys=%d; want wal, 2 (FULL), 1", mode, sync, fk)
	}
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool file mode %v %v", fi.Mode(), err)
	}
}

// The unique index is a backstop for money rule 4 even if a caller bypasses Finalize's guards.
func TestDedupeBackstop(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	spooltest.Submit(t, s, spooltest.Header("B1", "210102", "GDZL", "2026-11"), []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	spooltest.Submit(t, s, spooltest.Header("B2", "210102", "GDZL", "2026-12"), []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	// B2's record carries the 2026-11 dedupe key but the header says 2026-12: the guard
	// refuses it, so nothing of B2 is there.
	if _, err := s.Batch(context.Background(), "B2"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("B2: %v", err)
	}
	_, err := s.w.Exec(`UPDATE records SET state = 'PENDING' WHERE seq = 1 AND batch = (SELECT id FROM batches WHERE batch_id = 'B1')`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.w.Exec(`INSERT INTO batches(batch_id, tenant, bank, subsidy_code, period, state, created_at, updated_at) VALUES ('X','1','DEMO','GDZL','2026-11','RECEIVED',0,0)`)
	if err != nil {
		t.Fatal(err)
	}
	r := spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)
	_, err = s.w.Exec(`INSERT INTO records(batch, seq, name_enc, id_enc, account_enc, id_index, account_index, dedupe_key, amount_fen, state)
		VALUES ((SELECT id FROM batches WHERE batch_id='X'), 1, x'00', x'00', x'00', x'00', x'00', ?, 1, 'PENDING')`, r.DedupeKey)
	if !isUnique(err) {
		t.Fatalf("second active record for one person accepted: %v", err)
	}
}
