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
		// Each file's count and fen: from the blocks Finalize kept when a
		// file is a whole number of them (and the batch has its blocks),
		// else from the records.
		total := `SELECT count(*), coalesce(sum(amount_fen), 0) FROM records WHERE batch = ? AND seq BETWEEN ? AND ?`
		if maxPerFile%blockSeqs == 0 {
			var blocks int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batch_blocks WHERE batch = ?`, pk).Scan(&blocks); err != nil {
				return err
			}
			if blocks == (count+blockSeqs-1)/blockSeqs {
				total = `SELECT coalesce(sum(count), 0), coalesce(sum(fen), 0) FROM batch_blocks WHERE batch = ? AND first_seq BETWEEN ? AND ?`
			}
		}
		for f := 0; f < files; f++ {
			first := f*maxPerFile + 1
			last := min(first+maxPerFile-1, count)
			var n int
			var fen int64
			if err := tx.QueryRowContext(ctx, total, pk, first, last).Scan(&n, &fen); err != nil {
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
			// Its records are SENT with it: their rows stay PENDING (sentstate.go).
			_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state='SENT', receipt=?, sent_at=?, deadline_at=?, last_error='', updated_at=? WHERE id=?`,
				c.Receipt, nanos(c.SentAt), nanos(c.DeadlineAt), now, c.ID)
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
	return s.readConn(ctx, func(c *sql.Conn, packs *packReader) error {
		rows, err := c.QueryContext(ctx, `SELECT `+recordCols+` FROM `+recordFrom+` WHERE r.batch = ? AND r.seq BETWEEN ? AND ? ORDER BY r.seq`, pk, first, last)
		if err != nil {
			return fmt.Errorf("sqlite: record range: %w", err)
		}
		defer rows.Close()
		var r spool.Record
		for rows.Next() {
			if err := scanRecord(ctx, rows, packs, pk, &r); err != nil {
				return err
			}
			if err := fn(&r); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

func (s *Store) ExpireOverdue(ctx context.Context, now time.Time) ([]spool.Delivery, error) {
	var ids []int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.id, d.batch, b.batch_id, d.bank, d.bank_batch_no, d.first_seq, d.last_seq FROM deliveries d
			JOIN batches b ON b.id = d.batch
			WHERE d.state = 'SENT' AND d.deadline_at > 0 AND d.deadline_at < ?
			  AND EXISTS (SELECT 1 FROM records r WHERE r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq AND r.state IN ('PENDING', 'SENT'))`, now.UnixNano())
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
			// The delivery is SENT: its PENDING rows are SENT records (sentstate.go).
			res, err := tx.ExecContext(ctx, `UPDATE records SET state = 'UNKNOWN' WHERE batch = ? AND seq BETWEEN ? AND ? AND state IN ('PENDING', 'SENT')`, o.pk, o.first, o.last)
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
