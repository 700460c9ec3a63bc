// Package sqlite is the embedded, default spool.Store: one SQLite file in WAL
// mode with synchronous=FULL (a commit is on disk before it returns), foreign
// keys on, a busy timeout, and versioned migrations embedded in the binary.
//
// Writes go through one connection (SQLite has one writer; serialising in the
// pool avoids busy-waiting), reads through a small pool of read-only ones.
// It must not hold personal data in clear: it stores what gateway encrypted.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"yktgw/spool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite spool.
type Store struct {
	w    *sql.DB // one writer connection
	r    *sql.DB // readers
	path string
	now  func() time.Time

	c          *sql.DB       // the checkpointer's connection
	stop, done chan struct{} // checkpointer shutdown
	quiet      atomic.Int64  // checkpointQuiet in nanoseconds (tests change it)
	log        logStats      // what the checkpointer did

	scratch fbScratch // return files staged ahead of the writer (feedback_stage.go)
}

// The checkpointer looks at the log every checkpointEvery. It copies the log
// into the database once it holds checkpointAt while the spool is quiet (no
// commit from any connection for checkpointQuiet), and only past
// checkpointBusyAt while commits keep coming.
//
// Deferring the copy while the spool is busy takes it off the paths that
// wait: at 1,000,000 records intake writes about 250 MiB of log, and copying
// it as it grew cost the staging writer about 0.3 s of its 2 s and the daemon
// 0.4 CPU-s more on two cores (BenchmarkStageAndFinalize; the copy of the
// whole log at the end takes 0.55 s and 0.44 CPU-s). The same copy then runs
// when the intake, its deliveries and their feedback have been written, and a
// spool that never rests still copies its log at checkpointBusyAt. The
// writer's autocheckpoint stays as the safety net past that.
const (
	checkpointEvery  = 250 * time.Millisecond
	checkpointAt     = 16 << 20
	checkpointBusyAt = 1 << 30
	checkpointQuiet  = time.Second
)

// checkpointer runs PASSIVE checkpoints (they never block the writer or a
// reader) as described above. The copy is of committed pages only; a crash in
// the middle is what WAL is made for.
func (s *Store) checkpointer() {
	defer close(s.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var version int64
	var dirty bool // commits since the last complete copy
	var lastSize int64
	var lastMod time.Time
	quietSince := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		// data_version changes whenever another connection has committed.
		var v int64
		if err := s.c.QueryRow(`PRAGMA data_version`).Scan(&v); err != nil || v != version {
			version, quietSince, dirty = v, time.Now(), true
		}
		fi, err := os.Stat(s.path + "-wal")
		if err != nil {
			continue
		}
		s.log.bytes.Store(fi.Size())
		if fi.Size() != lastSize || fi.ModTime() != lastMod {
			// The log grew (or was written over): let the disk take it now
			// rather than in the next FULL commit's fsync (writeback_linux.go).
			lastSize, lastMod = fi.Size(), fi.ModTime()
			startWriteback(s.path + "-wal")
		}
		due := dirty && checkpointDue(fi.Size(), time.Since(quietSince), time.Duration(s.quiet.Load()))
		s.log.deferred.Store(dirty && fi.Size() >= checkpointAt && !due)
		if !due {
			continue
		}
		// Once everything is copied, the next write transaction starts the log
		// from its beginning again (and journal_size_limit trims the file).
		// An error leaves the writer's own autocheckpoint as the safety net.
		var busy, logPages, done int
		start := time.Now()
		if err := s.c.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &done); err != nil {
			continue
		}
		s.log.copies.Add(1)
		s.log.time.Add(int64(time.Since(start)))
		// A reader still on an older snapshot can keep the copy from reaching
		// the end of the log: the next tick tries again.
		dirty = busy != 0 || done < logPages
	}
}

// logStats are the checkpointer's figures (LogStats).
type logStats struct {
	deferred            atomic.Bool
	copies, time, bytes atomic.Int64
}

// LogStats implements spool.LogStatter.
func (s *Store) LogStats() spool.LogStats {
	return spool.LogStats{Deferred: s.log.deferred.Load(), Copies: s.log.copies.Load(),
		Time: time.Duration(s.log.time.Load()), LogBytes: s.log.bytes.Load()}
}

// checkpointDue tells whether a log of size bytes is to be copied now, the
// last commit having been quiet ago, when a quiet spool is one without a
// commit for wait.
func checkpointDue(size int64, quiet, wait time.Duration) bool {
	return size >= checkpointBusyAt || size >= checkpointAt && quiet >= wait
}

var _ spool.Store = (*Store)(nil)

// Open opens (creating if needed) the spool at path, applies pending
// migrations and removes stages left by a crash.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// The writer: one connection. A 16 MiB page cache: writes are appends
	// and sorted claims now, which need few pages; with 64 MiB, staging
	// 1,000,000 records in the daemon took 39-46 s instead of 14-16 s on this
	// 2-core machine (and the peak RSS grew with the batch).
	//
	// The checkpointer goroutine below copies the log into the database from
	// a connection of its own, so a big intake does not stop for the copy;
	// it waits for the spool to be quiet, up to checkpointBusyAt of log. The
	// writer's own autocheckpoint is the safety net past twice that (2 GiB):
	// only a checkpoint that reaches the end of the log lets the next write
	// start it over, and a log that only grows makes page lookups slower (the
	// wal-index is searched one 4096-frame segment at a time).
	//
	// Temporary B-trees (big GROUP BYs, the statement journal of a
	// 1,000,000-row UPDATE) go to a file: in memory they made the peak RSS.
	w := openPool(path, 1, map[string]string{"_journal_mode": "WAL", "_synchronous": "FULL", "_foreign_keys": "on",
		"_busy_timeout": "15000", "_txlock": "immediate", "_cache_size": "-16384"},
		`PRAGMA journal_size_limit = 67108864`, `PRAGMA wal_autocheckpoint = 524288`, `PRAGMA temp_store = FILE`)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, path: path, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// The file exists now; restrict it (it holds ciphertexts, blind indexes and token hashes).
	_ = os.Chmod(path, 0o600)
	s.r = openPool(path, 4, map[string]string{"_foreign_keys": "on", "_busy_timeout": "15000", "_query_only": "true"})
	s.c = openPool(path, 1, map[string]string{"_busy_timeout": "15000", "_synchronous": "FULL"})
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	s.quiet.Store(int64(checkpointQuiet))
	go s.checkpointer()
	if err := s.recover(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sqliteURIPath escapes what a URI filename would otherwise read as its
// query, its fragment or an escape (a spool path with "?", "#" or "%").
func sqliteURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// openPool opens a pool of at most maxOpen connections to the spool file:
// params are go-sqlite3's DSN parameters, pragmas run on every connection the
// pool opens (a pool may replace a connection at any time, and a PRAGMA run
// once through the pool would set only the connection that ran it).
func openPool(path string, maxOpen int, params map[string]string, pragmas ...string) *sql.DB {
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	// Multi-thread mode for the connection (SQLITE_OPEN_NOMUTEX): database/sql
	// never runs two calls on one connection at once, so SQLite's own
	// per-connection mutex only cost a lock and an unlock around every bind,
	// step and malloc (about 6% of the writer's CPU at intake, measured with
	// perf). sqlite3_interrupt, which go-sqlite3 calls from another goroutine
	// when a context ends, takes no mutex and is safe in this mode.
	q.Set("_mutex", "no")
	d := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range pragmas {
			if _, err := c.Exec(p, nil); err != nil {
				return fmt.Errorf("sqlite: %s: %w", p, err)
			}
		}
		return nil
	}}
	db := sql.OpenDB(connector{d: d, dsn: "file:" + sqliteURIPath(path) + "?" + q.Encode()})
	db.SetMaxOpenConns(maxOpen)
	return db
}

type connector struct {
	d   *sqlite3.SQLiteDriver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.d }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// SetClock replaces the clock (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: bad version", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("apply %s: %w", base, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, s.now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
	}
	return nil
}

// SchemaVersion returns the newest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// recover removes stages a crash or a cut-off upload left behind: a batch that
// never finalized was never acknowledged, so nothing of it may remain.
func (s *Store) recover(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE state = 'STAGING'`)
		return err
	})
}

// txRelaxed runs fn in a transaction committed with synchronous=NORMAL:
// in WAL mode the commit is not fsync'd itself, but the next FULL commit
// syncs the log including it. Only for work that is worthless until a later
// FULL commit makes it count (a stage's records, made visible by Finalize);
// a crash before that loses at most what recovery deletes anyway.
//
// fn gets the transaction's connection too, for statements that go to the
// driver directly (withRaw); it must not hand it on.
func (s *Store) txRelaxed(ctx context.Context, fn func(*sql.Conn, *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); rerr != nil {
			// Never hand a relaxed connection to the next transaction.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return connTx(ctx, conn, fn)
}

// txConn is tx with the connection under it (for raw.go's driver calls).
func (s *Store) txConn(ctx context.Context, fn func(*sql.Conn, *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return connTx(ctx, conn, fn)
}

// connTx runs fn in a transaction on conn, committed if fn returns nil.
func connTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Conn, *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

func (s *Store) Close() error {
	var errs []error
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
		errs = append(errs, s.c.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	errs = append(errs, s.closeScratch())
	return errors.Join(errs...)
}

func isUnique(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

// ---- audit ----

// appendAudit chains an event inside tx.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, ev spool.Event) error {
	var lastSeq int64
	prev := spool.GenesisHash
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: audit tail: %w", err)
	}
	e := spool.AuditEntry{Seq: lastSeq + 1, At: s.now().UTC(), Event: ev, Prev: prev}
	e.Hash = spool.AuditHash(prev, &e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit(seq, at, actor, action, subject, reason, detail, prev, hash) VALUES (?,?,?,?,?,?,?,?,?)`,
		e.Seq, e.At.UnixNano(), e.Actor, e.Action, e.Subject, e.Reason, e.Detail, e.Prev, e.Hash)
	if err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	return nil
}

func (s *Store) Audit(ctx context.Context, ev spool.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.appendAudit(ctx, tx, ev) })
}

func (s *Store) AuditEntries(ctx context.Context, after int64, limit int) ([]spool.AuditEntry, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, actor, action, subject, reason, detail, prev, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	defer rows.Close()
	var out []spool.AuditEntry
	for rows.Next() {
		var e spool.AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Reason, &e.Detail, &e.Prev, &e.Hash); err != nil {
			return nil, err
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// ---- tokens ----

func (s *Store) CreateToken(ctx context.Context, t *spool.Token, actor string) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens(id, name, hash, tenants, roles, created_at) VALUES (?,?,?,?,?,?)`,
			t.ID, t.Name, t.Hash, strings.Join(t.Tenants, ","), strings.Join(t.Roles, ","), t.CreatedAt.UnixNano())
		if isUnique(err) {
			return fmt.Errorf("sqlite: token %s: %w", t.ID, spool.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create token: %w", err)
		}
		return s.appendAudit(ctx, tx, spool.Event{Actor: actor, Action: "token.created", Subject: t.ID,
			Detail: []byte(fmt.Sprintf(`{"name":%q,"tenants":%q,"roles":%q}`, t.Name, strings.Join(t.Tenants, ","), strings.Join(t.Roles, ",")))})
	})
}

func scanToken(sc interface{ Scan(...any) error }) (*spool.Token, error) {
	var t spool.Token
	var tenants, roles string
	var created, revoked int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Hash, &tenants, &roles, &created, &revoked); err != nil {
		return nil, err
	}
	t.Tenants = splitList(tenants)
	t.Roles = splitList(roles)
	t.CreatedAt = time.Unix(0, created).UTC()
	if revoked != 0 {
		t.RevokedAt = time.Unix(0, revoked).UTC()
	}
	return &t, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (s *Store) Token(ctx context.Context, id string) (*spool.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT id, name, hash, tenants, roles, created_at, revoked_at FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: token %s: %w", id, spool.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: token: %w", err)
	}
	return t, nil
}

func (s *Store) Tokens(ctx context.Context) ([]spool.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, hash, tenants, roles, created_at, revoked_at FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tokens: %w", err)
	}
	defer rows.Close()
	var out []spool.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

func (s *Store) RevokeToken(ctx context.Context, id, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, s.now().UnixNano(), id)
		if err != nil {
			return fmt.Errorf("sqlite: revoke token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: token %s: %w", id, spool.ErrNotFound)
		}
		return s.appendAudit(ctx, tx, spool.Event{Actor: actor, Action: "token.revoked", Subject: id})
	})
}
