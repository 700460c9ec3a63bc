package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// NonceRetention is how long a callback nonce is remembered. It must be
// longer than any timestamp window a callback is checked against (a nonce
// older than the window is refused by its timestamp anyway).
const NonceRetention = 24 * time.Hour

// UseNonce records a signed callback's nonce for bank, durably (committed
// before it returns), and reports whether it was fresh (false: seen
// before, a replay). at is the callback's own timestamp. Nonces whose
// timestamp is older than NonceRetention are forgotten on the way.
func (s *Store) UseNonce(ctx context.Context, bank, nonce string, at time.Time) (fresh bool, err error) {
	if bank == "" || nonce == "" {
		return false, fmt.Errorf("sqlite: use nonce: bank and nonce required")
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM callback_nonces WHERE seen_at < ?`, s.now().Add(-NonceRetention).UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO callback_nonces(bank, nonce, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			bank, nonce, at.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: use nonce: %w", err)
	}
	return fresh, nil
}
