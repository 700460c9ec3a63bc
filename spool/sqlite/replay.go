package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"yktgw/spool"
)

var _ spool.ReplayStore = (*Store)(nil)

const replayCols = `r.id, r.delivery, b.batch_id, d.bank, d.bank_batch_no, d.total_fen, r.state, r.reason, r.requested_by, r.approved_by, r.outcome, r.created_at, r.decided_at`

const replayFrom = ` FROM replays r JOIN deliveries d ON d.id = r.delivery JOIN batches b ON b.id = d.batch`

func scanReplay(sc interface{ Scan(...any) error }) (*spool.Replay, error) {
	var r spool.Replay
	var created, decided int64
	if err := sc.Scan(&r.ID, &r.DeliveryID, &r.BatchID, &r.Bank, &r.BankBatchNo, &r.TotalFen, &r.State, &r.Reason,
		&r.RequestedBy, &r.ApprovedBy, &r.Outcome, &created, &decided); err != nil {
		return nil, err
	}
	r.CreatedAt, r.DecidedAt = unixOrZero(created), unixOrZero(decided)
	return &r, nil
}

func (s *Store) replayTx(ctx context.Context, tx *sql.Tx, id int64) (*spool.Replay, error) {
	r, err := scanReplay(tx.QueryRowContext(ctx, `SELECT `+replayCols+replayFrom+` WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("replay %d: %w", id, spool.ErrNotFound)
	}
	return r, err
}

func (s *Store) RequestReplay(ctx context.Context, deliveryID int64, reason, by string, needsApproval bool) (*spool.Replay, error) {
	var out *spool.Replay
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state, no string
		err := tx.QueryRowContext(ctx, `SELECT state, bank_batch_no FROM deliveries WHERE id = ?`, deliveryID).Scan(&state, &no)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery %d: %w", deliveryID, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if state != string(spool.DeliveryDead) {
			return fmt.Errorf("delivery %d is %s, only DEAD can be replayed: %w", deliveryID, state, spool.ErrStale)
		}
		var open int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM replays WHERE delivery = ? AND state IN ('PENDING_APPROVAL','APPROVED')`, deliveryID).Scan(&open); err != nil {
			return err
		}
		if open > 0 {
			return fmt.Errorf("delivery %d has an open replay request: %w", deliveryID, spool.ErrConflict)
		}
		st := spool.ReplayApproved
		if needsApproval {
			st = spool.ReplayPending
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO replays(delivery, state, reason, requested_by, created_at) VALUES (?,?,?,?,?)`,
			deliveryID, st, reason, by, s.now().UnixNano())
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		if err := s.appendAudit(ctx, tx, spool.Event{Actor: by, Action: "replay.requested", Subject: no, Reason: reason,
			Detail: []byte(fmt.Sprintf(`{"replay":%d,"delivery":%d,"state":%q}`, id, deliveryID, st))}); err != nil {
			return err
		}
		out, err = s.replayTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: request replay: %w", err)
	}
	return out, nil
}

func (s *Store) ApproveReplay(ctx context.Context, id int64, by string) (*spool.Replay, error) {
	var out *spool.Replay
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := s.replayTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.State != spool.ReplayPending {
			return fmt.Errorf("replay %d is %s, not %s: %w", id, r.State, spool.ReplayPending, spool.ErrStale)
		}
		if r.RequestedBy == by {
			return fmt.Errorf("replay %d: the requester cannot approve their own request: %w", id, spool.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE replays SET state = 'APPROVED', approved_by = ?, decided_at = ? WHERE id = ?`, by, s.now().UnixNano(), id); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, spool.Event{Actor: by, Action: "replay.approved", Subject: r.BankBatchNo,
			Detail: []byte(fmt.Sprintf(`{"replay":%d,"requested_by":%q}`, id, r.RequestedBy))}); err != nil {
			return err
		}
		out, err = s.replayTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: approve replay: %w", err)
	}
	return out, nil
}

func (s *Store) FinishReplay(ctx context.Context, id int64, to spool.DeliveryState, outcome string) (*spool.Replay, error) {
	var out *spool.Replay
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := s.replayTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.State != spool.ReplayApproved {
			return fmt.Errorf("replay %d is %s, not %s: %w", id, r.State, spool.ReplayApproved, spool.ErrStale)
		}
		now := s.now().UnixNano()
		state := spool.ReplayRefused
		if to != "" {
			state = spool.ReplayDone
			if err := spool.CheckDelivery(spool.DeliveryDead, to); err != nil {
				return err
			}
			var dstate string
			var batchPK int64
			var bstate string
			if err := tx.QueryRowContext(ctx, `SELECT d.state, d.batch, b.state FROM deliveries d JOIN batches b ON b.id = d.batch WHERE d.id = ?`, r.DeliveryID).
				Scan(&dstate, &batchPK, &bstate); err != nil {
				return err
			}
			if dstate != string(spool.DeliveryDead) {
				return fmt.Errorf("delivery %d is %s, not DEAD: %w", r.DeliveryID, dstate, spool.ErrStale)
			}
			if bstate == string(spool.BatchDead) {
				if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'SENDING', updated_at = ? WHERE id = ?`, now, batchPK); err != nil {
					return err
				}
				if err := s.appendAudit(ctx, tx, spool.Event{Actor: r.RequestedBy, Action: "batch.sending", Subject: r.BatchID, Reason: "replay"}); err != nil {
					return err
				}
			}
			switch to {
			case spool.DeliverySent:
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'SENT', sent_at = ?, last_error = '', updated_at = ? WHERE id = ?`, now, now, r.DeliveryID)
				// Its records are SENT with it (sentstate.go).
				if err == nil {
					var unsent int
					if err = tx.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE batch = ? AND state <> 'SENT'`, batchPK).Scan(&unsent); err == nil && unsent == 0 {
						_, err = tx.ExecContext(ctx, `UPDATE batches SET state = 'SENT', updated_at = ? WHERE id = ?`, now, batchPK)
					}
				}
			case spool.DeliverySealed:
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'SEALED', next_attempt = 0, last_error = '', updated_at = ? WHERE id = ?`, now, r.DeliveryID)
			case spool.DeliveryPlanned:
				_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 'PLANNED', last_error = '', updated_at = ? WHERE id = ?`, now, r.DeliveryID)
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE replays SET state = ?, outcome = ?, decided_at = ? WHERE id = ?`, state, outcome, now, id); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, spool.Event{Actor: r.RequestedBy, Action: "replay." + map[bool]string{true: "done", false: "refused"}[to != ""],
			Subject: r.BankBatchNo, Reason: outcome, Detail: []byte(fmt.Sprintf(`{"replay":%d,"delivery_to":%q}`, id, to))}); err != nil {
			return err
		}
		out, err = s.replayTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: finish replay: %w", err)
	}
	return out, nil
}

func (s *Store) Replay(ctx context.Context, id int64) (*spool.Replay, error) {
	r, err := scanReplay(s.r.QueryRowContext(ctx, `SELECT `+replayCols+replayFrom+` WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: replay %d: %w", id, spool.ErrNotFound)
	}
	return r, err
}

func (s *Store) Replays(ctx context.Context, state string, limit int) ([]spool.Replay, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + replayCols + replayFrom
	var args []any
	if state != "" {
		q += ` WHERE r.state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY r.id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: replays: %w", err)
	}
	defer rows.Close()
	var out []spool.Replay
	for rows.Next() {
		r, err := scanReplay(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}
