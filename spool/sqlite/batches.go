package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"yktgw/spool"
)

const batchCols = `batch_id, tenant, bank, subsidy_code, subsidy_name, period, memo, total_count, total_fen, content_hash, state, warnings, submitted_by, reissue_of, body, created_at, updated_at`

func scanBatch(sc interface{ Scan(...any) error }) (*spool.Batch, error) {
	var b spool.Batch
	var created, updated int64
	var state string
	if err := sc.Scan(&b.BatchID, &b.Tenant, &b.Bank, &b.SubsidyCode, &b.SubsidyName, &b.Period, &b.Memo,
		&b.TotalCount, &b.TotalFen, &b.ContentHash, &state, &b.Warnings, &b.SubmittedBy, &b.ReissueOf, &b.Body, &created, &updated); err != nil {
		return nil, err
	}
	b.State = spool.BatchState(state)
	b.CreatedAt = time.Unix(0, created).UTC()
	b.UpdatedAt = time.Unix(0, updated).UTC()
	return &b, nil
}

func (s *Store) Batch(ctx context.Context, batchID string) (*spool.Batch, error) {
	b, err := scanBatch(s.r.QueryRowContext(ctx, `SELECT `+batchCols+` FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, batchID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: batch %q: %w", batchID, spool.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: batch: %w", err)
	}
	return b, nil
}

func (s *Store) Batches(ctx context.Context, f spool.BatchFilter) ([]spool.Batch, error) {
	var where []string
	var args []any
	where = append(where, `state <> 'STAGING'`)
	if f.State != "" {
		where = append(where, `state = ?`)
		args = append(args, string(f.State))
	}
	if f.Tenants != nil {
		var ors []string
		for _, t := range f.Tenants {
			if t == "*" {
				ors = nil
				break
			}
			ors = append(ors, `tenant LIKE ? || '%'`)
			args = append(args, t)
		}
		if ors != nil {
			where = append(where, "("+strings.Join(ors, " OR ")+")")
		} else if len(f.Tenants) == 0 {
			where = append(where, "0")
		}
	}
	if f.Before != "" {
		where = append(where, `id < (SELECT id FROM batches WHERE batch_id = ? AND state <> 'STAGING')`)
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT `+batchCols+` FROM batches WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: batches: %w", err)
	}
	defer rows.Close()
	var out []spool.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

func (s *Store) TransitionBatch(ctx context.Context, batchID string, from, to spool.BatchState, ev spool.Event) error {
	if err := spool.CheckBatch(from, to); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT id, state FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, batchID).Scan(&id, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: batch %q: %w", batchID, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if spool.BatchState(cur) != from {
			return fmt.Errorf("sqlite: batch %q is %s, not %s: %w", batchID, cur, from, spool.ErrStale)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = ?, updated_at = ? WHERE id = ?`, string(to), s.now().UnixNano(), id); err != nil {
			return err
		}
		if to == spool.BatchCancelled {
			if _, err := tx.ExecContext(ctx, `UPDATE records SET state = 'CANCELLED' WHERE batch = ? AND state = 'PENDING'`, id); err != nil {
				return err
			}
		}
		if ev.Action == "" {
			ev.Action = "batch." + strings.ToLower(string(to))
		}
		if ev.Subject == "" {
			ev.Subject = batchID
		}
		if ev.Detail == nil {
			ev.Detail = []byte(fmt.Sprintf(`{"from":%q,"to":%q}`, from, to))
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// recordCols are the columns of a spool.Record over records r and its row
// of record_fields f, if any (recordFrom); the last tells a packed record.
var recordCols = `r.seq, f.fields_enc, f.name_enc, f.id_enc, f.account_enc, r.id_index, r.account_index, r.dedupe_key, r.account_kind, r.amount_fen, coalesce(f.remark, ''), ` + stateOf("r") + `, r.reason, r.bank_code, r.bank_message, r.bank_serial, r.result_at, r.reissue_of_seq, f.seq IS NULL`

// recordFrom joins a record's changing part with its fields written once at
// intake (migration 0009), when they are not in a pack (migration 0015).
const recordFrom = `records r LEFT JOIN record_fields f ON f.batch = r.batch AND f.seq = r.seq`

// scanRecord scans recordCols (then extra) into r, taking a packed
// record's fields from its pack.
func scanRecord(ctx context.Context, sc interface{ Scan(...any) error }, packs *packReader, batch int64, r *spool.Record, extra ...any) error {
	var state string
	var at int64
	var packed bool
	if err := sc.Scan(append([]any{&r.Seq, &r.FieldsEnc, &r.NameEnc, &r.IDEnc, &r.AccountEnc, &r.IDIndex, &r.AccountIndex, &r.DedupeKey,
		&r.AccountKind, &r.AmountFen, &r.Remark, &state, &r.Reason, &r.BankCode, &r.BankMessage, &r.BankSerial, &at, &r.ReissueOfSeq, &packed}, extra...)...); err != nil {
		return err
	}
	r.State = spool.RecordState(state)
	r.ResultAt = time.Time{}
	if at != 0 {
		r.ResultAt = time.Unix(0, at).UTC()
	}
	if packed {
		return packs.fill(ctx, batch, r.Seq, &r.FieldsEnc, &r.Remark)
	}
	return nil
}

func (s *Store) batchPK(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, batchID string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, batchID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: batch %q: %w", batchID, spool.ErrNotFound)
	}
	return id, err
}

func (s *Store) Records(ctx context.Context, batchID string, f spool.RecordFilter) ([]spool.Record, error) {
	id, err := s.batchPK(ctx, s.r, batchID)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	q := `SELECT ` + recordCols + `, coalesce(rb.batch_id, ''), coalesce(rr.seq, 0) FROM ` + recordFrom + `
		LEFT JOIN records rr ON rr.reissue_of_batch = r.batch AND rr.reissue_of_seq = r.seq AND rr.reissue_of_seq > 0 AND rr.state NOT IN ('STAGED', 'CANCELLED')
		LEFT JOIN batches rb ON rb.id = rr.batch
		WHERE r.batch = ? AND r.seq > ?`
	args := []any{id, f.AfterSeq}
	switch f.State {
	case "":
	case spool.RecordPending, spool.RecordSent: // the two a SENT delivery tells apart (sentstate.go)
		q += ` AND ` + stateOf("r") + ` = ?`
		args = append(args, string(f.State))
	default:
		q += ` AND r.state = ?`
		args = append(args, string(f.State))
	}
	q += ` ORDER BY r.seq LIMIT ?`
	args = append(args, limit)
	var out []spool.Record
	err = s.readConn(ctx, func(c *sql.Conn, packs *packReader) error {
		rows, err := c.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = make([]spool.Record, 0, min(limit, 256))
		for rows.Next() {
			var r spool.Record
			if err := scanRecord(ctx, rows, packs, id, &r, &r.ReissuedByBatch, &r.ReissuedBySeq); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: records: %w", err)
	}
	return out, nil
}

func (s *Store) RecordCounts(ctx context.Context, batchID string) ([]spool.StateCount, error) {
	id, err := s.batchPK(ctx, s.r, batchID)
	if err != nil {
		return nil, err
	}
	// Effective states (sentstate.go): a PENDING row of a SENT delivery counts as SENT.
	rows, err := s.r.QueryContext(ctx, `SELECT st, n, fen FROM (`+stateCounts("b.id = ?1")+`) AS t ORDER BY st`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: record counts: %w", err)
	}
	defer rows.Close()
	var out []spool.StateCount
	for rows.Next() {
		var c spool.StateCount
		var st string
		if err := rows.Scan(&st, &c.Count, &c.Fen); err != nil {
			return nil, err
		}
		c.State = spool.RecordState(st)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ---- intake stages ----

type stage struct {
	s    *Store
	id   int64
	kept *stageKeys          // what the committed Adds wrote, for Finalize (claim.go)
	vals []driver.NamedValue // an Add's bound values, reused by the next (Adds come one at a time)
	pack []byte              // an Add's pack blobs, likewise
}

func (s *Store) BeginBatch(ctx context.Context, h *spool.BatchHeader) (spool.Stage, error) {
	now := s.now().UnixNano()
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO batches(batch_id, tenant, bank, subsidy_code, subsidy_name, period, memo, total_count, total_fen, state, submitted_by, reissue_of, body, created_at, updated_at)
			VALUES (?,?,?,?,?,?,?,?,?,'STAGING',?,?,?,?,?)`,
			h.BatchID, h.Tenant, h.Bank, h.SubsidyCode, h.SubsidyName, h.Period, h.Memo, h.TotalCount, h.TotalFen, h.SubmittedBy, h.ReissueOf, h.Body, now, now)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin batch: %w", err)
	}
	return &stage{s: s, id: id, kept: newStageKeys(h.TotalCount)}, nil
}

func (st *stage) Add(ctx context.Context, recs []spool.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// What needs no spool is done on another goroutine while the writer
	// inserts: the values of each group of rows, handed over group by group
	// in order, then the kept keys. The writer only binds and steps.
	groups := make(chan rowGroup, (len(recs)+insertGroup-1)/insertGroup+insertGroup)
	kept := make(chan *chunkKeys, 1)
	st.vals = slices.Grow(st.vals[:0], len(recs)*maxRecordValues)[:0]
	st.pack = slices.Grow(st.pack[:0], packSize(recs))[:0] // room for every pack's blob (packSize bounds them)
	used := 0
	go func(vals []driver.NamedValue, buf []byte) {
		// Packable records (all but the legacy layout) go into record_packs
		// in runs of consecutive seqs (packs.go); a pack's row goes with the
		// group its run ends in, after that group's records rows.
		open := 0 // the first record not yet in a pack or in record_fields
		pack := func(g *rowGroup) func(lo, hi int) {
			return func(lo, hi int) {
				var p []driver.NamedValue
				p, buf = packValues(recs[lo:hi], buf)
				g.packs = append(g.packs, p)
			}
		}
		for i := 0; i < len(recs); {
			n := min(insertGroup, len(recs)-i)
			if n < insertGroup {
				n = 1
			}
			var g rowGroup
			g, vals = buildRows(recs[i:i+n], vals)
			if g.legacy { // its fields go to record_fields; the run before it ends
				closeRuns(recs, open, i, true, pack(&g))
				open = i + n
			} else {
				open = closeRuns(recs, open, i+n, i+n == len(recs), pack(&g))
			}
			groups <- g
			i += n
		}
		close(groups)
		used = len(vals) // of st.vals: it has room for every value (maxRecordValues)
		kept <- st.kept.prepare(recs)
	}(st.vals, st.pack)
	err := st.s.txRelaxed(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM batches WHERE id = ?`, st.id).Scan(&state); err != nil {
			return fmt.Errorf("stage gone: %w", err)
		}
		if state != string(spool.BatchStaging) {
			return fmt.Errorf("stage already %s: %w", state, spool.ErrStale)
		}
		// Records go in as PENDING: the batch's STAGING state hides them, and
		// they claim nothing in dedupe_active until Finalize (migration 0008).
		// Reissues stay STAGED until then, out of records_reissue_once.
		// Rows go in groups of insertGroup per statement, through the
		// driver (raw.go). A record is a row of records (its changing part)
		// and a part of a pack (its fields, record_packs).
		return withRaw(conn, func(c *sqlite3.SQLiteConn) error {
			ins, err := newInserts(c, st.id)
			if err != nil {
				return err
			}
			defer ins.close()
			for g := range groups {
				inserted, err := ins.exec(g)
				switch {
				case err == nil:
				case inserted: // the records went in, their fields did not: no record is at fault
					return fmt.Errorf("fields of seq %d..%d: %w", g.recs[0].Seq, g.recs[len(g.recs)-1].Seq, err)
				case len(g.recs) == 1:
					return recordErr(g.recs[0].Seq, err)
				default:
					// The failed statement left nothing behind; redo the group a
					// row at a time to name the record at fault.
					for j := range g.recs {
						one, _ := buildRows(g.recs[j:j+1], nil)
						if _, err := ins.exec(one); err != nil {
							return recordErr(g.recs[j].Seq, err)
						}
					}
					return fmt.Errorf("seq %d..%d: %w", g.recs[0].Seq, g.recs[len(g.recs)-1].Seq, err)
				}
			}
			return nil
		})
	})
	ck := <-kept                             // the values are built too: groups is closed
	clear(st.vals[:min(used, cap(st.vals))]) // they point into the records (sealed fields)
	if err != nil {
		st.kept.giveUp() // whatever the outcome, Finalize reads the spool
		return fmt.Errorf("sqlite: stage add: %w", err)
	}
	st.kept.commit(ck, len(recs))
	return nil
}

// recordErr names the record an insert failed on (a seq given twice: ErrConflict).
func recordErr(seq int, err error) error {
	if isUnique(err) {
		return fmt.Errorf("seq %d twice: %w", seq, spool.ErrConflict)
	}
	return fmt.Errorf("seq %d: %w", seq, err)
}

const insertGroup = 32 // records per INSERT statement (7 parameters each, well under SQLite's 32766)

// inserts are a stage's prepared INSERTs into records (a record or
// insertGroup records at a time), into record_packs (a pack at a time,
// migration 0015) and, for records in the legacy three-ciphertext layout,
// into record_fields. Only what differs from record to record is bound: the
// stage's batch is a literal of the statements, a record's state follows
// from reissue_of_seq in SQL, and a record's fields and remark go in its
// pack's one blob. Every bound value is work on the single writer (copying
// it to C, binding it): 7 values a record and 3 a pack, instead of 16 a
// record.
type inserts struct {
	rec, fld, pack *multiInsert
}

func newInserts(c *sqlite3.SQLiteConn, batch int64) (*inserts, error) {
	ins := &inserts{}
	var err error
	b := strconv.FormatInt(batch, 10)
	if ins.rec, err = newMultiInsertRows(c, insertRecordsSQL, "", func(p int) string {
		return fmt.Sprintf(insertRecordsRow, b, p+1, p+2, p+3, p+4, p+5, p+6, p+7)
	}, insertRecordsCols, insertGroup); err != nil {
		return nil, err
	}
	if ins.fld, err = newMultiInsertRows(c, insertFieldsSQL, "", func(p int) string {
		return fmt.Sprintf(insertFieldsLegacyRow, b, p+1, p+2, p+3, p+4, p+5, p+6)
	}, insertFieldsLegacyCols, insertGroup); err != nil {
		ins.close()
		return nil, err
	}
	if ins.pack, err = newMultiInsertRows(c, insertPackSQL, "", func(p int) string {
		return fmt.Sprintf(`(%s,?%d,?%d,?%d)`, b, p+1, p+2, p+3)
	}, 3, 1); err != nil {
		ins.close()
		return nil, err
	}
	return ins, nil
}

func (ins *inserts) close() {
	for _, mi := range []*multiInsert{ins.rec, ins.fld, ins.pack} {
		if mi != nil {
			mi.close()
		}
	}
}

// rowGroup is the bound values of 1 or insertGroup records (buildRows),
// and of the packs whose runs end in it (Add).
type rowGroup struct {
	recs     []spool.Record
	rec, fld []driver.NamedValue // fld: only for a legacy group
	legacy   bool                // a record is in the legacy layout: the group's fields go to record_fields
	packs    [][]driver.NamedValue
}

// maxRecordValues is the most values buildRows takes for one record.
const maxRecordValues = insertRecordsCols + insertFieldsLegacyCols

// buildRows takes the values of recs out of vals's spare capacity (or new
// memory) and returns them with what is left. It touches no spool: it runs
// off the writer (Add).
func buildRows(recs []spool.Record, vals []driver.NamedValue) (rowGroup, []driver.NamedValue) {
	g := rowGroup{recs: recs}
	for i := range recs {
		if legacyLayout(recs[i].NameEnc, recs[i].IDEnc, recs[i].AccountEnc) {
			g.legacy = true
			break
		}
	}
	var a []driver.NamedValue
	add := func(v driver.Value) { a = append(a, driver.NamedValue{Ordinal: len(a) + 1, Value: v}) }
	take := func(n int) {
		if cap(vals)-len(vals) < n {
			vals = make([]driver.NamedValue, 0, n)
		}
		a = vals[len(vals):len(vals)]
	}
	take(len(recs) * insertRecordsCols)
	for i := range recs {
		r := &recs[i]
		add(int64(r.Seq))
		add(r.IDIndex)
		add(r.AccountIndex)
		add(r.DedupeKey)
		add(r.AccountKind)
		add(r.AmountFen)
		add(int64(r.ReissueOfSeq))
	}
	g.rec, vals = a, vals[:len(vals)+len(a)]
	if !g.legacy {
		return g, vals // its fields go in packs (Add)
	}
	take(len(recs) * insertFieldsLegacyCols)
	for i := range recs {
		r := &recs[i]
		add(int64(r.Seq))
		add(blob(r.FieldsEnc))
		add(blob(r.NameEnc))
		add(blob(r.IDEnc))
		add(blob(r.AccountEnc))
		add(r.Remark)
	}
	g.fld, vals = a, vals[:len(vals)+len(a)]
	return g, vals
}

// exec inserts a group's rows: records, then its fields (legacy) or the
// packs that end in it. inserted tells that the records rows went in (a
// failure after them is not a record's to name).
func (ins *inserts) exec(g rowGroup) (inserted bool, err error) {
	if err := ins.rec.exec(g.rec); err != nil {
		return false, err
	}
	if g.legacy {
		if err := ins.fld.exec(g.fld); err != nil {
			return true, err
		}
	}
	for _, p := range g.packs {
		if err := ins.pack.exec(p); err != nil {
			return true, err
		}
	}
	return true, nil
}

// The rows of the inserts: %s is the stage's batch, %d the numbers of the
// bound parameters. A record goes in PENDING, or STAGED when it reissues a
// failed record (it claims nothing until Finalize; records_reissue_once).
const (
	insertRecordsSQL       = `INSERT INTO records(batch, seq, id_index, account_index, dedupe_key, account_kind, amount_fen, reissue_of_seq, state) VALUES `
	insertRecordsRow       = `(%s,?%d,?%d,?%d,?%d,?%d,?%d,?%[8]d,CASE WHEN ?%[8]d > 0 THEN 'STAGED' ELSE 'PENDING' END)`
	insertRecordsCols      = 7
	insertFieldsSQL        = `INSERT INTO record_fields(batch, seq, fields_enc, remark, name_enc, id_enc, account_enc) VALUES `
	insertFieldsLegacyRow  = `(%s,?%d,?%d,?%[7]d,?%[4]d,?%[5]d,?%[6]d)`
	insertFieldsLegacyCols = 6
)

// blob is b, or an empty blob for nil: a record carries its fields in one
// layout (migration 0014), and the columns of the other are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return noBytes
	}
	return b
}

var noBytes = []byte{}

func (st *stage) Abort(ctx context.Context) error {
	st.kept.release()
	// Use a fresh context: an abort usually follows a cancelled request.
	ctx = context.WithoutCancel(ctx)
	return st.s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ? AND state = 'STAGING'`, st.id)
		return err
	})
}

func (st *stage) Finalize(ctx context.Context, b *spool.Batch, actor string, warnings func(spool.FinalizeResult) []byte) (spool.FinalizeResult, error) {
	var res spool.FinalizeResult
	defer st.kept.release() // after the shared-account read has stopped (deferred below)
	shared := st.startSharedAccounts(ctx)
	defer shared.cancel()
	err := st.s.txConn(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM batches WHERE id = ?`, st.id).Scan(&state); err != nil {
			return fmt.Errorf("stage gone: %w", err)
		}
		if state != string(spool.BatchStaging) {
			return fmt.Errorf("stage already %s: %w", state, spool.ErrStale)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, b.BatchID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ?`, st.id); err != nil {
				return err
			}
			return fmt.Errorf("batch %q exists: %w", b.BatchID, spool.ErrConflict)
		}
		var reissuePK int64
		if b.ReissueOf != "" {
			err := tx.QueryRowContext(ctx, `SELECT id FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, b.ReissueOf).Scan(&reissuePK)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE records SET reissue_of_batch = ? WHERE batch = ? AND reissue_of_seq > 0`, reissuePK, st.id); err != nil {
				return err
			}
		}
		var err error
		if res, err = st.guards(ctx, conn, tx, b, reissuePK, shared); err != nil {
			return err
		}
		if len(res.Conflicts) > 0 {
			_, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE id = ?`, st.id)
			return err
		}
		if warnings != nil {
			b.Warnings = warnings(res)
		}
		now := st.s.now()
		_, err = tx.ExecContext(ctx, `UPDATE batches SET batch_id=?, tenant=?, bank=?, subsidy_code=?, subsidy_name=?, period=?, memo=?,
			total_count=?, total_fen=?, content_hash=?, warnings=?, submitted_by=?, reissue_of=?, state='RECEIVED', updated_at=? WHERE id = ?`,
			b.BatchID, b.Tenant, b.Bank, b.SubsidyCode, b.SubsidyName, b.Period, b.Memo, b.TotalCount, b.TotalFen,
			b.ContentHash, b.Warnings, b.SubmittedBy, b.ReissueOf, now.UnixNano(), st.id)
		if isUnique(err) {
			return fmt.Errorf("batch %q exists: %w", b.BatchID, spool.ErrConflict)
		}
		if err != nil {
			return err
		}
		return st.s.appendAudit(ctx, tx, spool.Event{Actor: actor, Action: "batch.received", Subject: b.BatchID,
			Detail: []byte(fmt.Sprintf(`{"tenant":%q,"bank":%q,"subsidy":%q,"period":%q,"count":%d,"total_fen":%d}`,
				b.Tenant, b.Bank, b.SubsidyCode, b.Period, b.TotalCount, b.TotalFen))})
	})
	if err != nil {
		return spool.FinalizeResult{}, fmt.Errorf("sqlite: finalize: %w", err)
	}
	return res, nil
}

// guards runs the duplicate checks of a stage inside the finalize transaction,
// so no other batch can slip in between check and commit.
func (st *stage) guards(ctx context.Context, conn *sql.Conn, tx *sql.Tx, b *spool.Batch, reissuePK int64, shared *sharedScan) (spool.FinalizeResult, error) {
	var res spool.FinalizeResult
	// A stage's reissues are its STAGED records (Add stages a record with
	// reissue_of_seq > 0 as STAGED, every other one as PENDING), and
	// records_staged says at once whether there is any. Without one, the
	// reissue guard and the UPDATE below can find nothing; each would still
	// read the whole batch.
	var reissues int
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM records INDEXED BY records_staged WHERE batch = ? AND state = 'STAGED')`, st.id).Scan(&reissues); err != nil {
		return res, err
	}
	if reissues != 0 {
		if err := st.reissueGuard(ctx, tx, reissuePK, &res); err != nil || len(res.Conflicts) > 0 {
			return res, err
		}
	}
	// The stage must hold exactly what the submission declared and intake
	// counted: a lost or doubled chunk must never become a batch. It is read
	// back on a reader connection while this one claims: the stage's rows
	// are committed, and nothing writes them any more (its Adds are over;
	// only they write a stage). The totals are checked below, before
	// anything of the claim counts.
	readBack := make(chan blockTotals, 1)
	go func() { readBack <- readBlockTotals(ctx, st.s.r, st.id, b.TotalCount) }()
	declared := int64(b.TotalCount)
	// Money rule 4: claim every person's (subsidy, period) key at once, in key
	// order (one pass over the B-tree instead of a random insert per record).
	// A key already held, by another batch or earlier in this one, is not
	// claimed; fewer claims than records means a duplicate, found below.
	// The keys come sorted from what the Adds wrote when they cover the
	// stage exactly (claim.go), else from SQLite's sort of the batch.
	var claimed int64
	var err error
	if st.kept.usable(declared) { // and staged == declared, checked below
		claimed, err = st.kept.claimSorted(conn, st.id)
	} else {
		var claim sql.Result
		claim, err = tx.ExecContext(ctx, `INSERT INTO dedupe_active(dedupe_key, batch, seq)
			SELECT dedupe_key, batch, seq FROM records WHERE batch = ? ORDER BY dedupe_key, seq
			ON CONFLICT(dedupe_key) DO NOTHING`, st.id)
		if err == nil {
			claimed, err = claim.RowsAffected()
		}
	}
	rb := <-readBack // waited for even after a failed claim: it uses a reader connection and ctx
	if err != nil {
		return res, err
	}
	if rb.err != nil {
		return res, rb.err
	}
	staged, stagedFen := rb.count, rb.fen
	if staged != declared || stagedFen != b.TotalFen {
		return res, fmt.Errorf("stage holds %d records, %d fen; the batch says %d records, %d fen", staged, stagedFen, b.TotalCount, b.TotalFen)
	}
	if err := rb.store(ctx, tx, st.id); err != nil {
		return res, err
	}
	if claimed != staged {
		if err := st.duplicates(ctx, tx, &res); err != nil {
			return res, err
		}
		if len(res.Conflicts) == 0 { // a claim failed yet no duplicate shows: never accept that
			return res, fmt.Errorf("money rule 4: %d of %d records claimed, no duplicate found: %w", claimed, staged, spool.ErrConflict)
		}
	}
	sort.SliceStable(res.Conflicts, func(i, j int) bool { return res.Conflicts[i].Seq < res.Conflicts[j].Seq })
	if len(res.Conflicts) > 0 {
		return res, nil
	}
	if res.SharedAccounts, err = shared.wait(); err != nil {
		return res, err
	}
	if shared.fromKept && !st.kept.usable(staged) { // the filter did not see every record: ask the spool
		if res.SharedAccounts, err = sharedAccounts(ctx, st.s.r, st.id); err != nil {
			return res, err
		}
	}
	if err := st.previouslyFailed(ctx, tx, staged, &res); err != nil {
		return res, err
	}
	return res, st.badAccounts(ctx, tx, &res)
}

// blockSeqs is the number of seqs a batch_blocks row covers.
const blockSeqs = 1000

// blockTotals is a stage's count and fen, read back from its records block
// by block over seqs 1..declared, plus whatever lies outside that range
// (which the totals check then refuses).
type blockTotals struct {
	count, fen int64
	blocks     []blockTotal
	err        error
}

type blockTotal struct {
	first      int
	count, fen int64
}

// readBlockTotals reads a stage's blockTotals through db.
func readBlockTotals(ctx context.Context, db *sql.DB, batch int64, declared int) (bt blockTotals) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return blockTotals{err: err}
	}
	defer conn.Close()
	// One read transaction: the blocks and the rest are one snapshot.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return blockTotals{err: err}
	}
	defer tx.Rollback()
	sel, err := tx.PrepareContext(ctx, `SELECT count(*), coalesce(sum(amount_fen), 0) FROM records WHERE batch = ? AND seq BETWEEN ? AND ?`)
	if err != nil {
		return blockTotals{err: err}
	}
	defer sel.Close()
	for first := 1; first <= declared; first += blockSeqs {
		b := blockTotal{first: first}
		if err := sel.QueryRowContext(ctx, batch, first, min(first+blockSeqs-1, declared)).Scan(&b.count, &b.fen); err != nil {
			return blockTotals{err: err}
		}
		bt.blocks = append(bt.blocks, b)
		bt.count, bt.fen = bt.count+b.count, bt.fen+b.fen
	}
	var n, f int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(amount_fen), 0) FROM records WHERE batch = ? AND (seq < 1 OR seq > ?)`,
		batch, max(declared, 0)).Scan(&n, &f); err != nil {
		return blockTotals{err: err}
	}
	bt.count, bt.fen = bt.count+n, bt.fen+f
	return bt
}

// store keeps the blocks' totals in batch_blocks for PlanDeliveries.
func (bt *blockTotals) store(ctx context.Context, tx *sql.Tx, batch int64) error {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO batch_blocks(batch, first_seq, count, fen) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, b := range bt.blocks {
		if _, err := ins.ExecContext(ctx, batch, b.first, b.count, b.fen); err != nil {
			return err
		}
	}
	return nil
}

// sharedScan finds a stage's shared accounts (sharedAccounts) on a reader
// connection while Finalize's transaction runs on the writer: a sort of the
// whole batch by account, which thus takes the other core instead of adding
// to the claim's. It reads only what Add committed and what nothing changes
// after (account and ID indexes, seqs), so its answer is the transaction's.
type sharedScan struct {
	stop     context.CancelFunc
	done     chan struct{}
	accounts []spool.SharedAccount
	err      error
	fromKept bool // read only the accounts the stage's filter may have seen twice
}

func (st *stage) startSharedAccounts(ctx context.Context) *sharedScan {
	ctx, stop := context.WithCancel(ctx)
	sc := &sharedScan{stop: stop, done: make(chan struct{}), fromKept: !st.kept.off}
	go func() {
		defer close(sc.done)
		if sc.fromKept {
			sc.accounts, sc.err = sharedFromCandidates(ctx, st.s.r, st.id, st.kept.cand)
			return
		}
		sc.accounts, sc.err = sharedAccounts(ctx, st.s.r, st.id)
	}()
	return sc
}

// wait returns the scan's findings.
func (sc *sharedScan) wait() ([]spool.SharedAccount, error) {
	<-sc.done
	return sc.accounts, sc.err
}

// cancel stops the scan if it still runs and waits until it has.
func (sc *sharedScan) cancel() {
	sc.stop()
	<-sc.done
}

// sharedAccounts finds the accounts shared by different ID numbers in a
// batch (a warning). (min <> max says "more than one ID" without
// count(DISTINCT)'s per-group ephemeral table: 2.3 s -> 1.4 s at 1,000,000
// records.)
func sharedAccounts(ctx context.Context, db *sql.DB, batch int64) ([]spool.SharedAccount, error) {
	rows, err := db.QueryContext(ctx, `SELECT account_index, group_concat(seq) FROM records WHERE batch = ? GROUP BY account_index HAVING min(id_index) <> max(id_index)`, batch)
	if err != nil {
		return nil, err
	}
	var out []spool.SharedAccount
	for rows.Next() {
		var idx []byte
		var seqs string
		if err := rows.Scan(&idx, &seqs); err != nil {
			rows.Close()
			return nil, err
		}
		var sa spool.SharedAccount
		for _, p := range strings.Split(seqs, ",") {
			if v, err := strconv.Atoi(p); err == nil {
				sa.Seqs = append(sa.Seqs, v)
			}
		}
		sort.Ints(sa.Seqs)
		out = append(out, sa)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seqs[0] < out[j].Seqs[0] })
	return out, nil
}

// previouslyFailed warns of people who had a FAILED record for this
// subsidy and period in another batch (a reissue names its record; it is not
// warned of). It runs after a full claim: every record of the batch (staged
// of them) then holds its own key in dedupe_active.
//
// Of the two ways to find them it takes the one with fewer lookups: for
// each record of the batch, the FAILED ones of its key (records_dedupe_failed);
// or, when fewer records are FAILED in the whole spool, for each of those,
// the batch's record of its key (dedupe_active). None FAILED: nothing to find.
func (st *stage) previouslyFailed(ctx context.Context, tx *sql.Tx, staged int64, res *spool.FinalizeResult) error {
	var failed int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM records INDEXED BY records_dedupe_failed WHERE state = 'FAILED' LIMIT ?)`, staged).Scan(&failed); err != nil {
		return err
	}
	if failed == 0 {
		return nil
	}
	q := `SELECT DISTINCT n.seq FROM records n JOIN records o ON o.dedupe_key = n.dedupe_key AND o.state = 'FAILED'
		WHERE n.batch = ?1 AND o.batch <> ?1 AND n.reissue_of_seq = 0 ORDER BY n.seq`
	if failed < staged {
		q = `SELECT DISTINCT n.seq FROM records o INDEXED BY records_dedupe_failed
			JOIN dedupe_active d ON d.dedupe_key = o.dedupe_key AND d.batch = ?1
			JOIN records n ON n.batch = d.batch AND n.seq = d.seq
			WHERE o.state = 'FAILED' AND o.batch <> ?1 AND n.reissue_of_seq = 0 ORDER BY n.seq`
	}
	rows, err := tx.QueryContext(ctx, q, st.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq int
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return err
		}
		res.PreviouslyFailed = append(res.PreviouslyFailed, seq)
	}
	rows.Close()
	return rows.Err()
}

// badAccounts warns of accounts a bank reported closed, dormant, frozen ...
// before. With none reported there is nothing to look up.
func (st *stage) badAccounts(ctx context.Context, tx *sql.Tx, res *spool.FinalizeResult) error {
	var any int
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM bad_accounts)`).Scan(&any); err != nil || any == 0 {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.seq, b.reason FROM records r JOIN bad_accounts b ON b.account_index = r.account_index
		WHERE r.batch = ? ORDER BY r.seq`, st.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var sr spool.SeqReason
		if err := rows.Scan(&sr.Seq, &sr.Reason); err != nil {
			rows.Close()
			return err
		}
		res.BadAccounts = append(res.BadAccounts, sr)
	}
	rows.Close()
	return rows.Err()
}

// reissueGuard checks a stage's reissues (money rule 6: a reissue pays again
// only a FAILED record, and only once) and, if none conflicts, makes them
// PENDING; conflicts go to res.
func (st *stage) reissueGuard(ctx context.Context, tx *sql.Tx, reissuePK int64, res *spool.FinalizeResult) error {
	// Money rule 6: a reissue pays again only a FAILED record, and only once.
	rows, err := tx.QueryContext(ctx, `SELECT n.seq, n.reissue_of_seq, coalesce(o.state, ''),
		(SELECT count(*) FROM records x WHERE x.reissue_of_batch = n.reissue_of_batch AND x.reissue_of_seq = n.reissue_of_seq
		   AND x.state NOT IN ('STAGED','CANCELLED')),
		(SELECT count(*) FROM records y WHERE y.batch = n.batch AND y.reissue_of_seq = n.reissue_of_seq AND y.seq < n.seq)
		FROM records n LEFT JOIN records o ON o.batch = ? AND o.seq = n.reissue_of_seq
		WHERE n.batch = ? AND n.reissue_of_seq > 0 ORDER BY n.seq`, reissuePK, st.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq, orig, already, earlier int
		var state string
		if err := rows.Scan(&seq, &orig, &state, &already, &earlier); err != nil {
			rows.Close()
			return err
		}
		c := spool.Conflict{Seq: seq, OtherSeq: orig, OtherState: spool.RecordState(state)}
		switch {
		case state == "":
			c.Kind = "reissue_unknown"
		case state != string(spool.RecordFailed):
			c.Kind = "reissue_not_failed"
		case already > 0 || earlier > 0:
			c.Kind = "reissue_twice"
		default:
			continue
		}
		res.Conflicts = append(res.Conflicts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(res.Conflicts) > 0 {
		return nil
	}
	// Reissues leave STAGED (records_reissue_once now counts them).
	if _, err := tx.ExecContext(ctx, `UPDATE records INDEXED BY records_staged SET state = 'PENDING' WHERE batch = ? AND state = 'STAGED'`, st.id); err != nil {
		if isUnique(err) { // the reissue guard above saw no conflict, so this is a bug: refuse loudly
			return fmt.Errorf("money rule 6 backstop fired: %w", spool.ErrConflict)
		}
		return err
	}
	return nil
}

// duplicates explains a failed claim: the same person twice within the batch
// (every occurrence after the first is refused), and people already PENDING,
// SENT, PAID or UNKNOWN in another batch.
func (st *stage) duplicates(ctx context.Context, tx *sql.Tx, res *spool.FinalizeResult) error {
	rows, err := tx.QueryContext(ctx, `SELECT group_concat(seq) FROM records WHERE batch = ? GROUP BY dedupe_key HAVING count(*) > 1`, st.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var list string
		if err := rows.Scan(&list); err != nil {
			rows.Close()
			return err
		}
		var seqs []int
		for _, p := range strings.Split(list, ",") {
			if v, err := strconv.Atoi(p); err == nil {
				seqs = append(seqs, v)
			}
		}
		sort.Ints(seqs)
		for _, seq := range seqs[1:] {
			res.Conflicts = append(res.Conflicts, spool.Conflict{Seq: seq, Kind: "in_batch", OtherSeq: seqs[0], OtherState: spool.RecordStaged})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.QueryContext(ctx, `SELECT n.seq, b.batch_id, o.seq, `+stateOf("o")+` FROM records n
		JOIN dedupe_active d ON d.dedupe_key = n.dedupe_key AND d.batch <> n.batch
		JOIN records o ON o.batch = d.batch AND o.seq = d.seq
		JOIN batches b ON b.id = d.batch
		WHERE n.batch = ? ORDER BY n.seq`, st.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c spool.Conflict
		var state string
		if err := rows.Scan(&c.Seq, &c.OtherBatch, &c.OtherSeq, &state); err != nil {
			rows.Close()
			return err
		}
		c.Kind = "cross_batch"
		c.OtherState = spool.RecordState(state)
		res.Conflicts = append(res.Conflicts, c)
	}
	rows.Close()
	return rows.Err()
}
