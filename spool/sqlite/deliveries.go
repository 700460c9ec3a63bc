package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"yktgw/spool"
)

const deliveryCols = `d.id, b.batch_id, d.bank, d.bank_batch_no, d.file_seq, d.first_seq, d.last_seq, d.count, d.total_fen, d.file_name,
	d.sealed_path, d.size, d.sm3, d.state, d.attempts, d.next_attempt, d.last_error, d.receipt, d.sent_at, d.deadline_at, d.created_at, d.updated_at`

func unixOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func scanDelivery(sc interface{ Scan(...any) error }) (*spool.Delivery, error) {
	var d spool.Delivery
	var state string
	var next, sent, deadline, created, updated int64
	if err := sc.Scan(&d.ID, &d.BatchID, &d.Bank, &d.BankBatchNo, &d.FileSeq, &d.FirstSeq, &d.LastSeq, &d.Count, &d.TotalFen,
		&d.FileName, &d.SealedPath, &d.Size, &d.SM3, &state, &d.Attempts, &next, &d.LastError, &d.Receipt, &sent, &deadline, &created, &updated); err != nil {
		return nil, err
	}
	d.State = spool.DeliveryState(state)
	d.NextAttempt, d.SentAt, d.DeadlineAt = unixOrZero(next), unixOrZero(sent), unixOrZero(deadline)
	d.CreatedAt, d.UpdatedAt = unixOrZero(created), unixOrZero(updated)
	return &d, nil
}

func (s *Store) PlanDeliveries(ctx context.Context, batchID string, maxPerFile int, name func(bank string, n int64) string, ev spool.Event) ([]spool.Delivery, error) {
	if maxPerFile <= 0 {
		return nil, errors.New("sqlite: plan: max records per file must be positive")
	}
	var ids []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var pk int64
		var state, bank string
		var count int
		err := tx.QueryRowContext(ctx, `SELECT id, state, bank, total_count FROM batches WHERE batch_id = ? AND state <> 'STAGING'`, batchID).Scan(&pk, &state, &bank, &count)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("batch %q: %w", batchID, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := spool.CheckBatch(spool.BatchState(state), spool.BatchSending); err != nil || state != string(spool.BatchQueued) {
			return fmt.Errorf("batch %q is %s, not QUEUED: %w", batchID, state, spool.ErrStale)
		}
		files := (count + maxPerFile - 1) / maxPerFile
		if _, err := tx.ExecContext(ctx, `INSERT INTO bank_counters(bank, next) VALUES (?, 1) ON CONFLICT(bank) DO NOTHING`, bank); err != nil {
			return err
		}
		var next int64
		if err := tx.QueryRowContext(ctx, `SELECT next FROM bank_counters WHERE bank = ?`, bank).Scan(&next); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bank_counters SET next = next + ? WHERE bank = ?`, files, bank); err != nil {
			return err
		}
		now := s.now().UnixNano()
		for f := 0; f < files; f++ {
			first := f*maxPerFile + 1
			last := min(first+maxPerFile-1, count)
			var n int
			var fen int64
			if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(amount_fen), 0) FROM records WHERE batch = ? AND seq BETWEEN ? AND ?`, pk, first, last).Scan(&n, &fen); err != nil {
				return err
			}
			if n != last-first+1 {
				return fmt.Errorf("batch %q: records %d..%d: %d present, want %d", batchID, first, last, n, last-first+1)
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO deliveries(batch, bank, bank_batch_no, file_seq, first_seq, last_seq, count, total_fen, state, created_at, updated_at)
				VALUES (?,?,?,?,?,?,?,?,'PLANNED',?,?)`, pk, bank, name(bank, next+int64(f)), f+1, first, last, n, fen, now, now)
			if err != nil {
				if isUnique(err) {
					return fmt.Errorf("bank batch number %s reused: %w", name(bank, next+int64(f)), spool.ErrConflict)
				}
				return err
			}
			id, _ := res.LastInsertId()
			ids = append(ids, id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'SENDING', updated_at = ? WHERE id = ?`, now, pk); err != nil {
			return err
		}
		if ev.Action == "" {
			ev.Action = "batch.sending"
		}
		ev.Subject = batchID
		if ev.Detail == nil {
			ev.Detail = []byte(fmt.Sprintf(`{"deliveries":%d,"max_records_per_file":%d}`, files, maxPerFile))
		}
		return s.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: plan deliveries: %w", err)
	}
	return s.Deliveries(ctx, spool.DeliveryFilter{BatchID: batchID})
}

func (s *Store) Delivery(ctx context.Context, id int64) (*spool.Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d JOIN batches b ON b.id = d.batch WHERE d.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: delivery %d: %w", id, spool.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: delivery: %w", err)
	}
	return d, nil
}

func (s *Store) Deliveries(ctx context.Context, f spool.DeliveryFilter) ([]spool.Delivery, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "d.state IN ("+strings.Join(ph, ",")+")")
	}
	if f.BatchID != "" {
		where = append(where, "b.batch_id = ?")
		args = append(args, f.BatchID)
	}
	if f.Bank != "" {
		where = append(where, "d.bank = ?")
		args = append(args, f.Bank)
	}
	if !f.DueBy.IsZero() {
		where = append(where, "d.next_attempt <= ?")
		args = append(args, f.DueBy.UnixNano())
	}
	q := `SELECT ` + deliveryCols + ` FROM deliveries d JOIN batches b ON b.id = d.batch`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q += " ORDER BY d.id LIMIT ?"
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	defer rows.Close()
	var out []spool.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

func (s *Store) ChangeDelivery(ctx context.Context, c spool.DeliveryChange) error {
	if err := spool.CheckDelivery(c.From, c.To); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state, batchID, bank, bankNo, batchState string
		var batchPK int64
		var first, last int
		err := tx.QueryRowContext(ctx, `SELECT d.state, d.batch, b.batch_id, d.bank, d.bank_batch_no, d.first_seq, d.last_seq, b.state
			FROM deliveries d JOIN batches b ON b.id = d.batch WHERE d.id = ?`, c.ID).
			Scan(&state, &batchPK, &batchID, &bank, &bankNo, &first, &last, &batchState)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery %d: %w", c.ID, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if spool.DeliveryState(state) != c.From {
			return fmt.Errorf("delivery %d is %s, not %s: %w", c.ID, state, c.From, spool.ErrStale)
		}
		now := s.now().UnixNano()
		switch c.To {
		case spool.DeliverySealed:
			if c.From == spool.DeliveryPlanned {
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='SEALED', file_name=?, sealed_path=?, size=?, sm3=?, updated_at=? WHERE id=?`,
					c.FileName, c.SealedPath, c.Size, c.SM3, now, c.ID)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='SEALED', next_attempt=?, last_error=?, updated_at=? WHERE id=?`,
					nanos(c.NextAttempt), c.Error, now, c.ID)
			}
		case spool.DeliverySending:
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='SENDING', attempts=attempts+1, updated_at=? WHERE id=?`, now, c.ID)
		case spool.DeliverySent:
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='SENT', receipt=?, sent_at=?, deadline_at=?, last_error='', updated_at=? WHERE id=?`,
				c.Receipt, nanos(c.SentAt), nanos(c.DeadlineAt), now, c.ID)
			if err == nil {
				_, err = tx.ExecContext(ctx, `UPDATE records SET state='SENT' WHERE batch=? AND seq BETWEEN ? AND ? AND state='PENDING'`, batchPK, first, last)
			}
			if err == nil && batchState == string(spool.BatchSending) {
				var unsent int
				if err = tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE batch=? AND state <> 'SENT'`, batchPK).Scan(&unsent); err == nil && unsent == 0 {
					_, err = tx.ExecContext(ctx, `UPDATE batches SET state='SENT', updated_at=? WHERE id=?`, now, batchPK)
					if err == nil {
						err = s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "batch.sent", Subject: batchID})
					}
				}
			}
		case spool.DeliveryDead:
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='DEAD', last_error=?, updated_at=? WHERE id=?`, c.Error, now, c.ID)
			if err == nil && (batchState == string(spool.BatchSending) || batchState == string(spool.BatchSent)) {
				_, err = tx.ExecContext(ctx, `UPDATE batches SET state='DEAD', updated_at=? WHERE id=?`, now, batchPK)
				if err == nil {
					err = s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "batch.dead", Subject: batchID, Reason: c.Error})
				}
			}
			if err == nil {
				_, err = tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) VALUES (?,?,?,?,?,?)`,
					now, "dead_delivery", bank, batchID, c.ID, bankNo+": "+c.Error)
			}
		}
		if err != nil {
			return err
		}
		ev := c.Event
		if ev.Actor == "" {
			ev.Actor = "system"
		}
		if ev.Action == "" {
			ev.Action = "delivery." + strings.ToLower(string(c.To))
		}
		if ev.Subject == "" {
			ev.Subject = bankNo
		}
		if ev.Reason == "" {
			ev.Reason = c.Error
		}
		if ev.Detail == nil {
			ev.Detail = []byte(fmt.Sprintf(`{"batch":%q,"delivery":%d,"from":%q,"to":%q}`, batchID, c.ID, c.From, c.To))
		}
		return s.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("sqlite: change delivery: %w", err)
	}
	return nil
}

func (s *Store) RecordRange(ctx context.Context, batchID string, first, last int, fn func(*spool.Record) error) error {
	pk, err := s.batchPK(ctx, s.r, batchID)
	if err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+recordCols+` FROM records WHERE batch = ? AND seq BETWEEN ? AND ? ORDER BY seq`, pk, first, last)
	if err != nil {
		return fmt.Errorf("sqlite: record range: %w", err)
	}
	defer rows.Close()
	var r spool.Record
	for rows.Next() {
		if err := scanRecord(rows, &r); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

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

func (s *Store) ApplyFeedback(ctx context.Context, f spool.Feedback, produce func(add func(spool.ResultRow) error) error) (spool.ApplyResult, error) {
	var res spool.ApplyResult
	var an anomalies
	now := s.now().UnixNano()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The same bytes applied before: nothing to do (a duplicate return file).
		var prior int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM feedback_files WHERE bank = ? AND sm3 = ? AND state = 'APPLIED'`, f.Bank, f.SM3).Scan(&prior); err != nil {
			return err
		}
		if prior > 0 {
			res.Duplicate = true
			var same int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM feedback_files WHERE bank = ? AND sm3 = ? AND name = ?`, f.Bank, f.SM3, f.Name).Scan(&same); err != nil {
				return err
			}
			if same == 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO feedback_files(bank, name, size, sm3, state, bank_batch_no, detail, at) VALUES (?,?,?,?,'DUPLICATE',?,?,?)`,
					f.Bank, f.Name, f.Size, f.SM3, f.BankBatchNo, "same bytes as an applied file", now); err != nil {
					return err
				}
				return s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "feedback.duplicate", Subject: f.Name, Detail: []byte(fmt.Sprintf(`{"bank":%q}`, f.Bank))})
			}
			return nil
		}
		var d struct {
			id, batchPK         int64
			batchID, batchState string
			first, last, count  int
			total               int64
			state               string
		}
		err := tx.QueryRowContext(ctx, `SELECT d.id, d.batch, b.batch_id, b.state, d.first_seq, d.last_seq, d.count, d.total_fen, d.state
			FROM deliveries d JOIN batches b ON b.id = d.batch WHERE d.bank = ? AND d.bank_batch_no = ?`, f.Bank, f.BankBatchNo).
			Scan(&d.id, &d.batchPK, &d.batchID, &d.batchState, &d.first, &d.last, &d.count, &d.total, &d.state)
		if errors.Is(err, sql.ErrNoRows) {
			an.add(0, "unknown_batch_no", fmt.Sprintf("no delivery with bank batch number %q", f.BankBatchNo))
			return errAnomaly
		}
		if err != nil {
			return err
		}
		res.DeliveryID, res.BatchID = d.id, d.batchID
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS fb (seq INTEGER PRIMARY KEY, paid INTEGER NOT NULL, fen INTEGER NOT NULL,
			reason TEXT NOT NULL, code TEXT NOT NULL, msg TEXT NOT NULL, serial TEXT NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM fb`); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO fb(seq, paid, fen, reason, code, msg, serial) VALUES (?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		perr := produce(func(r spool.ResultRow) error {
			paid := 0
			if r.Paid {
				paid = 1
			}
			_, err := ins.Exec(r.Seq, paid, r.AmountFen, r.Reason, r.BankCode, r.BankMessage, r.BankSerial)
			if isUnique(err) {
				an.add(r.Seq, "duplicate_result", "the file reports this record twice")
				return nil
			}
			return err
		})
		if perr != nil {
			an.add(0, "parse", perr.Error())
			return errAnomaly
		}
		// Every result must name a record of this delivery that is waiting
		// for the bank's word, with the amount we sent.
		rows, err := tx.QueryContext(ctx, `SELECT fb.seq, coalesce(r.state, ''), coalesce(r.amount_fen, 0), fb.paid, fb.fen FROM fb
			LEFT JOIN records r ON r.batch = ? AND r.seq = fb.seq
			WHERE fb.seq < ? OR fb.seq > ? OR r.seq IS NULL OR r.state NOT IN ('SENT','UNKNOWN')
			   OR (fb.paid = 1 AND fb.fen <> r.amount_fen) OR (fb.paid = 0 AND fb.fen NOT IN (0, r.amount_fen))
			ORDER BY fb.seq LIMIT ?`, d.batchPK, d.first, d.last, maxAnomalies+1)
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
		if len(f.BadReasons) > 0 {
			var reasons []any
			var ph []string
			for r := range f.BadReasons {
				reasons = append(reasons, r)
				ph = append(ph, "?")
			}
			args := append([]any{f.Bank, now, d.batchPK, d.first, d.last}, reasons...)
			if _, err := tx.ExecContext(ctx, `INSERT INTO bad_accounts(account_index, reason, bank, at)
				SELECT r.account_index, fb.reason, ?, ? FROM fb CROSS JOIN records r ON r.batch = ? AND r.seq = fb.seq AND r.seq BETWEEN ? AND ?
				WHERE fb.paid = 0 AND fb.reason IN (`+strings.Join(ph, ",")+`) ORDER BY fb.seq
				ON CONFLICT(account_index) DO UPDATE SET reason = excluded.reason, bank = excluded.bank, at = excluded.at`, args...); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO feedback_files(bank, name, size, sm3, state, delivery, bank_batch_no, at) VALUES (?,?,?,?,'APPLIED',?,?,?)`,
			f.Bank, f.Name, f.Size, f.SM3, d.id, f.BankBatchNo, now); err != nil {
			return err
		}
		res.Paid, res.PaidFen, res.Failed, res.FailedFen, res.Resolved = paidN, paidFen, failedN, failedFen, unknownN
		if err := s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "feedback.applied", Subject: f.Name,
			Detail: []byte(fmt.Sprintf(`{"bank":%q,"bank_batch_no":%q,"batch":%q,"paid":%d,"paid_fen":%d,"failed":%d,"failed_fen":%d,"resolved_unknown":%d}`,
				f.Bank, f.BankBatchNo, d.batchID, paidN, paidFen, failedN, failedFen, unknownN))}); err != nil {
			return err
		}
		settled, err := s.settle(ctx, tx, d.batchPK, d.batchID)
		res.Settled = settled
		return err
	})
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
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE batch = ? AND state IN ('PENDING','SENT','UNKNOWN')`, batchPK).Scan(&open); err != nil {
		return false, err
	}
	if open > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'SETTLED', updated_at = ? WHERE id = ?`, s.now().UnixNano(), batchPK); err != nil {
		return false, err
	}
	if err := s.enqueueSettled(ctx, tx, batchPK, batchID); err != nil { // webhook events, same transaction (outbox.go)
		return false, err
	}
	var paidN, failedN int
	var paidFen, failedFen int64
	tx.QueryRowContext(ctx, `SELECT coalesce(sum(state='PAID'),0), coalesce(sum(CASE WHEN state='PAID' THEN paid_fen END),0),
		coalesce(sum(state='FAILED'),0), coalesce(sum(CASE WHEN state='FAILED' THEN amount_fen END),0) FROM records WHERE batch = ?`, batchPK).
		Scan(&paidN, &paidFen, &failedN, &failedFen)
	return true, s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "batch.settled", Subject: batchID,
		Detail: []byte(fmt.Sprintf(`{"paid":%d,"paid_fen":%d,"failed":%d,"failed_fen":%d}`, paidN, paidFen, failedN, failedFen))})
}

func (s *Store) ExpireOverdue(ctx context.Context, now time.Time) ([]spool.Delivery, error) {
	var ids []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.id, d.batch, b.batch_id, d.bank, d.bank_batch_no, d.first_seq, d.last_seq FROM deliveries d
			JOIN batches b ON b.id = d.batch
			WHERE d.state = 'SENT' AND d.deadline_at > 0 AND d.deadline_at < ?
			  AND EXISTS (SELECT 1 FROM records r WHERE r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq AND r.state = 'SENT')`, now.UnixNano())
		if err != nil {
			return err
		}
		type od struct {
			id, pk          int64
			batch, bank, no string
			first, last     int
		}
		var list []od
		for rows.Next() {
			var o od
			if err := rows.Scan(&o.id, &o.pk, &o.batch, &o.bank, &o.no, &o.first, &o.last); err != nil {
				rows.Close()
				return err
			}
			list = append(list, o)
		}
		rows.Close()
		for _, o := range list {
			res, err := tx.ExecContext(ctx, `UPDATE records SET state = 'UNKNOWN' WHERE batch = ? AND seq BETWEEN ? AND ? AND state = 'SENT'`, o.pk, o.first, o.last)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			detail := fmt.Sprintf("%s: no feedback by the deadline; %d records UNKNOWN until the bank's word", o.no, n)
			if _, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) VALUES (?,?,?,?,?,?)`,
				now.UnixNano(), "feedback_overdue", o.bank, o.batch, o.id, detail); err != nil {
				return err
			}
			if err := s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "records.unknown", Subject: o.no, Reason: detail}); err != nil {
				return err
			}
			ids = append(ids, o.id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: expire overdue: %w", err)
	}
	var out []spool.Delivery
	for _, id := range ids {
		d, err := s.Delivery(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

func (s *Store) BadAccounts(ctx context.Context, batchID string) (map[int]string, error) {
	pk, err := s.batchPK(ctx, s.r, batchID)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT r.seq, b.reason FROM records r JOIN bad_accounts b ON b.account_index = r.account_index WHERE r.batch = ? ORDER BY r.seq`, pk)
	if err != nil {
		return nil, fmt.Errorf("sqlite: bad accounts: %w", err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var seq int
		var reason string
		if err := rows.Scan(&seq, &reason); err != nil {
			return nil, err
		}
		out[seq] = reason
	}
	return out, rows.Err()
}

func (s *Store) RaiseAlarm(ctx context.Context, a spool.Alarm) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		at := a.At
		if at.IsZero() {
			at = s.now()
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, bank, batch_id, delivery, detail) VALUES (?,?,?,?,?,?)`,
			at.UnixNano(), a.Kind, a.Bank, a.BatchID, a.DeliveryID, a.Detail)
		return err
	})
}

func (s *Store) Alarms(ctx context.Context, openOnly bool, limit int) ([]spool.Alarm, error) {
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT id, at, kind, bank, batch_id, delivery, detail, resolved_at FROM alarms`
	if openOnly {
		q += ` WHERE resolved_at = 0`
	}
	q += ` ORDER BY id LIMIT ?`
	rows, err := s.r.QueryContext(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: alarms: %w", err)
	}
	defer rows.Close()
	var out []spool.Alarm
	for rows.Next() {
		var a spool.Alarm
		var at, res int64
		if err := rows.Scan(&a.ID, &at, &a.Kind, &a.Bank, &a.BatchID, &a.DeliveryID, &a.Detail, &res); err != nil {
			return nil, err
		}
		a.At, a.ResolvedAt = unixOrZero(at), unixOrZero(res)
		out = append(out, a)
	}
	return out, rows.Err()
}
