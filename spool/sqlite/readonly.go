package sqlite

import (
	"context"
	"fmt"
	"os"
	"time"
)

// OpenReadOnly opens an existing spool for reading only, beside a running
// daemon: no migration, no start-up recovery (which would remove the
// daemon's in-flight stages), every connection query-only. Methods that
// write fail. For ops commands that only look (audit verify/export, the
// webhook outbox listing).
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r := openPool(path, 2, map[string]string{"_busy_timeout": "15000", "_query_only": "true"})
	s := &Store{w: r, r: r, path: path, now: time.Now}
	if err := s.Ping(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}
