package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"

	"yktgw/spool"
)

// ---- feedback ----

func (s *Store) FeedbackByDigest(ctx context.Context, bank string, sm3 []byte) (*spool.FeedbackFile, error) {
	var f spool.FeedbackFile
	var delivery sql.NullInt64
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT id, bank, name, size, sm3, state, delivery, bank_batch_no, detail, at FROM feedback_files
		WHERE bank = ? AND sm3 = ? ORDER BY CASE state WHEN 'APPLIED' THEN 0 WHEN 'ANOMALY' THEN 1 ELSE 2 END, id LIMIT 1`, bank, sm3).
		Scan(&f.ID, &f.Bank, &f.Name, &f.Size, &f.SM3, &f.State, &delivery, &f.BankBatchNo, &f.Detail, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: feedback file: %w", spool.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: feedback file: %w", err)
	}
	f.DeliveryID = delivery.Int64
	f.At = unixOrZero(at)
	return &f, nil
}

const maxAnomalies = 100

type anomalies struct {
	list []spool.Anomaly
	more int
}

func (a *anomalies) add(seq int, kind, msg string) {
	if len(a.list) >= maxAnomalies {
		a.more++
		return
	}
	a.list = append(a.list, spool.Anomaly{Seq: seq, Kind: kind, Message: msg})
}

func (a *anomalies) summary() string {
	var b strings.Builder
	for i, x := range a.list {
		if i == 5 {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if x.Seq > 0 {
			fmt.Fprintf(&b, "seq %d: ", x.Seq)
		}
		b.WriteString(x.Kind + ": " + x.Message)
	}
	if n := len(a.list) + a.more; n > 5 {
		fmt.Fprintf(&b, "; and %d more", n-5)
	}
	return b.String()
}

// ApplyFeedback applies one return file, all or nothing.
//
// The common case (every line names a record of the delivery that waits for
// the bank's word, with the amount we sent, and the file covers the whole
// delivery) takes one pass: the lines are staged in a temporary table, one
// UPDATE moves exactly the records that pass every check, and the counts and
// sums are compared with what we sent. If anything at all does not add up,
// that transaction is rolled back and the file is checked again line by line
// (applyChecked, with the lines kept in memory) to name every anomaly; a file
// with an anomaly changes nothing.
func (s *Store) ApplyFeedback(ctx context.Context, f spool.Feedback, produce func(add func(spool.ResultRow) error) error) (spool.ApplyResult, error) {
	var res spool.ApplyResult
	var an anomalies
	now := s.now().UnixNano()
	var fa fastAttempt
	err := s.fastApply(ctx, f, now, &res, &an, produce, &fa)
	if fa.slow && err == nil {
		if feedbackCheckedHook != nil {
			feedbackCheckedHook(f.Name)
		}
		res = spool.ApplyResult{}
		an = anomalies{}
		replay := func(add func(spool.ResultRow) error) error {
			for _, r := range fa.kept {
				if err := add(r); err != nil {
					return err
				}
			}
			return fa.perr
		}
		err = s.tx(ctx, func(tx *sql.Tx) error { return s.applyChecked(ctx, tx, f, now, &res, &an, replay) })
	}
	if errors.Is(err, errAnomaly) {
		res.Anomalies = an.list
		detail := an.summary()
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var delivery any
			if res.DeliveryID != 0 {
				delivery = res.DeliveryID
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO feedback_files(bank, name, size, sm3, state, delivery, bank_batch_no, detail, at) VALUES (?,?,?,?,'ANOMALY',?,?,?,?)`,
				f.Bank, f.Name, f.Size, f.SM3, delivery, f.BankBatchNo, detail, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) VALUES (?,?,?,?,?,?)`,
				now, "feedback_anomaly", f.Bank, res.BatchID, res.DeliveryID, f.Name+": "+detail); err != nil {
				return err
			}
			return s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "feedback.refused", Subject: f.Name, Reason: detail})
		})
	}
	if err != nil {
		return res, fmt.Errorf("sqlite: apply feedback %s: %w", f.Name, err)
	}
	return res, nil
}

// feedbackCheckedHook, when set (tests), is called whenever a file is
// checked line by line after the one-pass attempt found something wrong;
// feedbackStagedHook whenever the one-pass attempt reads staged lines.
var feedbackCheckedHook, feedbackStagedHook func(name string)

// feedbackDelivery is the delivery a return file answers.
type feedbackDelivery struct {
	id, batchPK         int64
	batchID, batchState string
	first, last, count  int
	total               int64
	state               string
}

// sent says whether the delivery went out: then its records stored PENDING
// are SENT and wait for the bank's word (sentstate.go). A file answering a
// delivery that did not go out (or whose sending is unsettled) finds them
// PENDING, not sent.
func (d feedbackDelivery) sent() bool { return d.state == string(spool.DeliverySent) }

// feedbackStart does what every attempt does first: a return file whose
// bytes were applied before is a duplicate (recorded once more under a new
// name), and the file's bank batch number must name a delivery. done is true
// when there is nothing more to do.
func (s *Store) feedbackStart(ctx context.Context, tx *sql.Tx, f spool.Feedback, now int64, res *spool.ApplyResult, an *anomalies) (d feedbackDelivery, done bool, err error) {
	var prior int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM feedback_files WHERE bank = ? AND sm3 = ? AND state = 'APPLIED'`, f.Bank, f.SM3).Scan(&prior); err != nil {
		return d, false, err
	}
	if prior > 0 {
		res.Duplicate = true
		var same int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM feedback_files WHERE bank = ? AND sm3 = ? AND name = ?`, f.Bank, f.SM3, f.Name).Scan(&same); err != nil {
			return d, false, err
		}
		if same == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO feedback_files(bank, name, size, sm3, state, bank_batch_no, detail, at) VALUES (?,?,?,?,'DUPLICATE',?,?,?)`,
				f.Bank, f.Name, f.Size, f.SM3, f.BankBatchNo, "same bytes as an applied file", now); err != nil {
				return d, false, err
			}
			return d, true, s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "feedback.duplicate", Subject: f.Name, Detail: []byte(fmt.Sprintf(`{"bank":%q}`, f.Bank))})
		}
		return d, true, nil
	}
	err = tx.QueryRowContext(ctx, `SELECT d.id, d.batch, b.batch_id, b.state, d.first_seq, d.last_seq, d.count, d.total_fen, d.state
		FROM deliveries d JOIN batches b ON b.id = d.batch WHERE d.bank = ? AND d.bank_batch_no = ?`, f.Bank, f.BankBatchNo).
		Scan(&d.id, &d.batchPK, &d.batchID, &d.batchState, &d.first, &d.last, &d.count, &d.total, &d.state)
	if errors.Is(err, sql.ErrNoRows) {
		an.add(0, "unknown_batch_no", fmt.Sprintf("no delivery with bank batch number %q", f.BankBatchNo))
		return d, false, errAnomaly
	}
	if err != nil {
		return d, false, err
	}
	res.DeliveryID, res.BatchID = d.id, d.batchID
	// The file's lines: fbl holds what differs per line, fbk each distinct
	// outcome (paid or not, reason, code, message: a handful per file), fb
	// shows them joined.
	for _, q := range []string{
		`CREATE TEMP TABLE IF NOT EXISTS fbk (k INTEGER PRIMARY KEY, paid INTEGER NOT NULL, reason TEXT NOT NULL, code TEXT NOT NULL, msg TEXT NOT NULL)`,
		`CREATE TEMP TABLE IF NOT EXISTS fbl (seq INTEGER PRIMARY KEY, k INTEGER NOT NULL, fen INTEGER NOT NULL, serial TEXT NOT NULL)`,
		`CREATE TEMP VIEW IF NOT EXISTS fb AS SELECT l.seq AS seq, k.paid AS paid, l.fen AS fen, k.reason AS reason, k.code AS code, k.msg AS msg, l.serial AS serial
			FROM fbl l JOIN fbk k ON k.k = l.k`,
		`DELETE FROM fbl`,
		`DELETE FROM fbk`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return d, false, err
		}
	}
	return d, false, nil
}

// fastAttempt is what the one-pass attempt leaves for the line-by-line
// check: slow says it is needed, kept holds the lines as produced (produce
// is called once) and perr produce's own error, replayed after them.
type fastAttempt struct {
	slow bool
	kept []spool.ResultRow
	perr error
}

// fastApply is the one-pass attempt. It sets fa.slow (and rolls back) when
// the file must be checked line by line.
func (s *Store) fastApply(ctx context.Context, f spool.Feedback, now int64, res *spool.ApplyResult, an *anomalies,
	produce func(add func(spool.ResultRow) error) error, fa *fastAttempt) error {
	// One connection for the transaction and for the staging statements,
	// which go to the driver directly: database/sql's per-argument
	// conversions cost more than SQLite's insert.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Lines staged beforehand (feedback_stage.go) are read from the scratch
	// database; otherwise they are staged here, in temporary tables.
	lines, kinds := "fbl", "fbk"
	st := s.takeStaged(f)
	if st != nil {
		defer s.doneStaged(st)
		if err := s.attachScratch(ctx, conn); err != nil {
			st = nil
		} else {
			defer detachScratch(ctx, conn)
			lines, kinds = st.tables()
			if feedbackStagedHook != nil {
				feedbackStagedHook(f.Name)
			}
		}
	}
	fbJoin := `(SELECT l.seq AS seq, k.paid AS paid, k.reason AS reason FROM ` + lines + ` l JOIN ` + kinds + ` k ON k.k = l.k)`
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		tx.Rollback()
		return err
	}
	d, done, err := s.feedbackStart(ctx, tx, f, now, res, an)
	if err != nil {
		return fail(err)
	}
	if done {
		return tx.Commit()
	}
	// Stage every line. A seq given twice is left out of fbl (the
	// line-by-line check reports it); the lines are kept in memory for that.
	var paidN, failedN int
	var paidFen int64
	var stageErr error
	if st != nil {
		// Staged already: the file's lines must be exactly those.
		// Up to the first difference fa.kept is a prefix of the staged
		// lines, then a copy of what produce yields.
		fa.kept = st.rows[:0:0]
		i := 0
		fa.perr = produce(func(r spool.ResultRow) error {
			if !fa.slow && i < len(st.rows) && r == st.rows[i] {
				fa.kept = st.rows[: i+1 : i+1]
			} else {
				fa.kept = append(fa.kept, r)
				fa.slow = true
			}
			i++
			return nil
		})
		if i != len(st.rows) || st.dup {
			fa.slow = true
		}
		paidN, failedN, paidFen = st.paidN, st.failedN, st.paidFen
	}
	if st == nil {
		fa.kept = make([]spool.ResultRow, 0, d.count)
	}
	var seen seqSet
	seen.init(d.first, d.last)
	err = withRaw(conn, func(c *sqlite3.SQLiteConn) error {
		if st != nil {
			return nil
		}
		stg, err := newFbStager(c, "fbl", "fbk")
		if err != nil {
			return err
		}
		defer stg.close()
		fa.perr = produce(func(r spool.ResultRow) error {
			fa.kept = append(fa.kept, r)
			if !seen.add(r.Seq) {
				fa.slow = true
				return nil
			}
			if r.Paid {
				paidN++
				paidFen += r.AmountFen
			} else {
				failedN++
			}
			if err := stg.add(r); err != nil {
				stageErr = err
				return err
			}
			return nil
		})
		if stageErr != nil {
			return stageErr
		}
		return stg.flush()
	})
	if err != nil {
		return fail(err)
	}
	staged := paidN + failedN
	if fa.perr != nil || fa.slow || staged != d.count {
		fa.slow = true
		return fail(nil)
	}
	// UNKNOWN records the file resolves (counted before they change).
	var unknownN int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM records r INDEXED BY records_unknown WHERE r.batch = ? AND r.state = 'UNKNOWN' AND r.seq BETWEEN ? AND ?
		AND +r.seq IN (SELECT seq FROM `+lines+`)`, d.batchPK, d.first, d.last).Scan(&unknownN); err != nil {
		return fail(err)
	}
	// Only records that pass every check move: a record of this delivery,
	// waiting for the bank's word (SENT, or PENDING in a SENT delivery, or
	// UNKNOWN), paid with the amount we
	// sent or failed with that amount or none. OR FAIL: any constraint error
	// stops the statement at once (the transaction is rolled back anyway),
	// so SQLite needs no statement journal for the 50,000 rows.
	r, err := tx.ExecContext(ctx, `UPDATE OR FAIL records SET state = CASE WHEN k.paid = 1 THEN 'PAID' ELSE 'FAILED' END,
		paid_fen = l.fen, reason = k.reason, bank_code = k.code, bank_message = k.msg, bank_serial = l.serial, result_at = ?
		FROM `+lines+` l JOIN `+kinds+` k ON k.k = l.k WHERE records.batch = ? AND records.seq = l.seq AND records.seq BETWEEN ? AND ?
		  AND (records.state = 'SENT' OR records.state = 'UNKNOWN' OR (records.state = 'PENDING' AND ?))
		  AND ((k.paid = 1 AND l.fen = records.amount_fen) OR (k.paid = 0 AND (l.fen = 0 OR l.fen = records.amount_fen)))`,
		now, d.batchPK, d.first, d.last, d.sent())
	if err != nil {
		return fail(err)
	}
	moved, err := r.RowsAffected()
	if err != nil {
		return fail(err)
	}
	if moved != int64(staged) {
		fa.slow = true
		return fail(nil)
	}
	// Money rule 7: what the file settles adds up to what we sent. The
	// failed amounts come from the records (a failed line may say 0 fen);
	// records_failed finds this file's few FAILED records (without stats
	// the planner would walk the whole delivery).
	var failedFen int64
	var failedMoved int
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(r.amount_fen), 0) FROM records r INDEXED BY records_failed
		WHERE r.batch = ? AND r.state = 'FAILED' AND r.seq BETWEEN ? AND ? AND EXISTS (SELECT 1 FROM `+fbJoin+` fb WHERE fb.seq = r.seq AND fb.paid = 0)`,
		d.batchPK, d.first, d.last).Scan(&failedMoved, &failedFen); err != nil {
		return fail(err)
	}
	if failedMoved != failedN || paidFen+failedFen != d.total {
		fa.slow = true
		return fail(nil)
	}
	res.Paid, res.PaidFen, res.Failed, res.FailedFen, res.Resolved = paidN, paidFen, failedN, failedFen, unknownN
	if err := s.feedbackFinish(ctx, tx, f, now, d, res, fbJoin); err != nil {
		return fail(err)
	}
	fa.kept = nil
	return tx.Commit()
}

// feedbackFinish records an applied file: bad accounts remembered, the file
// recorded APPLIED, the audit event, and the batch settled if it is done.
// fb names the file's lines (seq, paid, reason): the temporary view or a join
// of the staged tables.
func (s *Store) feedbackFinish(ctx context.Context, tx *sql.Tx, f spool.Feedback, now int64, d feedbackDelivery, res *spool.ApplyResult, fb string) error {
	if len(f.BadReasons) > 0 {
		var reasons []any
		var ph []string
		for r := range f.BadReasons {
			reasons = append(reasons, r)
			ph = append(ph, "?")
		}
		args := append([]any{f.Bank, now, d.batchPK, d.first, d.last}, reasons...)
		// The file's failed records are FAILED now: records_failed finds
		// them without walking every line of fb.
		if _, err := tx.ExecContext(ctx, `INSERT INTO bad_accounts(account_index, reason, bank, at)
			SELECT r.account_index, fb.reason, ?, ? FROM records r INDEXED BY records_failed JOIN `+fb+` fb ON fb.seq = r.seq
			WHERE r.batch = ? AND r.state = 'FAILED' AND r.seq BETWEEN ? AND ? AND fb.paid = 0 AND fb.reason IN (`+strings.Join(ph, ",")+`) ORDER BY r.seq
			ON CONFLICT(account_index) DO UPDATE SET reason = excluded.reason, bank = excluded.bank, at = excluded.at`, args...); err != nil {
			return err
		}
	}
	// What the file settled stays with it: settle sums these (batchTotals).
	if _, err := tx.ExecContext(ctx, `INSERT INTO feedback_files(bank, name, size, sm3, state, delivery, bank_batch_no, at, paid, paid_fen, failed, failed_fen)
		VALUES (?,?,?,?,'APPLIED',?,?,?,?,?,?,?)`,
		f.Bank, f.Name, f.Size, f.SM3, d.id, f.BankBatchNo, now, res.Paid, res.PaidFen, res.Failed, res.FailedFen); err != nil {
		return err
	}
	if err := s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "feedback.applied", Subject: f.Name,
		Detail: []byte(fmt.Sprintf(`{"bank":%q,"bank_batch_no":%q,"batch":%q,"paid":%d,"paid_fen":%d,"failed":%d,"failed_fen":%d,"resolved_unknown":%d}`,
			f.Bank, f.BankBatchNo, d.batchID, res.Paid, res.PaidFen, res.Failed, res.FailedFen, res.Resolved))}); err != nil {
		return err
	}
	settled, err := s.settle(ctx, tx, d.batchPK, d.batchID)
	res.Settled = settled
	return err
}

// applyChecked checks a return file line by line before applying it: every
// anomaly is named (up to maxAnomalies), and a file with any applies nothing.
func (s *Store) applyChecked(ctx context.Context, tx *sql.Tx, f spool.Feedback, now int64, res *spool.ApplyResult, an *anomalies, produce func(add func(spool.ResultRow) error) error) error {
	d, done, err := s.feedbackStart(ctx, tx, f, now, res, an)
	if err != nil || done {
		return err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO fbl(seq, k, fen, serial) VALUES (?,?,?,?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	kinds := map[fbKind]int64{}
	var stageErr error
	perr := produce(func(r spool.ResultRow) error {
		kd := fbKind{r.Paid, r.Reason, r.BankCode, r.BankMessage}
		k, ok := kinds[kd]
		if !ok {
			k = int64(len(kinds) + 1)
			kinds[kd] = k
			if _, err := tx.Exec(`INSERT INTO fbk(k, paid, reason, code, msg) VALUES (?,?,?,?,?)`, k, r.Paid, r.Reason, r.BankCode, r.BankMessage); err != nil {
				stageErr = err
				return err
			}
		}
		// No ctx: the transaction carries it (go-sqlite3 starts a goroutine per cancellable call).
		_, err := ins.Exec(r.Seq, k, r.AmountFen, r.BankSerial)
		if isUnique(err) {
			an.add(r.Seq, "duplicate_result", "the file reports this record twice")
			return nil
		}
		if err != nil {
			stageErr = err
		}
		return err
	})
	if stageErr != nil {
		return stageErr
	}
	if perr != nil {
		an.add(0, "parse", perr.Error())
		return errAnomaly
	}
	// Every result must name a record of this delivery that is waiting
	// for the bank's word, with the amount we sent.
	// (A PENDING row of a SENT delivery is a SENT record: sentstate.go.)
	rows, err := tx.QueryContext(ctx, `SELECT fb.seq, CASE WHEN r.state = 'PENDING' AND ?5 THEN 'SENT' ELSE coalesce(r.state, '') END,
		coalesce(r.amount_fen, 0), fb.paid, fb.fen FROM fb
		LEFT JOIN records r ON r.batch = ?1 AND r.seq = fb.seq
		WHERE fb.seq < ?2 OR fb.seq > ?3 OR r.seq IS NULL OR NOT (r.state IN ('SENT','UNKNOWN') OR (r.state = 'PENDING' AND ?5))
		   OR (fb.paid = 1 AND fb.fen <> r.amount_fen) OR (fb.paid = 0 AND fb.fen NOT IN (0, r.amount_fen))
		ORDER BY fb.seq LIMIT ?4`, d.batchPK, d.first, d.last, maxAnomalies+1, d.sent())
	if err != nil {
		return err
	}
	for rows.Next() {
		var seq, paid int
		var state string
		var amount, fen int64
		if err := rows.Scan(&seq, &state, &amount, &paid, &fen); err != nil {
			rows.Close()
			return err
		}
		switch {
		case seq < d.first || seq > d.last || state == "":
			an.add(seq, "unknown_record", fmt.Sprintf("not a record of delivery %s (seq %d..%d)", f.BankBatchNo, d.first, d.last))
		case state == "PAID" || state == "FAILED":
			an.add(seq, "conflicting_result", "record already "+state)
		case state != "SENT" && state != "UNKNOWN":
			an.add(seq, "conflicting_result", "record is "+state+", not sent")
		default:
			an.add(seq, "amount_mismatch", fmt.Sprintf("bank processed %d fen, we sent %d fen", fen, amount))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Money rule 7: the file covers every record of the delivery, and the
	// sums agree with what we sent.
	var n int
	var sentFen, paidFen, failedFen int64
	var paidN, failedN, unknownN int
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(r.amount_fen),0),
		coalesce(sum(CASE WHEN fb.paid = 1 THEN fb.fen END),0), coalesce(sum(CASE WHEN fb.paid = 0 THEN r.amount_fen END),0),
		coalesce(sum(fb.paid),0), coalesce(sum(1-fb.paid),0), coalesce(sum(r.state = 'UNKNOWN'),0)
		FROM fb CROSS JOIN records r ON r.batch = ? AND r.seq = fb.seq AND r.seq BETWEEN ? AND ?`, d.batchPK, d.first, d.last).Scan(&n, &sentFen, &paidFen, &failedFen, &paidN, &failedN, &unknownN); err != nil {
		return err
	}
	if n != d.count && len(an.list) == 0 {
		missing, err := tx.QueryContext(ctx, `SELECT r.seq FROM records r WHERE r.batch = ? AND r.seq BETWEEN ? AND ? AND r.seq NOT IN (SELECT seq FROM fb) ORDER BY r.seq LIMIT 10`, d.batchPK, d.first, d.last)
		if err != nil {
			return err
		}
		var seqs []string
		for missing.Next() {
			var seq int
			missing.Scan(&seq)
			seqs = append(seqs, fmt.Sprint(seq))
		}
		missing.Close()
		an.add(0, "missing_results", fmt.Sprintf("file reports %d of %d records (missing seq %s)", n, d.count, strings.Join(seqs, ",")))
	}
	if len(an.list) == 0 && sentFen != d.total {
		an.add(0, "sum_mismatch", fmt.Sprintf("records in the file total %d fen, the delivery %d fen", sentFen, d.total))
	}
	if len(an.list) > 0 {
		return errAnomaly
	}
	if _, err := tx.ExecContext(ctx, `UPDATE records SET state = CASE WHEN fb.paid = 1 THEN 'PAID' ELSE 'FAILED' END,
		paid_fen = fb.fen, reason = fb.reason, bank_code = fb.code, bank_message = fb.msg, bank_serial = fb.serial, result_at = ?
		FROM fb WHERE records.batch = ? AND records.seq = fb.seq AND records.seq BETWEEN ? AND ?`, now, d.batchPK, d.first, d.last); err != nil {
		return err
	}
	res.Paid, res.PaidFen, res.Failed, res.FailedFen, res.Resolved = paidN, paidFen, failedN, failedFen, unknownN
	return s.feedbackFinish(ctx, tx, f, now, d, res, "fb")
}

// seqSet tells seqs seen before: a bitmap over the delivery's range, a map
// outside it (those lines are anomalies anyway).
type seqSet struct {
	first int
	bits  []uint64
	other map[int]bool
}

func (q *seqSet) init(first, last int) {
	q.first = first
	if n := last - first + 1; n > 0 {
		q.bits = make([]uint64, (n+63)/64)
	}
}

// add reports whether seq is new.
func (q *seqSet) add(seq int) bool {
	if i := seq - q.first; i >= 0 && i/64 < len(q.bits) {
		w, b := i/64, uint64(1)<<(i%64)
		if q.bits[w]&b != 0 {
			return false
		}
		q.bits[w] |= b
		return true
	}
	if q.other[seq] {
		return false
	}
	if q.other == nil {
		q.other = map[int]bool{}
	}
	q.other[seq] = true
	return true
}

// fbStageGroup lines go into fbl per INSERT: one SQLite step and one bind
// pass for many lines (4 columns: 256 parameters).
const fbStageGroup = 64

// fbKind is a line's outcome: fbk holds each distinct one once.
type fbKind struct {
	paid              bool
	reason, code, msg string
}

// fbStager inserts lines into fbl (and their outcomes into fbk) through the
// driver, bypassing database/sql. It runs inside the transaction's
// connection (conn.Raw).
type fbStager struct {
	lines *multiInsert
	kind  driver.Stmt
	kinds map[fbKind]int64
	last  fbKind // the outcome of the line before, numbered lastK
	lastK int64
	args  []driver.NamedValue
}

// newFbStager prepares the inserts into the tables lines and kinds (fbl and
// fbk, or a slot of the scratch database).
func newFbStager(c *sqlite3.SQLiteConn, lines, kinds string) (*fbStager, error) {
	st := &fbStager{kinds: map[fbKind]int64{}, args: make([]driver.NamedValue, 0, 4*fbStageGroup)}
	var err error
	if st.lines, err = newMultiInsert(c, `INSERT OR FAIL INTO `+lines+`(seq, k, fen, serial) VALUES `, "(?,?,?,?)", 4, fbStageGroup); err != nil {
		return nil, err
	}
	if st.kind, err = c.Prepare(`INSERT OR FAIL INTO ` + kinds + `(k, paid, reason, code, msg) VALUES (?,?,?,?,?)`); err != nil {
		st.lines.close()
		return nil, err
	}
	return st, nil
}

func (st *fbStager) add(r spool.ResultRow) error {
	kd := fbKind{r.Paid, r.Reason, r.BankCode, r.BankMessage}
	// Most lines have the outcome of the line before (paid): no map lookup.
	k, ok := st.lastK, st.lastK != 0 && kd == st.last
	if !ok {
		k, ok = st.kinds[kd]
		st.last, st.lastK = kd, k
	}
	if !ok {
		k = int64(len(st.kinds) + 1)
		st.kinds[kd] = k
		st.last, st.lastK = kd, k
		paid := int64(0)
		if r.Paid {
			paid = 1
		}
		args := []driver.NamedValue{{Ordinal: 1, Value: k}, {Ordinal: 2, Value: paid}, {Ordinal: 3, Value: r.Reason}, {Ordinal: 4, Value: r.BankCode}, {Ordinal: 5, Value: r.BankMessage}}
		if err := execRaw(st.kind, args); err != nil {
			return err
		}
	}
	for _, v := range [4]driver.Value{int64(r.Seq), k, r.AmountFen, r.BankSerial} {
		st.args = append(st.args, driver.NamedValue{Ordinal: len(st.args) + 1, Value: v})
	}
	if len(st.args) == cap(st.args) {
		args := st.args
		st.args = st.args[:0]
		return st.lines.exec(args)
	}
	return nil
}

// flush inserts what is left, a line at a time.
func (st *fbStager) flush() error {
	rest := st.args
	st.args = st.args[:0]
	for ; len(rest) > 0; rest = rest[4:] {
		if err := st.lines.exec(ordinals(rest[:4])); err != nil {
			return err
		}
	}
	return nil
}

func (st *fbStager) close() {
	st.lines.close()
	st.kind.Close()
}

var errAnomaly = errors.New("feedback anomaly")

// settle moves a SENT batch to SETTLED when every record is final.
func (s *Store) settle(ctx context.Context, tx *sql.Tx, batchPK int64, batchID string) (bool, error) {
	var state string
	var open int
	if err := tx.QueryRowContext(ctx, `SELECT state FROM batches WHERE id = ?`, batchPK).Scan(&state); err != nil {
		return false, err
	}
	if state != string(spool.BatchSent) {
		return false, nil
	}
	// Whether a record is still open (PENDING, SENT or UNKNOWN), asked of
	// the deliveries: the batch is SENT, so every record was SENT; a record
	// becomes final only by an applied return file, and a file applies to
	// every record of its delivery or to none; so a record is open exactly
	// when its delivery has no applied file, or it is UNKNOWN (an UNKNOWN
	// record's delivery may have had an earlier file refused, never applied).
	// Both are index lookups, not a walk of the batch's records after every
	// file. batchTotals below cross-checks the outcome against the files'
	// sums and the control totals.
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch = ?1
			AND NOT EXISTS (SELECT 1 FROM feedback_files f WHERE f.delivery = d.id AND f.state = 'APPLIED'))
		OR EXISTS (SELECT 1 FROM records INDEXED BY records_unknown WHERE batch = ?1 AND state = 'UNKNOWN')`, batchPK).Scan(&open); err != nil {
		return false, err
	}
	if open != 0 {
		return false, nil
	}
	// Every delivery has its applied file, so every record is final; the
	// records confirm it themselves, once a batch, before it is SETTLED
	// (a walk of the batch at the end, not after every file). A record
	// still open here means something changed it behind the files: the
	// batch stays SENT, with an alarm.
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM records WHERE batch = ? AND state IN ('PENDING','SENT','UNKNOWN'))`, batchPK).Scan(&open); err != nil {
		return false, err
	}
	if open != 0 {
		_, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) SELECT ?, 'settle_open', bank, batch_id, 0,
			'every delivery has its applied return file, yet a record is still PENDING, SENT or UNKNOWN' FROM batches WHERE id = ?`, s.now().UnixNano(), batchPK)
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'SETTLED', updated_at = ? WHERE id = ?`, s.now().UnixNano(), batchPK); err != nil {
		return false, err
	}
	if err := s.enqueueSettled(ctx, tx, batchPK, batchID); err != nil { // webhook events, same transaction (outbox.go)
		return false, err
	}
	t, err := s.batchTotals(ctx, tx, batchPK)
	if err != nil {
		return false, err
	}
	return true, s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "batch.settled", Subject: batchID,
		Detail: []byte(fmt.Sprintf(`{"paid":%d,"paid_fen":%d,"failed":%d,"failed_fen":%d}`, t.paid, t.paidFen, t.failed, t.failedFen))})
}

// resultTotals are a batch's PAID and FAILED records: how many, and the fen
// (paid_fen of the PAID ones, amount_fen of the FAILED ones).
type resultTotals struct {
	paid, failed       int
	paidFen, failedFen int64
}

// scanTotals reads every record of the batch.
func scanTotals(ctx context.Context, tx *sql.Tx, batchPK int64) (resultTotals, error) {
	var t resultTotals
	err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(state='PAID'),0), coalesce(sum(CASE WHEN state='PAID' THEN paid_fen END),0),
		coalesce(sum(state='FAILED'),0), coalesce(sum(CASE WHEN state='FAILED' THEN amount_fen END),0) FROM records WHERE batch = ?`, batchPK).
		Scan(&t.paid, &t.paidFen, &t.failed, &t.failedFen)
	return t, err
}

// batchTotals is what scanTotals says, without reading the batch's PAID
// records. The sums kept with the batch's applied files (records become PAID
// or FAILED only by a file covering its whole delivery, and stay so) must
// agree with what the deliveries and the FAILED records say: the PAID records
// are the records of the deliveries with an applied file that are not
// FAILED, each paid its amount (the deliveries carry their count and fen from
// planning; records_failed finds the FAILED ones). A record changed behind
// the files after they applied is for settle's own check of the records to
// catch. If the sums ever disagree the scan answers, and an alarm says so.
func (s *Store) batchTotals(ctx context.Context, tx *sql.Tx, batchPK int64) (resultTotals, error) {
	var kept resultTotals
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(f.paid),0), coalesce(sum(f.paid_fen),0), coalesce(sum(f.failed),0), coalesce(sum(f.failed_fen),0)
		FROM deliveries d JOIN feedback_files f ON f.delivery = d.id AND f.state = 'APPLIED' WHERE d.batch = ?`, batchPK).
		Scan(&kept.paid, &kept.paidFen, &kept.failed, &kept.failedFen); err != nil {
		return kept, err
	}
	var applied int
	var appliedFen int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(d.count),0), coalesce(sum(d.total_fen),0) FROM deliveries d
		WHERE d.batch = ? AND EXISTS (SELECT 1 FROM feedback_files f WHERE f.delivery = d.id AND f.state = 'APPLIED')`, batchPK).Scan(&applied, &appliedFen); err != nil {
		return kept, err
	}
	var derived resultTotals
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(amount_fen),0) FROM records INDEXED BY records_failed WHERE batch = ? AND state = 'FAILED'`, batchPK).
		Scan(&derived.failed, &derived.failedFen); err != nil {
		return kept, err
	}
	derived.paid, derived.paidFen = applied-derived.failed, appliedFen-derived.failedFen
	if kept == derived {
		return kept, nil
	}
	scanned, err := scanTotals(ctx, tx, batchPK)
	if err != nil {
		return scanned, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) SELECT ?, 'settle_totals', bank, batch_id, 0, ? FROM batches WHERE id = ?`,
		s.now().UnixNano(), fmt.Sprintf("applied files say %+v, control totals and unpaid records %+v, records %+v", kept, derived, scanned), batchPK); err != nil {
		return scanned, err
	}
	return scanned, nil
}
