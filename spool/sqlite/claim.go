package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	sqlite3 "github.com/mattn/go-sqlite3"

	"yktgw/spool"
)

// What a stage's Adds committed, kept for Finalize so that its two
// whole-batch sorts run in Go instead of SQLite:
//
//   - the dedupe keys with their seqs, so that Finalize claims them in key
//     order from a sort in Go (about 200 ms of CPU for 1,000,000, on both
//     cores) instead of SQLite's ORDER BY over the batch (about 650 ms);
//   - a Bloom filter of the account indexes, so that the shared-account
//     warning reads only the records of the accounts seen more than once
//     (true repeats and the filter's ~1% false positives) instead of sorting
//     the batch by account.
//
// Both are taken from the very records a committed Add wrote, after the
// commit. Finalize uses them only when they cover exactly the records the
// stage holds (the count it reads in its own transaction); otherwise, and
// for batches over maxKeptRecords (24 bytes a record in memory), it runs
// the SQL versions, which stay the reference (a test holds the two equal).
type stageKeys struct {
	keys  []claimKey // in mem, off the Go heap
	mem   *offHeap
	bloom []uint64 // nil: no filter (given up, or never started)
	mask  uint64   // bloom bits - 1 (a power of two)
	cand  map[[16]byte]struct{}
	limit int  // the declared count: a stage holding more is refused anyway
	off   bool // given up: Finalize takes the SQL paths
}

// claimKey is a 16-byte dedupe key as two big-endian halves (so that
// comparing them orders as SQLite orders the blobs) and its record's seq.
type claimKey struct {
	hi, lo uint64
	seq    int64
}

// maxKeptRecords bounds what a stage keeps in memory (24 bytes a record
// and a Bloom filter of ~1.5 bytes a record): 2,000,000 records, 48 MiB.
const maxKeptRecords = 2_000_000

// keyLen is the length of the dedupe key and account index that the Go
// paths take (the gateway's); any other length sends Finalize to SQL.
const keyLen = 16

func newStageKeys(declared int) *stageKeys {
	if declared <= 0 || declared > maxKeptRecords {
		return &stageKeys{off: true}
	}
	mem, err := mapOffHeap(declared * int(unsafe.Sizeof(claimKey{})))
	if err != nil {
		return &stageKeys{off: true}
	}
	bits := uint64(1 << 16)
	for bits < uint64(declared)*10 { // ~10 bits a key, 7 probes: ~1% false positives
		bits <<= 1
	}
	return &stageKeys{keys: unsafe.Slice((*claimKey)(unsafe.Pointer(&mem.b[0])), declared)[:0], mem: mem,
		bloom: make([]uint64, bits/64), mask: bits - 1, cand: map[[16]byte]struct{}{}, limit: declared}
}

// offHeap is memory mapped outside the Go heap: the kept keys of a big
// stage (24 MiB at 1,000,000 records) would otherwise also raise the
// collector's heap goal by as much again, and the daemon's peak RSS with it.
// It holds no Go pointer. Unmapped once, by release or, for a stage
// dropped without Finalize or Abort, by a cleanup.
type offHeap struct {
	b []byte
	m *mapping
}

// mapping unmaps its memory once, whoever asks first.
type mapping struct {
	b    []byte
	once sync.Once
}

func (mp *mapping) unmap() { mp.once.Do(func() { syscall.Munmap(mp.b) }) }

func mapOffHeap(n int) (*offHeap, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, err
	}
	oh := &offHeap{b: b, m: &mapping{b: b}}
	runtime.AddCleanup(oh, (*mapping).unmap, oh.m) // if nobody released it
	return oh, nil
}

func (oh *offHeap) free() {
	oh.b = nil
	oh.m.unmap()
}

// release frees the kept keys (Finalize done, or the stage aborted).
func (sk *stageKeys) release() {
	if sk == nil {
		return
	}
	sk.giveUp()
}

// chunkKeys is what one Add keeps, taken from its records while the writer
// inserts them (prepare) and kept once they are committed (commit).
type chunkKeys struct {
	n    int        // records taken; their keys are in the spare capacity of sk.keys
	cand [][16]byte // account indexes the filter may have seen before
	bad  bool       // a key of another length: the SQL paths
}

// prepare takes recs's keys and marks their account indexes in the filter.
// It runs on a goroutine of its own while the writer inserts recs, so that
// this work (about 0.3 s of CPU at 1,000,000 records) is off the single
// writer's path; nothing else touches sk until commit or giveUp. A chunk
// prepared but not committed leaves its bits in the filter: more false
// positives only, and a failed Add gives the kept keys up anyway.
func (sk *stageKeys) prepare(recs []spool.Record) *chunkKeys {
	ck := &chunkKeys{}
	if sk.off || len(sk.keys)+len(recs) > sk.limit {
		return ck
	}
	keys := sk.keys[len(sk.keys) : len(sk.keys)+len(recs)]
	for i := range recs {
		r := &recs[i]
		if len(r.DedupeKey) != keyLen || len(r.AccountIndex) != keyLen {
			ck.bad = true
			return ck
		}
		keys[i] = claimKey{hi: binary.BigEndian.Uint64(r.DedupeKey), lo: binary.BigEndian.Uint64(r.DedupeKey[8:]), seq: int64(r.Seq)}
		if sk.seen(r.AccountIndex) {
			ck.cand = append(ck.cand, [16]byte(r.AccountIndex))
		}
	}
	ck.n = len(recs)
	return ck
}

// commit keeps a prepared chunk of n records, now committed.
func (sk *stageKeys) commit(ck *chunkKeys, n int) {
	if sk.off {
		return
	}
	if ck.bad || ck.n != n || len(sk.keys)+n > sk.limit || len(sk.cand)+len(ck.cand) > sk.limit/4+1024 {
		sk.giveUp() // more than declared (refused at Finalize), or a filter gone bad
		return
	}
	sk.keys = sk.keys[:len(sk.keys)+n]
	for _, c := range ck.cand {
		sk.cand[c] = struct{}{}
	}
}

func (sk *stageKeys) giveUp() {
	if sk.mem != nil {
		sk.keys = nil
		sk.mem.free()
	}
	*sk = stageKeys{off: true}
}

// seen sets an account index's bits in the filter and reports whether they
// were all set before (it may have been seen). An account index is an
// HMAC: its bits are already uniform, so they serve as the two hashes of
// double hashing.
func (sk *stageKeys) seen(idx []byte) bool {
	h1, h2 := binary.LittleEndian.Uint64(idx), binary.LittleEndian.Uint64(idx[8:])|1
	all := true
	for i := uint64(0); i < 7; i++ {
		b := (h1 + i*h2) & sk.mask
		w, m := b/64, uint64(1)<<(b%64)
		if sk.bloom[w]&m == 0 {
			all = false
			sk.bloom[w] |= m
		}
	}
	return all
}

// usable says whether the kept keys cover the staged records exactly.
func (sk *stageKeys) usable(staged int64) bool {
	return sk != nil && !sk.off && int64(len(sk.keys)) == staged
}

// claimGroup is the number of rows per INSERT of the claim (3 values each).
const claimGroup = 256

// claimSorted inserts the kept keys into dedupe_active in key order, a
// key already held not claimed (ON CONFLICT DO NOTHING), exactly as the SQL
// claim does: the first seq of a key within the batch wins. It returns how
// many rows it inserted.
func (sk *stageKeys) claimSorted(conn *sql.Conn, batch int64) (int64, error) {
	sortClaimKeys(sk.keys)
	rest := sk.keys
	next := func() claimKey {
		k := rest[0]
		rest = rest[1:]
		return k
	}
	var claimed int64
	err := withRaw(conn, func(c *sqlite3.SQLiteConn) error {
		before, err := totalChanges(c)
		if err != nil {
			return err
		}
		// The batch is a literal of the statements: two values bound a key.
		mi, err := newMultiInsertRows(c, `INSERT INTO dedupe_active(dedupe_key, batch, seq) VALUES `, ` ON CONFLICT(dedupe_key) DO NOTHING`,
			func(p int) string { return fmt.Sprintf("(?%d,%d,?%d)", p+1, batch, p+2) }, 2, claimGroup)
		if err != nil {
			return err
		}
		defer mi.close()
		buf := make([]byte, claimGroup*keyLen) // SQLite copies a bound blob: reused per statement
		args := make([]driver.NamedValue, 0, claimGroup*2)
		for i := 0; i < len(sk.keys); {
			n := claimGroup
			if len(sk.keys)-i < claimGroup {
				n = 1
			}
			args = args[:0]
			for j := range n {
				k := next()
				key := buf[j*keyLen : (j+1)*keyLen]
				binary.BigEndian.PutUint64(key, k.hi)
				binary.BigEndian.PutUint64(key[8:], k.lo)
				args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: key}, driver.NamedValue{Ordinal: len(args) + 2, Value: k.seq})
			}
			if err := mi.exec(args); err != nil {
				return err
			}
			i += n
		}
		after, err := totalChanges(c)
		claimed = after - before
		return err
	})
	return claimed, err
}

// sortClaimKeys sorts keys in place as compareKeys orders them: one pass
// puts each key in its bucket of the top byte (an American flag sort: the
// keys are HMAC-SM3 outputs, so the 256 buckets are about even), then the
// buckets are sorted two at once (Finalize has the second core mostly to
// itself). At 1,000,000 keys about twice as fast as sorting two halves and
// merging them.
func sortClaimKeys(keys []claimKey) {
	var count, start, next [256]int
	for i := range keys {
		count[keys[i].hi>>56]++
	}
	sum := 0
	for b := range count {
		start[b], next[b] = sum, sum
		sum += count[b]
	}
	for b := range count {
		end := start[b] + count[b]
		for next[b] < end {
			k := keys[next[b]]
			for d := int(k.hi >> 56); d != b; d = int(k.hi >> 56) {
				keys[next[d]], k = k, keys[next[d]]
				next[d]++
			}
			keys[next[b]] = k
			next[b]++
		}
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for b := w; b < len(count); b += 2 {
				slices.SortFunc(keys[start[b]:start[b]+count[b]], compareKeys)
			}
		})
	}
	wg.Wait()
}

// compareKeys orders claim keys as SQLite orders (dedupe_key, seq).
func compareKeys(a, b claimKey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// totalChanges is SQLite's count of rows changed on the connection so far
// (dedupe_active has no trigger: its inserts count one each).
func totalChanges(c *sqlite3.SQLiteConn) (int64, error) {
	rows, err := c.Query(`SELECT total_changes()`, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("total_changes() returned no row")
		}
		return 0, err
	}
	n, ok := v[0].(int64)
	if !ok {
		return 0, fmt.Errorf("total_changes() is %T", v[0])
	}
	return n, nil
}

// sharedFromCandidates finds the batch's shared accounts among the
// accounts the filter may have seen more than once: the same answer as
// sharedAccounts (an account met once cannot be shared, and the filter
// misses no repeat), reading only those accounts' records.
func sharedFromCandidates(ctx context.Context, db *sql.DB, batch int64, cand map[[16]byte]struct{}) ([]spool.SharedAccount, error) {
	if len(cand) == 0 {
		return nil, nil
	}
	list := make([]string, 0, len(cand))
	for k := range cand {
		list = append(list, hex.EncodeToString(k[:]))
	}
	js, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT account_index, id_index, seq FROM records
		WHERE batch = ? AND account_index IN (SELECT unhex(value) FROM json_each(?))`, batch, string(js))
	if err != nil {
		return nil, err
	}
	type acct struct {
		ids  map[string]bool
		seqs []int
	}
	by := map[string]*acct{}
	for rows.Next() {
		var ai, ii []byte
		var seq int
		if err := rows.Scan(&ai, &ii, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		a := by[string(ai)]
		if a == nil {
			a = &acct{ids: map[string]bool{}}
			by[string(ai)] = a
		}
		a.ids[string(ii)] = true
		a.seqs = append(a.seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []spool.SharedAccount
	for _, a := range by {
		if len(a.ids) > 1 {
			slices.Sort(a.seqs)
			out = append(out, spool.SharedAccount{Seqs: a.seqs})
		}
	}
	slices.SortFunc(out, func(x, y spool.SharedAccount) int { return cmp.Compare(x.Seqs[0], y.Seqs[0]) })
	return out, nil
}
