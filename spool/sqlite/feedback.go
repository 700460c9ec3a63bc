package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

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
