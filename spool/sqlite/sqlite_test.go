package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	var staged, records, packed int
	s.r.QueryRow(`SELECT count(*) FROM batches WHERE state = 'STAGING'`).Scan(&staged)
	s.r.QueryRow(`SELECT count(*) FROM records`).Scan(&records)
	s.r.QueryRow(`SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM record_packs`).Scan(&packed)
	if staged != 0 || records != 1 || packed != 1 { // the stage's pack went with it
		t.Fatalf("after reopen: %d stages, %d records, %d packed; want 0, 1, 1", staged, records, packed)
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
	_, err = s.w.Exec(`INSERT INTO records(batch, seq, id_index, account_index, dedupe_key, amount_fen, state)
		VALUES ((SELECT id FROM batches WHERE batch_id='X'), 1, x'00', x'00', ?, 1, 'PENDING')`, r.DedupeKey)
	if !isUnique(err) {
		t.Fatalf("second active record for one person accepted: %v", err)
	}
}

// dedupe_active (migration 0008) is exactly the set of active records of
// visible batches, whatever happened: refusals, cancellations, results.
func TestDedupeActiveExact(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		var missing, extra int
		if err := s.w.QueryRow(`SELECT count(*) FROM records r JOIN batches b ON b.id = r.batch
			WHERE b.state <> 'STAGING' AND r.state IN ('PENDING','SENT','PAID','UNKNOWN')
			AND NOT EXISTS (SELECT 1 FROM dedupe_active d WHERE d.dedupe_key = r.dedupe_key AND d.batch = r.batch AND d.seq = r.seq)`).Scan(&missing); err != nil {
			t.Fatal(err)
		}
		if err := s.w.QueryRow(`SELECT count(*) FROM dedupe_active d WHERE NOT EXISTS (SELECT 1 FROM records r JOIN batches b ON b.id = r.batch
			WHERE r.batch = d.batch AND r.seq = d.seq AND r.dedupe_key = d.dedupe_key AND b.state <> 'STAGING' AND r.state IN ('PENDING','SENT','PAID','UNKNOWN'))`).Scan(&extra); err != nil {
			t.Fatal(err)
		}
		if missing != 0 || extra != 0 {
			t.Fatalf("%s: %d active records without a claim, %d stale claims", when, missing, extra)
		}
	}
	var recs []spool.Record
	for i := 1; i <= 6; i++ {
		recs = append(recs, spooltest.Rec(i, fmt.Sprint("p", i), fmt.Sprint("a", i), "GDZL", "2026-11", 100))
	}
	spooltest.Submit(t, s, spooltest.Header("B1", "210102", "GDZL", "2026-11"), recs)
	check("after intake")
	res := spooltest.Submit(t, s, spooltest.Header("B2", "210102", "GDZL", "2026-11"), []spool.Record{
		spooltest.Rec(1, "p7", "a7", "GDZL", "2026-11", 100), spooltest.Rec(2, "p3", "a3", "GDZL", "2026-11", 100)})
	if len(res.Conflicts) != 1 {
		t.Fatalf("conflicts %+v", res.Conflicts)
	}
	check("after a refused batch")
	st, err := s.BeginBatch(ctx, spooltest.Header("B3", "210102", "GDZL", "2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{spooltest.Rec(1, "p8", "a8", "GDZL", "2026-11", 100)}); err != nil {
		t.Fatal(err)
	}
	check("with a stage open")
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	spooltest.Submit(t, s, spooltest.Header("B4", "210102", "GDZL", "2026-12"), []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-12", 100)})
	if err := s.TransitionBatch(ctx, "B4", spool.BatchReceived, spool.BatchCancelled, spool.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	check("after a cancel")
	if _, err := s.w.Exec(`UPDATE records SET state = 'SENT' WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B1')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE records SET state = CASE seq WHEN 2 THEN 'FAILED' WHEN 3 THEN 'UNKNOWN' ELSE 'PAID' END WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B1')`); err != nil {
		t.Fatal(err)
	}
	check("after results")
	// Outside the state machine: a FAILED record made PENDING again claims its
	// key again (and could not while someone else held it).
	spooltest.Submit(t, s, spooltest.Header("B5", "210102", "GDZL", "2026-11"), []spool.Record{spooltest.Rec(1, "p2", "a2", "GDZL", "2026-11", 100)})
	_, err = s.w.Exec(`UPDATE records SET state = 'PENDING' WHERE seq = 2 AND batch = (SELECT id FROM batches WHERE batch_id = 'B1')`)
	if !isUnique(err) {
		t.Fatalf("a FAILED record re-activated while B5 holds its person: %v", err)
	}
	if err := s.TransitionBatch(ctx, "B5", spool.BatchReceived, spool.BatchCancelled, spool.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE records SET state = 'PENDING' WHERE seq = 2 AND batch = (SELECT id FROM batches WHERE batch_id = 'B1')`); err != nil {
		t.Fatal(err)
	}
	check("after a raw re-activation")
	if _, err := s.w.Exec(`UPDATE records SET dedupe_key = x'00' WHERE seq = 1`); err == nil {
		t.Fatal("a dedupe key changed after intake")
	}
}

// The checkpointer copies a big log into the database without the writer
// stopping for it: after a large stage, the database file itself grows.
func TestCheckpointerCopiesLog(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	st := beginB1(t, s)
	big := make([]byte, 4000)
	for chunk := 0; chunk < 4; chunk++ {
		recs := make([]spool.Record, 0, 3000)
		for i := 1; i <= 3000; i++ {
			r := spooltest.Rec(chunk*3000+i, fmt.Sprint("p", chunk*3000+i), "a", "GDZL", "2026-11", 100)
			r.Remark = string(big) // ~12 MiB of log per chunk
			recs = append(recs, r)
		}
		if err := st.Add(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > checkpointAt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes: nothing checkpointed the log", fi.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// While commits keep coming, the checkpointer leaves the log alone (and says
// so); once the spool is quiet it copies it.
func TestCheckpointerWaitsForQuiet(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	s.quiet.Store(int64(2 * time.Second))
	ctx := context.Background()
	st := beginB1(t, s)
	big := string(make([]byte, 4000))
	seq := 0
	add := func(n int) {
		t.Helper()
		recs := make([]spool.Record, 0, n)
		for range n {
			seq++
			r := spooltest.Rec(seq, fmt.Sprint("p", seq), "a", "GDZL", "2026-11", 100)
			r.Remark = big
			recs = append(recs, r)
		}
		if err := st.Add(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		add(3000) // ~24 MiB of log, past checkpointAt
	}
	dbSize := func() int64 {
		fi, err := os.Stat(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	start := dbSize()
	deferred := false
	for range 15 { // 1.5 s of commits 100 ms apart: never 2 s quiet
		time.Sleep(100 * time.Millisecond)
		add(1)
		deferred = deferred || s.LogStats().Deferred
	}
	if got := dbSize(); got != start {
		t.Fatalf("database file grew from %d to %d bytes while commits kept coming", start, got)
	}
	if !deferred || s.LogStats().Copies != 0 {
		t.Fatalf("log stats while busy: %+v (deferred seen: %v)", s.LogStats(), deferred)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.LogStats().Copies == 0 { // the file grows while the copy runs
		if time.Now().After(deadline) {
			t.Fatalf("quiet spool: database file still %d bytes, log stats %+v", dbSize(), s.LogStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ls := s.LogStats(); dbSize() <= checkpointAt || ls.Deferred || ls.Time <= 0 || ls.LogBytes < checkpointAt {
		t.Fatalf("log stats after the copy: %+v", ls)
	}
}

func TestCheckpointDue(t *testing.T) {
	for _, c := range []struct {
		size  int64
		quiet time.Duration
		due   bool
	}{
		{checkpointAt - 1, time.Hour, false}, // small logs wait
		{checkpointAt, time.Second, true},
		{checkpointAt, time.Second - 1, false}, // busy
		{checkpointBusyAt - 1, 0, false},
		{checkpointBusyAt, 0, true}, // busy, but past the bound
	} {
		if got := checkpointDue(c.size, c.quiet, time.Second); got != c.due {
			t.Errorf("checkpointDue(%d, %v) = %v, want %v", c.size, c.quiet, got, c.due)
		}
	}
}

// Rows go in groups of insertGroup; a bad row inside a group is still named,
// and nothing of the chunk stays.
func TestStageAddNamesRowInGroup(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	st := beginB1(t, s)
	var recs []spool.Record
	for i := 1; i <= 3*insertGroup+5; i++ {
		recs = append(recs, spooltest.Rec(i, fmt.Sprint("p", i), "a", "GDZL", "2026-11", 100))
	}
	bad := insertGroup + 7
	recs[bad-1].Seq = 3 // seq 3 twice, inside the second group
	err := st.Add(ctx, recs)
	if !errors.Is(err, spool.ErrConflict) || !strings.Contains(err.Error(), "seq 3 twice") {
		t.Fatalf("err = %v", err)
	}
	var n int
	if err := s.w.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d records stayed (%v)", n, err)
	}
}

// A spool written before migration 0009 keeps every record's fields: they
// move to record_fields and read back the same.
// migratedTo creates a spool file as a daemon of migration version upto left
// it (the migrations 1..upto, as Open would have run them) and returns its
// path and a plain connection to it, for rows in that version's layout.
func migratedTo(t *testing.T, upto int) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spool.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= upto; v++ {
		names, _ := fs.Glob(migrations, fmt.Sprintf("migrations/%04d_*.sql", v))
		for _, name := range names {
			body, _ := migrations.ReadFile(name)
			if _, err := db.Exec(string(body)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, v)
		}
	}
	return path, db
}

// openMigrated closes the raw connection of a spool built by migratedTo and
// opens it as a Store, which applies the later migrations.
func openMigrated(t *testing.T, path string, db *sql.DB) *Store {
	t.Helper()
	db.Close()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigration0009MovesFields(t *testing.T) {
	path, db := migratedTo(t, 8)
	if _, err := db.Exec(`INSERT INTO batches(id, batch_id, tenant, bank, subsidy_code, period, state, created_at, updated_at) VALUES (1,'B1','210102','DEMO','GDZL','2026-11','RECEIVED',0,0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO records(batch, seq, name_enc, id_enc, account_enc, id_index, account_index, dedupe_key, amount_fen, remark, state)
		VALUES (1, 1, x'01', x'02', x'03', x'04', x'05', x'06', 100, '备注', 'PENDING'), (1, 2, x'11', x'12', x'13', x'14', x'15', x'16', 200, '', 'PENDING')`); err != nil {
		t.Fatal(err)
	}
	s := openMigrated(t, path, db)
	recs, err := s.Records(context.Background(), "B1", spool.RecordFilter{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("records %+v %v", recs, err)
	}
	r := recs[0]
	if string(r.NameEnc) != "\x01" || string(r.IDEnc) != "\x02" || string(r.AccountEnc) != "\x03" || r.Remark != "备注" || r.AmountFen != 100 || string(recs[1].NameEnc) != "\x11" {
		t.Fatalf("record after migration: %+v", r)
	}
	var cols int
	if err := s.w.QueryRow(`SELECT count(*) FROM pragma_table_info('records') WHERE name IN ('name_enc', 'id_enc', 'account_enc', 'remark')`).Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("records still has %d field columns (%v)", cols, err)
	}
}

// Finalize refuses a stage that does not hold what the batch declares.
func TestFinalizeChecksStageTotals(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	h := spooltest.Header("B1", "210102", "GDZL", "2026-11")
	st, err := s.BeginBatch(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, []spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100), spooltest.Rec(2, "p2", "a2", "GDZL", "2026-11", 200)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n   int
		fen int64
	}{{3, 300}, {2, 301}, {1, 300}} { // {1, 300}: seq 2 lies past the declared count, outside every block
		b := *h
		b.TotalCount, b.TotalFen = c.n, c.fen
		if _, err := st.Finalize(ctx, &b, "test", nil); err == nil || !strings.Contains(err.Error(), "stage holds 2 records, 300 fen") {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	if _, err := s.Batch(ctx, "B1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("batch visible: %v", err)
	}
}

// Finalize keeps the batch's count and fen by block of seqs; planning files
// of whole blocks adds them up, other file sizes and batches without blocks
// read the records. Every way gives the same files.
func TestPlanFromBlocks(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	const n = 2*blockSeqs + 345
	plan := func(id string, per int) []spool.Delivery {
		t.Helper()
		recs := make([]spool.Record, n)
		for i := range recs {
			recs[i] = spooltest.Rec(i+1, fmt.Sprint(id, "p", i), fmt.Sprint(id, "a", i), "GDZL", "2026-11", int64(100+i%7*13))
		}
		spooltest.Submit(t, s, spooltest.Header(id, "210102", "GDZL", "2026-11"), recs)
		if err := s.TransitionBatch(ctx, id, spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if id == "B-OLD" { // as a batch finalized before version 16
			if _, err := s.w.Exec(`DELETE FROM batch_blocks WHERE batch = (SELECT id FROM batches WHERE batch_id = ?)`, id); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := s.PlanDeliveries(ctx, id, per, func(bank string, k int64) string { return fmt.Sprint(bank, k) }, spool.Event{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	want := func(first, last int) (count int, fen int64) {
		for i := first - 1; i < last; i++ {
			count, fen = count+1, fen+int64(100+i%7*13)
		}
		return count, fen
	}
	for _, c := range []struct {
		id    string
		per   int
		files int
	}{{"B-BLOCKS", 2 * blockSeqs, 2}, {"B-ONE", blockSeqs, 3}, {"B-ODD", 700, 4}, {"B-OLD", blockSeqs, 3}} {
		ds := plan(c.id, c.per)
		if len(ds) != c.files {
			t.Fatalf("%s: %d files, want %d", c.id, len(ds), c.files)
		}
		for _, d := range ds {
			if wc, wf := want(d.FirstSeq, d.LastSeq); d.Count != wc || d.TotalFen != wf {
				t.Fatalf("%s: file %d..%d has %d records %d fen, want %d and %d", c.id, d.FirstSeq, d.LastSeq, d.Count, d.TotalFen, wc, wf)
			}
		}
	}
	var blocks int
	if err := s.r.QueryRow(`SELECT count(*) FROM batch_blocks WHERE batch = (SELECT id FROM batches WHERE batch_id = 'B-BLOCKS')`).Scan(&blocks); err != nil || blocks != 3 {
		t.Fatalf("B-BLOCKS has %d blocks (%v), want 3", blocks, err)
	}
	// The blocks are what planning reads: a block changed behind the spool's
	// back shows in the file (the test's way to see which path ran).
	recs := make([]spool.Record, n)
	for i := range recs {
		recs[i] = spooltest.Rec(i+1, fmt.Sprint("e", i), fmt.Sprint("ea", i), "GDZL", "2026-11", 100)
	}
	spooltest.Submit(t, s, spooltest.Header("B-EDIT", "210102", "GDZL", "2026-11"), recs)
	if err := s.TransitionBatch(ctx, "B-EDIT", spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE batch_blocks SET fen = fen + 1 WHERE first_seq = 1 AND batch = (SELECT id FROM batches WHERE batch_id = 'B-EDIT')`); err != nil {
		t.Fatal(err)
	}
	ds, err := s.PlanDeliveries(ctx, "B-EDIT", blockSeqs, func(bank string, k int64) string { return fmt.Sprint(bank, "E", k) }, spool.Event{Actor: "test"})
	if err != nil || ds[0].TotalFen != 100*blockSeqs+1 {
		t.Fatalf("B-EDIT's first file: %+v (%v); want the block's fen", ds, err)
	}
	// So the records' amounts must stay what the blocks summed: the spool
	// refuses to change one, whoever asks.
	if _, err := s.w.Exec(`UPDATE records SET amount_fen = amount_fen + 1 WHERE seq = 1`); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("an amount changed after intake: %v", err)
	}
	if _, err := s.w.Exec(`UPDATE records SET amount_fen = amount_fen WHERE seq = 1`); err != nil {
		t.Fatalf("an UPDATE naming the amount without changing it: %v", err)
	}
}

// A connection the pool opens later has the writer's PRAGMAs too: txRelaxed
// throws its connection away when it cannot restore synchronous=FULL.
func TestReplacedWriterConnectionKeepsPragmas(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Raw(func(any) error { return driver.ErrBadConn }) // the pool drops it
	conn.Close()
	for _, c := range []struct {
		pragma string
		want   int
	}{{"wal_autocheckpoint", 524288}, {"journal_size_limit", 67108864}, {"temp_store", 1}, {"cache_size", -16384}, {"synchronous", 2}, {"foreign_keys", 1}} {
		var got int
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil || got != c.want {
			t.Errorf("PRAGMA %s on a new writer connection = %d (%v), want %d", c.pragma, got, err, c.want)
		}
	}
}

// beginB1 opens the stage of batch B1.
func beginB1(t *testing.T, s *Store) spool.Stage {
	t.Helper()
	st, err := s.BeginBatch(context.Background(), spooltest.Header("B1", "210102", "GDZL", "2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSpoolPathWithURICharacters: a spool path holding "%", "?" or "#" opens
// that very file (SQLite reads the DSN as a URI: unescaped, "%20" would be a
// space and "?" would start the query), for the writer, the readers and the
// feedback scratch database alike.
func TestSpoolPathWithURICharacters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "a%20b?c#d.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	spooltest.Submit(t, s, spooltest.Header("URI-1", "210102", "GDZL", "2026-11"),
		[]spool.Record{spooltest.Rec(1, "p1", "a1", "GDZL", "2026-11", 100)})
	if _, err := s.Batch(ctx, "URI-1"); err != nil { // through the reader pool
		t.Fatal(err)
	}
	if _, err := s.StageFeedback(ctx, spool.Feedback{Bank: "DEMO", Name: "F", SM3: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if _, err := os.Stat(path); err != nil || len(names) != 1 {
		t.Fatalf("files %q, want only %q (%v)", names, filepath.Base(path), err)
	}
}
