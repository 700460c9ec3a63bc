package sqlite

import (
	"context"
	"database/sql"
)

// A record is SENT because its delivery is (migration 0013): a delivery
// covers first_seq..last_seq of its batch, the deliveries of a batch
// partition it, and SENT is final for a delivery. The row of a record keeps
// PENDING until the bank's word (PAID, FAILED) or an overdue deadline
// (UNKNOWN) changes it; what the spool shows is its effective state:
//
//	stored PENDING, delivery SENT  -> SENT
//	anything else                  -> as stored (SENT rows of earlier versions included)
//
// Everything that reads a record's state outside this file goes through
// stateOf, or through pendingSent for counts.

// sentOf is an SQL expression over a record alias: 1 when the record's
// delivery is SENT, else 0 (no delivery yet included). One seek in
// deliveries_range: the delivery with the greatest first_seq not above the
// record's seq, which covers it when its last_seq reaches the seq.
func sentOf(r string) string {
	return `coalesce((SELECT sd.state = 'SENT' AND sd.last_seq >= ` + r + `.seq FROM deliveries sd INDEXED BY deliveries_range
		WHERE sd.batch = ` + r + `.batch AND sd.first_seq <= ` + r + `.seq ORDER BY sd.first_seq DESC LIMIT 1), 0)`
}

// stateOf is an SQL expression over a record alias: its effective state.
// The delivery is looked up only for a PENDING row.
func stateOf(r string) string {
	return `(CASE WHEN ` + r + `.state = 'PENDING' AND ` + sentOf(r) + ` THEN 'SENT' ELSE ` + r + `.state END)`
}

// pendingSentSQL counts, per batch, the records stored PENDING whose
// delivery is SENT (effectively SENT), walking each SENT delivery's range of
// records once. ?1 restricts it to one batch (0: every batch). A SETTLED
// batch has no PENDING record (settling checks): its deliveries are skipped.
const pendingSentSQL = `SELECT d.batch, count(*), coalesce(sum(r.amount_fen), 0)
	FROM deliveries d JOIN records r ON r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq
	WHERE d.state = 'SENT' AND r.state = 'PENDING' AND (?1 = 0 OR d.batch = ?1)
	  AND d.batch IN (SELECT id FROM batches WHERE state <> 'SETTLED')
	GROUP BY d.batch`

// pendingSent returns, per batch, the count and fen of the records stored
// PENDING whose delivery is SENT; batch 0 asks for every batch.
func pendingSent(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, batch int64) (map[int64][2]int64, error) {
	rows, err := q.QueryContext(ctx, pendingSentSQL, batch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][2]int64{}
	for rows.Next() {
		var b, n, fen int64
		if err := rows.Scan(&b, &n, &fen); err != nil {
			return nil, err
		}
		out[b] = [2]int64{n, fen}
	}
	return out, rows.Err()
}
