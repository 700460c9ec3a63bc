package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Bulk inserts go to the driver directly, bypassing database/sql: its
// per-argument conversions and go-sqlite3's exec path (one cgo call per bound
// value) cost more than SQLite's insert itself. go-sqlite3's query path
// resets, binds and takes the first step in one cgo call when the arguments
// are positional and of the standard types.

// withRaw runs fn with the driver connection under conn. conn's
// transaction, if any, stays open around it, but fn must not use it (or
// conn) meanwhile: database/sql holds the connection's lock.
func withRaw(conn *sql.Conn, fn func(*sqlite3.SQLiteConn) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("writer connection is %T", dc)
		}
		return fn(c)
	})
}

// execRaw runs an INSERT (or any statement returning no row) with args,
// whose ordinals must be 1..len(args) in order (the one-crossing path).
func execRaw(stmt driver.Stmt, args []driver.NamedValue) error {
	rows, err := stmt.(driver.StmtQueryContext).QueryContext(context.Background(), args)
	if err != nil {
		return err
	}
	// An INSERT returns no row: Next runs it to its end (go-sqlite3 has
	// already taken that step) and reports a failure of it.
	if err := rows.Next(nil); err != io.EOF {
		rows.Close()
		if err == nil {
			err = errors.New("INSERT returned a row")
		}
		return err
	}
	return rows.Close()
}

// multiInsert inserts rows of a fixed number of columns into one table, a
// group of rows per statement (one SQLite step, one cgo call for many
// rows) or one row per statement for the rest.
type multiInsert struct {
	one, group driver.Stmt
	cols, rows int // values per row, rows per group
}

// newMultiInsert prepares "head row" and "head row,row,..." (rows times);
// row is the placeholder tuple of cols values, e.g. "(?,?,?)".
func newMultiInsert(c *sqlite3.SQLiteConn, head, row string, cols, rows int) (*multiInsert, error) {
	return newMultiInsertRows(c, head, "", func(int) string { return row }, cols, rows)
}

// newMultiInsertRows is newMultiInsert with row(p) rendering a tuple whose
// cols values are the parameters ?p+1 .. ?p+cols, so that a tuple may name a
// value twice or compute a column from one (numbered parameters; ?NNN), and
// tail after the rows (an ON CONFLICT clause).
func newMultiInsertRows(c *sqlite3.SQLiteConn, head, tail string, row func(p int) string, cols, rows int) (*multiInsert, error) {
	if rows*cols > 32766 { // SQLite's limit of host parameters
		return nil, fmt.Errorf("multi-row insert of %d x %d values", rows, cols)
	}
	mi := &multiInsert{cols: cols, rows: rows}
	var err error
	if mi.one, err = c.Prepare(head + row(0) + tail); err != nil {
		return nil, err
	}
	if rows > 1 {
		var q strings.Builder
		q.WriteString(head)
		for r := 0; r < rows; r++ {
			if r > 0 {
				q.WriteByte(',')
			}
			q.WriteString(row(r * cols))
		}
		q.WriteString(tail)
		if mi.group, err = c.Prepare(q.String()); err != nil {
			mi.one.Close()
			return nil, err
		}
	}
	return mi, nil
}

// exec inserts the rows whose values args holds: one row or a whole group.
// The ordinals of args must be 1..len(args) in order (see ordinals).
func (mi *multiInsert) exec(args []driver.NamedValue) error {
	switch len(args) {
	case mi.cols:
		return execRaw(mi.one, args)
	case mi.cols * mi.rows:
		return execRaw(mi.group, args)
	}
	return fmt.Errorf("multi-row insert: %d values for rows of %d", len(args), mi.cols)
}

func (mi *multiInsert) close() {
	mi.one.Close()
	if mi.group != nil {
		mi.group.Close()
	}
}

// ordinals numbers args 1..len(args) (a row's values taken out of a group
// must be renumbered before they go alone).
func ordinals(args []driver.NamedValue) []driver.NamedValue {
	for i := range args {
		args[i].Ordinal = i + 1
	}
	return args
}
