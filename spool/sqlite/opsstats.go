package sqlite

import (
	"context"
	"fmt"
	"os"
	"time"

	"yktgw/spool"
)

var _ spool.OpsStatser = (*Store)(nil)

// OpsStats summarises the spool for the metrics collector, on the read-only
// connections. The record tally scans the records table: callers cache it.
func (s *Store) OpsStats(ctx context.Context, now time.Time) (*spool.OpsStats, error) {
	st := &spool.OpsStats{
		DeadDeliveries:   map[string]int64{},
		OldestUnanswered: map[string]time.Time{},
		OverdueRecords:   map[string]int64{},
		OpenAlarms:       map[string]int64{},
		Outbox:           map[spool.OutboxState]int64{},
	}
	tally := func(q string, args []any, fn func(a, b string, n, fen int64)) error {
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			var n, fen int64
			if err := rows.Scan(&a, &b, &n, &fen); err != nil {
				return err
			}
			fn(a, b, n, fen)
		}
		return rows.Err()
	}
	err := tally(`SELECT state, bank, count(*), coalesce(sum(total_fen),0) FROM batches WHERE state <> 'STAGING' GROUP BY state, bank`, nil,
		func(a, b string, n, fen int64) {
			st.Batches = append(st.Batches, spool.KeyCount{State: a, Bank: b, Count: n, Fen: fen})
		})
	if err == nil {
		// Tallied per batch, then summed per bank here. A SETTLED batch's
		// records are all PAID or FAILED and stay so: its applied return
		// files' sums say how many and how much (settling checked them
		// against the records, 0011); only the other batches' records are
		// read, each batch in key order.
		perBank := map[[2]string]*spool.KeyCount{}
		var order [][2]string
		// Effective states (sentstate.go): a PENDING row of a SENT delivery counts as SENT.
		err = tally(`SELECT t.st, b.bank, t.n, t.fen FROM (`+stateCounts("b.state <> 'SETTLED'")+`) AS t
			JOIN batches b ON b.id = t.batch
			UNION ALL
			SELECT 'PAID', b.bank, sum(f.paid), sum(f.paid_fen) FROM batches b JOIN deliveries d ON d.batch = b.id
			  JOIN feedback_files f ON f.delivery = d.id AND f.state = 'APPLIED' WHERE b.state = 'SETTLED' GROUP BY b.id HAVING sum(f.paid) > 0
			UNION ALL
			SELECT 'FAILED', b.bank, sum(f.failed), sum(f.failed_fen) FROM batches b JOIN deliveries d ON d.batch = b.id
			  JOIN feedback_files f ON f.delivery = d.id AND f.state = 'APPLIED' WHERE b.state = 'SETTLED' GROUP BY b.id HAVING sum(f.failed) > 0`, nil,
			func(a, b string, n, fen int64) {
				k := [2]string{a, b}
				c := perBank[k]
				if c == nil {
					c = &spool.KeyCount{State: a, Bank: b}
					perBank[k] = c
					order = append(order, k)
				}
				c.Count += n
				c.Fen += fen
			})
		for _, k := range order {
			st.Records = append(st.Records, *perBank[k])
		}
	}
	if err == nil {
		err = tally(`SELECT bank, '', count(*), 0 FROM deliveries WHERE state = 'DEAD' GROUP BY bank`, nil,
			func(a, _ string, n, _ int64) { st.DeadDeliveries[a] = n })
	}
	if err == nil {
		err = tally(`SELECT d.bank, '', min(d.sent_at), 0 FROM deliveries d WHERE d.state = 'SENT' AND d.sent_at > 0
			AND NOT EXISTS (SELECT 1 FROM feedback_files f WHERE f.delivery = d.id AND f.state = 'APPLIED') GROUP BY d.bank`, nil,
			func(a, _ string, n, _ int64) { st.OldestUnanswered[a] = time.Unix(0, n).UTC() })
	}
	if err == nil {
		err = tally(`SELECT d.bank, '', count(*), 0 FROM deliveries d JOIN records r ON r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq
			WHERE d.state = 'SENT' AND d.deadline_at > 0 AND d.deadline_at < ? AND r.state IN ('PENDING','SENT','UNKNOWN') GROUP BY d.bank`, []any{now.UnixNano()},
			func(a, _ string, n, _ int64) { st.OverdueRecords[a] = n })
	}
	if err == nil {
		err = tally(`SELECT kind, '', count(*), 0 FROM alarms WHERE resolved_at = 0 GROUP BY kind`, nil,
			func(a, _ string, n, _ int64) { st.OpenAlarms[a] = n })
	}
	if err == nil {
		err = tally(`SELECT state, '', count(*), 0 FROM outbox GROUP BY state`, nil,
			func(a, _ string, n, _ int64) { st.Outbox[spool.OutboxState(a)] = n })
	}
	if err == nil {
		var oldest int64
		err = s.r.QueryRowContext(ctx, `SELECT coalesce(min(created_at), 0) FROM outbox WHERE state <> 'DELIVERED'`).Scan(&oldest)
		st.OldestUndelivered = unixOrZero(oldest)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: ops stats: %w", err)
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			st.SpoolBytes += fi.Size()
		}
	}
	return st, nil
}
