package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"yktgw/spool"
)

var _ spool.FieldRewriter = (*Store)(nil)

// fieldItem is a row of record_fields (one record) or of record_packs (the
// records first .. last) met by RewriteFields, in (batch, first) order.
type fieldItem struct {
	pk          int64
	first, last int
	packed      bool
	rows        []spool.FieldRow // one, or the pack's records in seq order
	remarks     []string         // a pack's remarks
	changed     bool
}

func (s *Store) RewriteFields(ctx context.Context, after spool.FieldCursor, limit int, fn func(*spool.FieldRow) (bool, error)) (spool.FieldCursor, int, int, error) {
	if limit <= 0 {
		limit = 1000
	}
	// record_fields rows and record_packs rows never hold the same seq, so
	// the two, each read in key order after the cursor, merge into one order.
	var rowItems, packItems []fieldItem
	var moreRows, morePacks bool
	err := s.readConn(ctx, func(c *sql.Conn, _ *packReader) error {
		rows, err := c.QueryContext(ctx, `SELECT r.batch, b.batch_id, r.seq, r.fields_enc, r.name_enc, r.id_enc, r.account_enc FROM record_fields r
			JOIN batches b ON b.id = r.batch
			WHERE b.state <> 'STAGING' AND (r.batch, r.seq) > (?, ?)
			ORDER BY r.batch, r.seq LIMIT ?`, after.Batch, after.Seq, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var it fieldItem
			var r spool.FieldRow
			if err := rows.Scan(&it.pk, &r.BatchID, &r.Seq, &r.FieldsEnc, &r.NameEnc, &r.IDEnc, &r.AccountEnc); err != nil {
				rows.Close()
				return err
			}
			it.first, it.last, it.rows = r.Seq, r.Seq, []spool.FieldRow{r}
			rowItems = append(rowItems, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		packLimit := limit/packRecords + 1
		rows, err = c.QueryContext(ctx, `SELECT p.batch, b.batch_id, p.first_seq, p.last_seq, p.packed FROM record_packs p
			JOIN batches b ON b.id = p.batch
			WHERE b.state <> 'STAGING' AND (p.batch, p.first_seq) > (?, ?)
			ORDER BY p.batch, p.first_seq LIMIT ?`, after.Batch, after.Seq, packLimit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it := fieldItem{packed: true}
			var batchID string
			var blob []byte
			if err := rows.Scan(&it.pk, &batchID, &it.first, &it.last, &blob); err != nil {
				return err
			}
			es, err := parsePack(blob, it.last-it.first+1, nil)
			if err != nil {
				return fmt.Errorf("pack of batch %d seq %d..%d: %w", it.pk, it.first, it.last, err)
			}
			for i, e := range es {
				it.rows = append(it.rows, spool.FieldRow{BatchID: batchID, Seq: it.first + i, FieldsEnc: e.fields})
				it.remarks = append(it.remarks, e.remark)
			}
			packItems = append(packItems, it)
		}
		moreRows, morePacks = len(rowItems) == limit, len(packItems) == packLimit
		return rows.Err()
	})
	if err != nil {
		return after, 0, 0, fmt.Errorf("sqlite: rewrite fields: %w", err)
	}
	// Take items in order while both lists still know what comes next.
	var page []*fieldItem
	read := 0
	for i, j := 0, 0; read < limit; {
		ri, pj := i < len(rowItems), j < len(packItems)
		if (!ri && moreRows) || (!pj && morePacks) || (!ri && !pj) {
			break
		}
		var it *fieldItem
		if ri && (!pj || before(&rowItems[i], &packItems[j])) {
			it = &rowItems[i]
			i++
		} else {
			it = &packItems[j]
			j++
		}
		page = append(page, it)
		read += len(it.rows)
	}
	if len(page) == 0 {
		return after, 0, 0, nil
	}
	changed := 0
	for _, it := range page {
		for k := range it.rows {
			ok, err := fn(&it.rows[k])
			if err != nil {
				return after, 0, 0, err
			}
			if ok {
				if r := &it.rows[k]; it.packed && legacyLayout(r.NameEnc, r.IDEnc, r.AccountEnc) {
					return after, 0, 0, fmt.Errorf("sqlite: rewrite fields: batch %s seq %d: a packed record cannot take the legacy layout", r.BatchID, r.Seq)
				}
				it.changed = true
				changed++
			}
		}
	}
	if changed > 0 {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			for _, it := range page {
				if !it.changed {
					continue
				}
				if it.packed {
					recs := make([]spool.Record, len(it.rows))
					for k := range it.rows {
						recs[k] = spool.Record{FieldsEnc: it.rows[k].FieldsEnc, Remark: it.remarks[k]}
					}
					if _, err := tx.ExecContext(ctx, `UPDATE record_packs SET packed = ? WHERE batch = ? AND first_seq = ?`,
						appendPack(nil, recs), it.pk, it.first); err != nil {
						return err
					}
					continue
				}
				r := it.rows[0]
				if _, err := tx.ExecContext(ctx, `UPDATE record_fields SET fields_enc = ?, name_enc = ?, id_enc = ?, account_enc = ? WHERE batch = ? AND seq = ?`,
					blob(r.FieldsEnc), blob(r.NameEnc), blob(r.IDEnc), blob(r.AccountEnc), it.pk, r.Seq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return after, 0, 0, fmt.Errorf("sqlite: rewrite fields: %w", err)
		}
	}
	last := page[len(page)-1]
	return spool.FieldCursor{Batch: last.pk, Seq: last.last}, read, changed, nil
}

// before orders field items by (batch, first seq).
func before(a, b *fieldItem) bool {
	return a.pk < b.pk || a.pk == b.pk && a.first < b.first
}
