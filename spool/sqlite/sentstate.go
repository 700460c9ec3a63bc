package sqlite

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
// stateOf, or through stateCounts for counts.

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

// stateCounts is the SQL of the records' count and fen by batch and
// effective state, for the visible batches matching batchCond (an SQL
// condition over batches b, e.g. "b.id = ?1"). Each record is read once:
// a planned batch through its deliveries, whose state tells a PENDING row's
// (they partition the batch; CROSS JOIN walks each delivery's range of
// records in key order instead of looking a delivery up for every record),
// a batch not yet planned directly. Columns: batch, st, n, fen.
func stateCounts(batchCond string) string {
	return `SELECT r.batch AS batch, CASE WHEN r.state = 'PENDING' AND d.state = 'SENT' THEN 'SENT' ELSE r.state END AS st,
		count(*) AS n, coalesce(sum(r.amount_fen), 0) AS fen
		FROM deliveries d CROSS JOIN records r ON r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq
		WHERE d.batch IN (SELECT b.id FROM batches b WHERE b.state <> 'STAGING' AND ` + batchCond + `)
		GROUP BY r.batch, st
		UNION ALL
		SELECT r.batch, r.state, count(*), coalesce(sum(r.amount_fen), 0) FROM records r
		WHERE r.batch IN (SELECT b.id FROM batches b WHERE b.state <> 'STAGING' AND ` + batchCond + `
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch = b.id))
		GROUP BY r.batch, r.state`
}
