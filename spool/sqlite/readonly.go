package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
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
	q := url.Values{}
	q.Set("_busy_timeout", "15000")
	q.Set("_query_only", "true")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(2)
	s := &Store{w: r, r: r, path: path, now: time.Now}
	if err := s.Ping(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}
