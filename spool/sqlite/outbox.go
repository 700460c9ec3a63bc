package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/spool"
)

var _ spool.Outbox = (*Store)(nil)

// outboxEventID derives an event's id from what it is about, so the same
// event can never be enqueued twice under two ids.
func outboxEventID(kind, batchID string, page int) string {
	sum := sm3.Sum([]byte(kind + "\x00" + batchID + "\x00" + strconv.Itoa(page)))
	return "ev_" + hex.EncodeToString(sum[:12])
}

// enqueueSettled writes a settled batch's webhook events inside the
// transaction that settles it: one batch.results event per page of
// spool.OutboxPageSize records, then the batch.settled event.
func (s *Store) enqueueSettled(ctx context.Context, tx *sql.Tx, batchPK int64, batchID string) error {
	var tenant string
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT tenant, total_count FROM batches WHERE id = ?`, batchPK).Scan(&tenant, &count); err != nil {
		return fmt.Errorf("sqlite: outbox: %w", err)
	}
	pages := (count + spool.OutboxPageSize - 1) / spool.OutboxPageSize
	now := s.now().UnixNano()
	ins := func(kind string, page, first, last int) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO outbox_events(event_id, kind, batch, batch_id, tenant, page, pages, first_seq, last_seq, created_at)
			VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO NOTHING`,
			outboxEventID(kind, batchID, page), kind, batchPK, batchID, tenant, page, pages, first, last, now)
		if err != nil {
			return fmt.Errorf("sqlite: outbox enqueue: %w", err)
		}
		return nil
	}
	for p := 1; p <= pages; p++ {
		first := (p-1)*spool.OutboxPageSize + 1
		if err := ins(spool.EventBatchResults, p, first, min(first+spool.OutboxPageSize-1, count)); err != nil {
			return err
		}
	}
	return ins(spool.EventBatchSettled, 0, 0, 0)
}

func (s *Store) RouteOutbox(ctx context.Context, route func(tenant string) []spool.OutboxTarget, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	// Most rounds find nothing: ask a reader before taking the writer.
	var waiting int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM outbox_events WHERE routed_at = 0 LIMIT 1)`).Scan(&waiting); err != nil {
		return 0, fmt.Errorf("sqlite: route outbox: %w", err)
	}
	if waiting == 0 {
		return 0, nil
	}
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, tenant FROM outbox_events WHERE routed_at = 0 ORDER BY id LIMIT ?`, limit)
		if err != nil {
			return err
		}
		type ev struct {
			id     int64
			tenant string
		}
		var list []ev
		for rows.Next() {
			var e ev
			if err := rows.Scan(&e.id, &e.tenant); err != nil {
				rows.Close()
				return err
			}
			list = append(list, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := s.now().UnixNano()
		for _, e := range list {
			for _, t := range route(e.tenant) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO outbox(event, url, tenant, state, next_attempt, created_at, updated_at)
					VALUES (?,?,?,'PENDING',?,?,?) ON CONFLICT(event, url) DO NOTHING`, e.id, t.URL, t.Tenant, now, now, now); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE outbox_events SET routed_at = ? WHERE id = ?`, now, e.id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: route outbox: %w", err)
	}
	return n, nil
}

func (s *Store) OutboxItems(ctx context.Context, f spool.OutboxFilter) ([]spool.OutboxItem, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "o.state IN ("+strings.Join(ph, ",")+")")
	}
	if f.BatchID != "" {
		where = append(where, "e.batch_id = ?")
		args = append(args, f.BatchID)
	}
	if !f.DueBy.IsZero() {
		where = append(where, "o.next_attempt <= ?")
		args = append(args, f.DueBy.UnixNano())
	}
	if f.AfterID > 0 {
		where = append(where, "o.id > ?")
		args = append(args, f.AfterID)
	}
	q := `SELECT o.id, o.url, o.tenant, o.state, o.attempts, o.next_attempt, o.last_error, o.last_status, o.delivered_at, o.created_at, o.updated_at,
		e.id, e.event_id, e.kind, e.batch_id, e.tenant, e.page, e.pages, e.first_seq, e.last_seq, e.created_at
		FROM outbox o JOIN outbox_events e ON e.id = o.event`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	if f.DueBy.IsZero() {
		q += " ORDER BY o.id LIMIT ?"
	} else {
		q += " ORDER BY o.next_attempt, o.id LIMIT ?" // due work: longest waiting first, so no item starves
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox items: %w", err)
	}
	defer rows.Close()
	var out []spool.OutboxItem
	for rows.Next() {
		var it spool.OutboxItem
		var state string
		var next, delivered, created, updated, evCreated int64
		if err := rows.Scan(&it.ID, &it.URL, &it.Tenant, &state, &it.Attempts, &next, &it.LastError, &it.LastStatus, &delivered, &created, &updated,
			&it.Event.ID, &it.Event.EventID, &it.Event.Kind, &it.Event.BatchID, &it.Event.Tenant, &it.Event.Page, &it.Event.Pages,
			&it.Event.FirstSeq, &it.Event.LastSeq, &evCreated); err != nil {
			return nil, fmt.Errorf("sqlite: outbox items: %w", err)
		}
		it.State = spool.OutboxState(state)
		it.NextAttempt, it.DeliveredAt = unixOrZero(next), unixOrZero(delivered)
		it.CreatedAt, it.UpdatedAt, it.Event.CreatedAt = unixOrZero(created), unixOrZero(updated), unixOrZero(evCreated)
		out = append(out, it)
	}
	return out, rows.Err()
}

func (s *Store) OutboxDelivered(ctx context.Context, id int64, status int) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state, url, eventID, batchID string
		var alarm int64
		err := tx.QueryRowContext(ctx, `SELECT o.state, o.url, o.alarm, e.event_id, e.batch_id FROM outbox o JOIN outbox_events e ON e.id = o.event WHERE o.id = ?`, id).
			Scan(&state, &url, &alarm, &eventID, &batchID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("outbox item %d: %w", id, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if state == string(spool.OutboxDelivered) {
			return nil
		}
		now := s.now().UnixNano()
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'DELIVERED', attempts = attempts + 1, last_status = ?, last_error = '',
			delivered_at = ?, updated_at = ? WHERE id = ?`, status, now, now, id); err != nil {
			return err
		}
		if alarm != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE alarms SET resolved_at = ? WHERE id = ? AND resolved_at = 0`, now, alarm); err != nil {
				return err
			}
			return s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "webhook.recovered", Subject: eventID,
				Detail: []byte(fmt.Sprintf(`{"batch":%q,"url":%q,"outbox":%d}`, batchID, url, id))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: outbox delivered: %w", err)
	}
	return nil
}

func (s *Store) OutboxFailed(ctx context.Context, f spool.OutboxFailure) (bool, error) {
	alarmed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state, url, eventID, batchID string
		var attempts int
		err := tx.QueryRowContext(ctx, `SELECT o.state, o.url, o.attempts, e.event_id, e.batch_id FROM outbox o JOIN outbox_events e ON e.id = o.event WHERE o.id = ?`, f.ID).
			Scan(&state, &url, &attempts, &eventID, &batchID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("outbox item %d: %w", f.ID, spool.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if state == string(spool.OutboxDelivered) {
			return nil // a concurrent attempt landed; keep it delivered
		}
		now := s.now().UnixNano()
		attempts++
		msg := f.Error
		if len(msg) > 500 {
			msg = msg[:500]
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = ?, last_status = ?, last_error = ?, next_attempt = ?, updated_at = ? WHERE id = ?`,
			attempts, f.Status, msg, nanos(f.NextAttempt), now, f.ID); err != nil {
			return err
		}
		if state != string(spool.OutboxPending) || f.AlarmAfter <= 0 || attempts < f.AlarmAfter {
			return nil
		}
		detail := fmt.Sprintf("webhook %s: event %s failed %d times: %s", url, eventID, attempts, msg)
		res, err := tx.ExecContext(ctx, `INSERT INTO alarms(at, kind, batch_id, detail) VALUES (?,?,?,?)`, now, "webhook_failing", batchID, detail)
		if err != nil {
			return err
		}
		alarmID, _ := res.LastInsertId()
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'FAILING', alarm = ? WHERE id = ?`, alarmID, f.ID); err != nil {
			return err
		}
		alarmed = true
		return s.appendAudit(ctx, tx, spool.Event{Actor: "system", Action: "webhook.failing", Subject: eventID, Reason: msg,
			Detail: []byte(fmt.Sprintf(`{"batch":%q,"url":%q,"outbox":%d,"attempts":%d}`, batchID, url, f.ID, attempts))})
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: outbox failed: %w", err)
	}
	return alarmed, nil
}
