package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"yktgw/gateway/report"
	"yktgw/spool"
)

// The check lists read the spool through report.Store.
var _ report.Store = (*Store)(nil)

// reportCols are the columns of a report.Row, over records r, its row of
// record_fields f if any (else it is packed: the last two columns), batches b
// and bad_accounts x.
var reportCols = `b.batch_id, b.tenant, b.bank, b.subsidy_code, b.period, r.seq, f.fields_enc, f.name_enc, f.id_enc, f.account_enc,
	r.id_index, r.account_index, r.amount_fen, ` + stateOf("r") + `, r.reason, r.bank_code, r.bank_message, coalesce(x.reason, ''), r.batch, f.seq IS NULL`

const reportFrom = ` FROM records r LEFT JOIN record_fields f ON f.batch = r.batch AND f.seq = r.seq JOIN batches b ON b.id = r.batch LEFT JOIN bad_accounts x ON x.account_index = r.account_index`

// scopeWhere is the WHERE condition (over r and b) of a scope: visible
// batches, live records, the tenants' prefixes, subsidy and period.
func scopeWhere(sc report.Scope) (string, []any) {
	var sb strings.Builder
	var args []any
	sb.WriteString(`b.state NOT IN ('STAGING', 'CANCELLED') AND r.state NOT IN ('STAGED', 'CANCELLED')`)
	if sc.Tenants != nil {
		if len(sc.Tenants) == 0 {
			sb.WriteString(` AND 0`)
		} else {
			sb.WriteString(` AND (`)
			for i, t := range sc.Tenants {
				if i > 0 {
					sb.WriteString(` OR `)
				}
				// substr, not LIKE: a prefix is compared exactly.
				sb.WriteString(`substr(b.tenant, 1, length(?)) = ?`)
				args = append(args, t, t)
			}
			sb.WriteString(`)`)
		}
	}
	if sc.Subsidy != "" {
		sb.WriteString(` AND b.subsidy_code = ?`)
		args = append(args, sc.Subsidy)
	}
	if sc.Period != "" {
		sb.WriteString(` AND b.period = ?`)
		args = append(args, sc.Period)
	}
	return sb.String(), args
}

func (s *Store) reportRows(ctx context.Context, what, query string, args []any, fn func(*report.Row) error) error {
	// The spool's own errors are named; fn's come back as fn gave them.
	fail := func(err error) error { return fmt.Errorf("sqlite: report %s: %w", what, err) }
	return s.readConn(ctx, func(c *sql.Conn, packs *packReader) error {
		rows, err := c.QueryContext(ctx, query, args...)
		if err != nil {
			return fail(err)
		}
		defer rows.Close()
		var r report.Row
		var state, remark string
		var pk int64
		var packed bool
		for rows.Next() {
			if err := rows.Scan(&r.BatchID, &r.Tenant, &r.Bank, &r.Subsidy, &r.Period, &r.Seq, &r.FieldsEnc, &r.NameEnc, &r.IDEnc, &r.AccountEnc,
				&r.IDIndex, &r.AccountIndex, &r.AmountFen, &state, &r.Reason, &r.BankCode, &r.BankMessage, &r.BadReason, &pk, &packed); err != nil {
				return fail(err)
			}
			if packed {
				if err := packs.fill(ctx, pk, r.Seq, &r.FieldsEnc, &remark); err != nil {
					return fail(err)
				}
			}
			r.State = spool.RecordState(state)
			if err := fn(&r); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fail(err)
		}
		return nil
	})
}

// ScopeRecords streams every record in scope by batch, then seq.
func (s *Store) ScopeRecords(ctx context.Context, sc report.Scope, fn func(*report.Row) error) error {
	where, args := scopeWhere(sc)
	return s.reportRows(ctx, "scope", `SELECT `+reportCols+reportFrom+` WHERE `+where+` ORDER BY b.id, r.seq`, args, fn)
}

// PersonGroups streams the records of persons with more than one record in
// scope, by person, batch, seq.
func (s *Store) PersonGroups(ctx context.Context, sc report.Scope, fn func(*report.Row) error) error {
	where, args := scopeWhere(sc)
	q := `SELECT ` + reportCols + reportFrom + ` WHERE ` + where + ` AND r.id_index IN (
		SELECT r.id_index FROM records r JOIN batches b ON b.id = r.batch WHERE ` + where + `
		GROUP BY r.id_index HAVING count(*) > 1)
		ORDER BY r.id_index, b.id, r.seq`
	return s.reportRows(ctx, "duplicates", q, append(args, args...), fn)
}

// SharedAccountGroups streams the records of accounts used by more than one
// ID number in scope, by account, person, batch, seq.
func (s *Store) SharedAccountGroups(ctx context.Context, sc report.Scope, fn func(*report.Row) error) error {
	where, args := scopeWhere(sc)
	q := `SELECT ` + reportCols + reportFrom + ` WHERE ` + where + ` AND r.account_index IN (
		SELECT r.account_index FROM records r JOIN batches b ON b.id = r.batch WHERE ` + where + `
		GROUP BY r.account_index HAVING count(DISTINCT r.id_index) > 1)
		ORDER BY r.account_index, r.id_index, b.id, r.seq`
	return s.reportRows(ctx, "shared accounts", q, append(args, args...), fn)
}

// MultiAccountGroups streams, among records of the given subsidies, those of
// persons with more than one account and more than one subsidy, by person,
// subsidy, batch, seq.
func (s *Store) MultiAccountGroups(ctx context.Context, sc report.Scope, subsidies []string, fn func(*report.Row) error) error {
	if len(subsidies) == 0 {
		return nil
	}
	where, args := scopeWhere(sc)
	where += ` AND b.subsidy_code IN (?` + strings.Repeat(`, ?`, len(subsidies)-1) + `)`
	for _, c := range subsidies {
		args = append(args, c)
	}
	q := `SELECT ` + reportCols + reportFrom + ` WHERE ` + where + ` AND r.id_index IN (
		SELECT r.id_index FROM records r JOIN batches b ON b.id = r.batch WHERE ` + where + `
		GROUP BY r.id_index HAVING count(DISTINCT r.account_index) > 1 AND count(DISTINCT b.subsidy_code) > 1)
		ORDER BY r.id_index, b.subsidy_code, b.id, r.seq`
	return s.reportRows(ctx, "cross department", q, append(args, args...), fn)
}

// FailedRecords streams the FAILED records of a visible batch by seq.
func (s *Store) FailedRecords(ctx context.Context, batchID string, fn func(*report.Row) error) error {
	return s.reportRows(ctx, "failed records", `SELECT `+reportCols+reportFrom+`
		WHERE b.batch_id = ? AND b.state <> 'STAGING' AND r.state = 'FAILED' ORDER BY r.seq`, []any{batchID}, fn)
}
