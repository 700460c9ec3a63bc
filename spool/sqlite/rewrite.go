package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"yktgw/spool"
)

var _ spool.FieldRewriter = (*Store)(nil)

func (s *Store) RewriteFields(ctx context.Context, after spool.FieldCursor, limit int, fn func(*spool.FieldRow) (bool, error)) (spool.FieldCursor, int, int, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT r.batch, b.batch_id, r.seq, r.fields_enc, r.name_enc, r.id_enc, r.account_enc FROM record_fields r
		JOIN batches b ON b.id = r.batch
		WHERE b.state <> 'STAGING' AND (r.batch, r.seq) > (?, ?)
		ORDER BY r.batch, r.seq LIMIT ?`, after.Batch, after.Seq, limit)
	if err != nil {
		return after, 0, 0, fmt.Errorf("sqlite: rewrite fields: %w", err)
	}
	type row struct {
		pk int64
		spool.FieldRow
		changed bool
	}
	var page []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pk, &r.BatchID, &r.Seq, &r.FieldsEnc, &r.NameEnc, &r.IDEnc, &r.AccountEnc); err != nil {
			rows.Close()
			return after, 0, 0, err
		}
		page = append(page, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return after, 0, 0, err
	}
	if len(page) == 0 {
		return after, 0, 0, nil
	}
	changed := 0
	for i := range page {
		ok, err := fn(&page[i].FieldRow)
		if err != nil {
			return after, 0, 0, err
		}
		page[i].changed = ok
		if ok {
			changed++
		}
	}
	if changed > 0 {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			stmt, err := tx.PrepareContext(ctx, `UPDATE record_fields SET fields_enc = ?, name_enc = ?, id_enc = ?, account_enc = ? WHERE batch = ? AND seq = ?`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for _, r := range page {
				if r.changed {
					if _, err := stmt.Exec(blob(r.FieldsEnc), blob(r.NameEnc), blob(r.IDEnc), blob(r.AccountEnc), r.pk, r.Seq); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return after, 0, 0, fmt.Errorf("sqlite: rewrite fields: %w", err)
		}
	}
	last := page[len(page)-1]
	return spool.FieldCursor{Batch: last.pk, Seq: last.Seq}, len(page), changed, nil
}
