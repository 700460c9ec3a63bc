package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"yktgw/spool"
)

// Record packs (migration 0015): the sealed fields and remark of a run of
// consecutive seqs of one batch in one row of record_packs, instead of a row
// of record_fields each. Each record's fields stay sealed on their own (the
// gateway binds them to batch and seq); a pack is only how they are stored.
//
// A pack's blob is packVersion, then for each seq first_seq .. last_seq in
// order: uvarint length and bytes of the sealed fields, uvarint length and
// bytes of the remark.

const (
	packVersion = 1
	// packRecords is the most records in a pack: ~3.3 KB of sealed fields,
	// one page. A reader that wants one record reads its pack.
	packRecords = insertGroup
)

// legacyLayout reports whether a record's fields are the three ciphertexts
// of the layout before migration 0014. Those go to record_fields; packs
// hold the combined layout (fields_enc) only.
func legacyLayout(nameEnc, idEnc, accountEnc []byte) bool {
	return len(nameEnc)+len(idEnc)+len(accountEnc) > 0
}

// appendPack appends the blob of a pack of recs (consecutive seqs).
func appendPack(dst []byte, recs []spool.Record) []byte {
	dst = append(dst, packVersion)
	for i := range recs {
		dst = binary.AppendUvarint(dst, uint64(len(recs[i].FieldsEnc)))
		dst = append(dst, recs[i].FieldsEnc...)
		dst = binary.AppendUvarint(dst, uint64(len(recs[i].Remark)))
		dst = append(dst, recs[i].Remark...)
	}
	return dst
}

// packSize bounds the length of appendPack's blob for recs, and the total
// of the blobs of any packs recs is split into (a version byte a record).
func packSize(recs []spool.Record) int {
	n := 0
	for i := range recs {
		n += 1 + 2*binary.MaxVarintLen32 + len(recs[i].FieldsEnc) + len(recs[i].Remark)
	}
	return n
}

var errPack = errors.New("sqlite: malformed record pack")

// packEntry is a record's part of a pack blob.
type packEntry struct {
	fields []byte // aliases the blob
	remark string
}

// parsePack splits a pack's blob into its n entries.
func parsePack(blob []byte, n int, out []packEntry) ([]packEntry, error) {
	if n <= 0 || len(blob) == 0 || blob[0] != packVersion {
		return nil, errPack
	}
	p := blob[1:]
	next := func() ([]byte, bool) {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, false
		}
		v := p[k : k+int(l) : k+int(l)]
		p = p[k+int(l):]
		return v, true
	}
	out = out[:0]
	for range n {
		f, ok := next()
		if !ok {
			return nil, errPack
		}
		r, ok := next()
		if !ok {
			return nil, errPack
		}
		out = append(out, packEntry{fields: f, remark: bytesString(r)})
	}
	if len(p) != 0 {
		return nil, errPack
	}
	return out, nil
}

// bytesString is b as a string without a copy: a pack's blob is read fresh
// for each pack and never written to after (packReader, RewriteFields).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// packValues are the bound values of one pack's row; its blob is built in
// buf's spare capacity (packSize(recs) of it), and packValues returns buf
// grown by it.
func packValues(recs []spool.Record, buf []byte) ([]driver.NamedValue, []byte) {
	blob := appendPack(buf[len(buf):len(buf)], recs)
	if len(buf)+len(blob) <= cap(buf) { // else append gave the blob memory of its own
		buf = buf[:len(buf)+len(blob)]
	}
	return []driver.NamedValue{
		{Ordinal: 1, Value: int64(recs[0].Seq)},
		{Ordinal: 2, Value: int64(recs[len(recs)-1].Seq)},
		{Ordinal: 3, Value: blob},
	}, buf
}

// closeRuns emits the complete runs of recs[from:to] (all packable): runs
// of consecutive seqs of at most packRecords. The last run is complete when
// it is full or final is set; it returns where the open run starts (to when
// none is open).
func closeRuns(recs []spool.Record, from, to int, final bool, emit func(lo, hi int)) int {
	lo := from
	for i := from + 1; i <= to; i++ {
		if i == to {
			if final || i-lo == packRecords {
				emit(lo, i)
				lo = i
			}
			break
		}
		if i-lo == packRecords || recs[i].Seq != recs[i-1].Seq+1 {
			emit(lo, i)
			lo = i
		}
	}
	return lo
}

const insertPackSQL = `INSERT INTO record_packs(batch, first_seq, last_seq, packed) VALUES `

// packReader finds packed records' fields for a read (Records, RecordRange,
// the reports, the rewrite). Its lookups run on the connection of the read
// that needs them, so they see the same snapshot and take no second
// connection from the pool. It keeps the last pack it read: a read in seq
// order reads each pack once.
type packReader struct {
	c           *sql.Conn
	stmt        *sql.Stmt // prepared on c at the first lookup
	batch       int64
	first, last int
	entries     []packEntry
}

// fill sets the fields and remark of record seq of batch from its pack.
func (p *packReader) fill(ctx context.Context, batch int64, seq int, fields *[]byte, remark *string) error {
	if p.entries == nil || batch != p.batch || seq < p.first || seq > p.last {
		var first, last int
		var blob []byte // new for each pack: what fill hands out aliases it
		if p.stmt == nil {
			var err error
			if p.stmt, err = p.c.PrepareContext(ctx, `SELECT first_seq, last_seq, packed FROM record_packs WHERE batch = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 1`); err != nil {
				return err
			}
		}
		err := p.stmt.QueryRowContext(ctx, batch, seq).Scan(&first, &last, &blob)
		if err == nil && seq > last {
			err = sql.ErrNoRows
		}
		if err != nil {
			return fmt.Errorf("sqlite: fields of seq %d: %w", seq, err)
		}
		es, err := parsePack(blob, last-first+1, p.entries[:0])
		if err != nil {
			p.entries = nil // partly overwritten
			return fmt.Errorf("sqlite: pack of batch %d seq %d..%d: %w", batch, first, last, err)
		}
		p.batch, p.first, p.last, p.entries = batch, first, last, es
	}
	e := p.entries[seq-p.first]
	*fields, *remark = e.fields, e.remark
	return nil
}

// readConn runs fn on one reader connection (see packReader).
func (s *Store) readConn(ctx context.Context, fn func(c *sql.Conn, packs *packReader) error) error {
	c, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: reader connection: %w", err)
	}
	defer c.Close()
	p := &packReader{c: c}
	defer func() {
		if p.stmt != nil {
			p.stmt.Close()
		}
	}()
	return fn(c, p)
}
