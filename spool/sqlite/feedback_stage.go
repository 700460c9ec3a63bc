package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"

	"yktgw/spool"
)

// Return files staged ahead of the writer.
//
// Applying a return file on the one writer connection used to begin by
// inserting its 50,000 lines into temporary tables (about 35 ms of the
// writer's ~220 ms per file). StageFeedback does that part beforehand, from a
// connection of its own, into a scratch database next to the spool
// (<spool>-fbstage, WAL mode, never synced: it holds nothing that must
// survive, only a copy of lines the caller keeps in memory). ApplyFeedback
// of the same file attaches the scratch database read-only for the length of
// its transaction (BEGIN IMMEDIATE then takes a read lock on it, not a write
// lock, so the stager can fill the next file meanwhile) and only updates,
// checks and commits. Nothing about what is applied changes: the lines the
// file's produce function yields inside the transaction must be exactly the
// staged ones, or the file goes the ordinary way; counts, sums and states are
// checked as before; anything off rolls back and the file is checked line by
// line from memory.
//
// The scratch database is made on first use and removed by Close; one left by
// a crash is replaced.

// fbScratch is the stager's state, one per Store.
type fbScratch struct {
	mu     sync.Mutex
	db     *sql.DB // the stager's one connection; nil until first use
	path   string
	broken error // making the scratch database failed: staging is off
	slots  int   // slot tables made (fbl<n>, fbk<n>)
	free   []int
	staged map[fbStageKey]*fbStaged
}

type fbStageKey struct{ bank, name, sm3 string }

// fbStaged is one staged return file.
type fbStaged struct {
	slot            int
	rows            []spool.ResultRow // as given to StageFeedback (not copied)
	paidN, failedN  int
	paidFen         int64
	dup             bool // a seq given twice: the line-by-line check names it
	inUse, released bool
}

func (st *fbStaged) tables() (lines, kinds string) {
	return fmt.Sprintf("fbs.fbl%d", st.slot), fmt.Sprintf("fbs.fbk%d", st.slot)
}

func stageKey(f spool.Feedback) fbStageKey {
	return fbStageKey{f.Bank, f.Name, string(f.SM3)}
}

// StageFeedback writes a prepared return file's lines where ApplyFeedback
// of the same file (same bank, name and SM3, the same rows produced in the
// same order) reads them, so that the writer only updates, checks and
// commits. It records nothing and decides nothing. release frees what was
// staged; call it once ApplyFeedback has returned, or when the file will not
// be applied. An error means nothing was staged (ApplyFeedback then stages
// the lines itself); release is then a no-op.
func (s *Store) StageFeedback(ctx context.Context, f spool.Feedback, rows []spool.ResultRow) (release func(), err error) {
	noop := func() {}
	sc := &s.scratch
	st := &fbStaged{rows: rows}
	key := stageKey(f)
	sc.mu.Lock()
	if err := s.openScratchLocked(); err != nil {
		sc.mu.Unlock()
		return noop, err
	}
	if _, dup := sc.staged[key]; dup {
		sc.mu.Unlock()
		return noop, fmt.Errorf("sqlite: stage feedback %s: already staged", f.Name)
	}
	if n := len(sc.free); n > 0 {
		st.slot = sc.free[n-1]
		sc.free = sc.free[:n-1]
	} else {
		st.slot = sc.slots
		sc.slots++
	}
	db := sc.db
	sc.mu.Unlock()
	if err := stageLines(ctx, db, st); err != nil {
		sc.mu.Lock()
		sc.free = append(sc.free, st.slot)
		sc.mu.Unlock()
		return noop, fmt.Errorf("sqlite: stage feedback %s: %w", f.Name, err)
	}
	sc.mu.Lock()
	if sc.staged == nil {
		sc.staged = map[fbStageKey]*fbStaged{}
	}
	if _, dup := sc.staged[key]; dup {
		sc.free = append(sc.free, st.slot)
		sc.mu.Unlock()
		return noop, fmt.Errorf("sqlite: stage feedback %s: already staged", f.Name)
	}
	sc.staged[key] = st
	sc.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if sc.staged[key] == st {
				delete(sc.staged, key)
			}
			st.released = true
			if !st.inUse {
				sc.free = append(sc.free, st.slot)
			}
		})
	}, nil
}

// openScratchLocked makes the scratch database on first use.
func (s *Store) openScratchLocked() error {
	sc := &s.scratch
	if sc.db != nil || sc.broken != nil {
		return sc.broken
	}
	sc.path = s.path + "-fbstage"
	removeScratch(sc.path)
	db := openPool(sc.path, 1, map[string]string{"_journal_mode": "WAL", "_synchronous": "OFF", "_busy_timeout": "15000"})
	if err := db.Ping(); err != nil {
		db.Close()
		sc.broken = fmt.Errorf("sqlite: feedback scratch database: %w", err)
		return sc.broken
	}
	_ = os.Chmod(sc.path, 0o600)
	sc.db = db
	return nil
}

// closeScratch closes and removes the scratch database (Close).
func (s *Store) closeScratch() error {
	sc := &s.scratch
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.db == nil {
		return nil
	}
	err := sc.db.Close()
	sc.db = nil
	sc.broken = errors.New("sqlite: store closed")
	removeScratch(sc.path)
	return err
}

func removeScratch(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		_ = os.Remove(p)
	}
}

// stageLines fills st's slot tables in one transaction of the stager's
// connection (counting as fastApply would).
func stageLines(ctx context.Context, db *sql.DB, st *fbStaged) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	lines, kinds := fmt.Sprintf("fbl%d", st.slot), fmt.Sprintf("fbk%d", st.slot)
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + kinds + ` (k INTEGER PRIMARY KEY, paid INTEGER NOT NULL, reason TEXT NOT NULL, code TEXT NOT NULL, msg TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + lines + ` (seq INTEGER PRIMARY KEY, k INTEGER NOT NULL, fen INTEGER NOT NULL, serial TEXT NOT NULL)`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM ` + lines, `DELETE FROM ` + kinds} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			tx.Rollback()
			return err
		}
	}
	var seen seqSet
	if len(st.rows) > 0 {
		lo, hi := st.rows[0].Seq, st.rows[0].Seq
		for _, r := range st.rows {
			lo, hi = min(lo, r.Seq), max(hi, r.Seq)
		}
		if hi-lo < 4*len(st.rows) {
			seen.init(lo, hi)
		}
	}
	err = withRaw(conn, func(c *sqlite3.SQLiteConn) error {
		stg, err := newFbStager(c, lines, kinds)
		if err != nil {
			return err
		}
		defer stg.close()
		for _, r := range st.rows {
			if !seen.add(r.Seq) {
				st.dup = true
				continue
			}
			if r.Paid {
				st.paidN++
				st.paidFen += r.AmountFen
			} else {
				st.failedN++
			}
			if err := stg.add(r); err != nil {
				return err
			}
		}
		return stg.flush()
	})
	if err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// takeStaged returns the staged lines of f, marked in use (the caller calls
// doneStaged), or nil.
func (s *Store) takeStaged(f spool.Feedback) *fbStaged {
	sc := &s.scratch
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := sc.staged[stageKey(f)]
	if st == nil || st.inUse || sc.db == nil {
		return nil
	}
	st.inUse = true
	return st
}

func (s *Store) doneStaged(st *fbStaged) {
	sc := &s.scratch
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st.inUse = false
	if st.released {
		sc.free = append(sc.free, st.slot)
	}
}

// attachScratch attaches the scratch database to the writer's connection,
// read-only (outside a transaction; detachScratch after it).
func (s *Store) attachScratch(ctx context.Context, conn *sql.Conn) error {
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_database_list WHERE name = 'fbs'`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS fbs`, "file:"+sqliteURIPath(s.scratch.path)+"?mode=ro")
	return err
}

func detachScratch(ctx context.Context, conn *sql.Conn) {
	_, _ = conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE fbs`)
}
