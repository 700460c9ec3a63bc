package gateway

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yktgw/banks/format"
	"yktgw/crypto"
	"yktgw/gateway/report"
	"yktgw/gateway/validate"
	"yktgw/internal/gen"
	"yktgw/spool"
)

func TestFieldsEncodingRoundTrip(t *testing.T) {
	long := strings.Repeat("六", 60) // 180 bytes: a two-byte length
	for _, c := range [][3]string{
		{"张三", "11010519491231002X", "6222020200112230126"},
		{"", "", ""},
		{"a", "", "b"},
		{long, "x", long + long},
	} {
		p := appendFields(nil, c[0], c[1], c[2])
		name, id, acct, err := decodeFields(p)
		if err != nil || string(name) != c[0] || string(id) != c[1] || string(acct) != c[2] {
			t.Fatalf("%q: %q %q %q %v", c, name, id, acct, err)
		}
		// Each field is capped at its own length: appending to one cannot
		// overwrite the next.
		if cap(name) != len(name) || cap(id) != len(id) {
			t.Fatalf("%q: fields not capped", c)
		}
	}
	if got := appendFields(nil, "ab", "c", ""); !bytes.Equal(got, []byte{fieldsVersion, 2, 'a', 'b', 1, 'c', 0}) {
		t.Fatalf("encoding % x", got)
	}
}

func TestDecodeFieldsRefuses(t *testing.T) {
	good := appendFields(nil, "ab", "c", "d")
	for name, p := range map[string][]byte{
		"empty":            nil,
		"other version":    append([]byte{0x02}, good[1:]...),
		"only the version": {fieldsVersion},
		"two fields":       appendFieldsN([]string{"ab", "c"}),
		"four fields":      appendFieldsN([]string{"ab", "c", "d", "e"}),
		"trailing byte":    append(slices.Clone(good), 0),
		"length past end":  {fieldsVersion, 2, 'a', 'b', 1, 'c', 2, 'd'},
		"overlong length":  {fieldsVersion, 0x82, 0x00, 'a', 'b', 1, 'c', 1, 'd'}, // 2 in two bytes
		"overlong zero":    {fieldsVersion, 0x80, 0x00, 1, 'c', 1, 'd'},
		"huge length":      {fieldsVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'},
		"uvarint overflow": {fieldsVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"cut length":       {fieldsVersion, 2, 'a', 'b', 1, 'c', 0x80},
	} {
		if n, i, a, err := decodeFields(p); err == nil {
			t.Errorf("%s: decoded %q %q %q", name, n, i, a)
		}
	}
}

func appendFieldsN(fs []string) []byte {
	p := []byte{fieldsVersion}
	for _, f := range fs {
		p = append(p, byte(len(f)))
		p = append(p, f...)
	}
	return p
}

// FuzzDecodeFields: whatever decodeFields accepts is exactly what
// appendFields writes for the fields it returns (no trailing bytes, no
// other spelling of a length), and it never panics.
func FuzzDecodeFields(f *testing.F) {
	f.Add(appendFields(nil, "张三", "11010519491231002X", "6222020200112230126"))
	f.Add(appendFields(nil, "", "", ""))
	f.Add(appendFields(nil, strings.Repeat("a", 200), "b", "c"))
	f.Add([]byte{fieldsVersion, 0x80, 0x00, 0, 0})
	f.Add([]byte{fieldsVersion, 1, 'a', 1, 'b', 1, 'c', 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		name, id, acct, err := decodeFields(p)
		if err != nil {
			return
		}
		if re := appendFields(nil, string(name), string(id), string(acct)); !bytes.Equal(re, p) {
			t.Fatalf("decoded %q %q %q from % x, which encode to % x", name, id, acct, p, re)
		}
	})
}

// FuzzFieldsRoundTrip: any three fields come back as they went in.
func FuzzFieldsRoundTrip(f *testing.F) {
	f.Add("张三", "11010519491231002X", "6222020200112230126")
	f.Add("", "\x00", strings.Repeat("\xff", 130))
	f.Fuzz(func(t *testing.T, a, b, c string) {
		n, i, ac, err := decodeFields(appendFields(nil, a, b, c))
		if err != nil || string(n) != a || string(i) != b || string(ac) != c {
			t.Fatalf("%q %q %q -> %q %q %q %v", a, b, c, n, i, ac, err)
		}
	})
}

// sealTwo seals two generated records of batch B-F with the sealer.
func sealTwo(t *testing.T, e *env) ([]validate.Record, []spool.Record) {
	t.Helper()
	var recs []validate.Record
	for _, r := range gen.Full(gen.Spec{BatchID: "B-F", N: 2}).Records {
		recs = append(recs, validate.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber, Account: r.Account, AmountFen: r.AmountFen})
	}
	sl := &sealer{fc: e.g.fields, batchID: "B-F", subsidy: "GDZL", period: "2026-11"}
	out, err := sl.seal(nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	return recs, out
}

// TestCombinedFieldsSealAndOpen: the sealer writes one ciphertext a record
// (the legacy columns empty) that opens to the record's three fields.
func TestCombinedFieldsSealAndOpen(t *testing.T) {
	e := newEnv(t)
	recs, out := sealTwo(t, e)
	o := fieldOpener{fc: e.g.fields}
	for i, r := range out {
		if len(r.FieldsEnc) == 0 || r.NameEnc != nil || r.IDEnc != nil || r.AccountEnc != nil {
			t.Fatalf("seq %d: not in the combined layout", r.Seq)
		}
		name, id, acct, err := o.openFields("B-F", r.Seq, r.FieldsEnc, nil, nil, nil)
		if err != nil || string(name) != recs[i].Name || string(id) != recs[i].IDNumber || string(acct) != recs[i].Account {
			t.Fatalf("seq %d: %q %q %q %v", r.Seq, name, id, acct, err)
		}
		// Overhead once: version, key id, nonce, tag and the encoding.
		plain := len(recs[i].Name) + len(recs[i].IDNumber) + len(recs[i].Account)
		if want := plain + 4 + 2 + len(e.g.fields.(*LiveKeyring).Current().ActiveKeyID()) + 12 + 16; len(r.FieldsEnc) != want {
			t.Fatalf("seq %d: %d bytes sealed, want %d", r.Seq, len(r.FieldsEnc), want)
		}
	}
	o.wipe()
	if slices.ContainsFunc(o.plain[:cap(o.plain)], func(b byte) bool { return b != 0 }) {
		t.Fatal("wipe left plaintext in the buffer")
	}
}

// TestCombinedFieldsBoundToTheirPlace: a combined ciphertext opens only at
// its own batch and seq and only as the combined layout; a legacy field
// ciphertext does not open as a combined one; any flipped byte fails.
func TestCombinedFieldsBoundToTheirPlace(t *testing.T) {
	e := newEnv(t)
	_, out := sealTwo(t, e)
	o := fieldOpener{fc: e.g.fields}
	ct := out[0].FieldsEnc
	legacyName, err := e.g.fields.EncryptTo(nil, []byte("张三"), FieldAAD(nil, "B-F", 1, "name"))
	if err != nil {
		t.Fatal(err)
	}
	// The combined plaintext sealed under a per-field label.
	asName, err := e.g.fields.EncryptTo(nil, appendFields(nil, "张三", "x", "y"), FieldAAD(nil, "B-F", 1, "name"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		batch              string
		seq                int
		fields, n, id, acc []byte
	}{
		"another seq":                    {"B-F", 2, ct, nil, nil, nil},
		"another batch":                  {"B-G", 1, ct, nil, nil, nil},
		"another record's ciphertext":    {"B-F", 1, out[1].FieldsEnc, nil, nil, nil},
		"combined in the legacy columns": {"B-F", 1, nil, ct, ct, ct},
		"legacy name as combined":        {"B-F", 1, legacyName, nil, nil, nil},
		"combined plaintext as name":     {"B-F", 1, nil, asName, asName, asName},
	} {
		if n, i, a, err := o.openFields(c.batch, c.seq, c.fields, c.n, c.id, c.acc); !errors.Is(err, crypto.ErrTampered) {
			t.Errorf("%s: %q %q %q %v", name, n, i, a, err)
		}
	}
	for i := range ct {
		bad := slices.Clone(ct)
		bad[i] ^= 0x01
		if _, _, _, err := o.openFields("B-F", 1, bad, nil, nil, nil); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		}
	}
	// Sealed in the right place but not the combined encoding: refused.
	odd, _ := e.g.fields.EncryptTo(nil, append(appendFields(nil, "a", "b", "c"), 0), FieldAAD(nil, "B-F", 1, fieldsLabel))
	if _, _, _, err := o.openFields("B-F", 1, odd, nil, nil, nil); !errors.Is(err, errFieldsEncoding) {
		t.Fatalf("trailing byte under a good seal: %v", err)
	}
}

// TestMovedFieldsDoNotDeliver: record 1's fields_enc replaced in the spool
// by record 2's: the records' file is refused and the results show no
// personal data for it (AAD binds the ciphertext to its seq).
func TestMovedFieldsDoNotDeliver(t *testing.T) {
	e, _, _, ds := bodyEnv(t, "MOVE-1")
	db := spoolDB(t, e)
	setPacked(t, db, "MOVE-1", 1, packed(t, db, "MOVE-1", 2))
	var w bytes.Buffer
	err := e.g.profiles["DEMO"].Outbound.Render(&w, format.Batch{}, e.g.recordsOf(context.Background(), ds[0]))
	if !errors.Is(err, crypto.ErrTampered) || !strings.Contains(err.Error(), "record 1 fields") {
		t.Fatalf("render with a moved ciphertext: %v", err)
	}
	var page ResultPage
	e.do("GET", "/v1/batches/MOVE-1/results", "county", "", nil).json(t, &page)
	if it := page.Items[0]; it.Seq != 1 || it.Name != "" || it.IDNumber != "" || it.Account != "" {
		t.Fatalf("moved record shown: %+v", it)
	}
	if it := page.Items[1]; it.Seq != 2 || it.Name == "" || it.IDNumber == "" {
		t.Fatalf("record 2 not shown: %+v", it)
	}
}

func spoolDB(t *testing.T, e *env) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.store.Path()+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rowsAffected(r sql.Result) int64 {
	n, _ := r.RowsAffected()
	return n
}

// legacyize rewrites a batch's personal fields into the layout versions
// before migration 0014 wrote: three ciphertexts, each bound to its own
// field name, and an empty fields_enc.
func legacyize(t *testing.T, e *env, batchID string) {
	t.Helper()
	ctx := context.Background()
	recs, err := e.store.Records(ctx, batchID, spool.RecordFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	db := spoolDB(t, e)
	o := fieldOpener{fc: e.g.fields}
	for _, r := range recs {
		name, id, acct, err := o.openFields(batchID, r.Seq, r.FieldsEnc, r.NameEnc, r.IDEnc, r.AccountEnc)
		if err != nil {
			t.Fatal(err)
		}
		var cts [3][]byte
		for i, f := range []struct {
			label string
			v     []byte
		}{{"name", name}, {"id_number", id}, {"account", acct}} {
			if cts[i], err = e.g.fields.EncryptTo(nil, f.v, FieldAAD(nil, batchID, r.Seq, f.label)); err != nil {
				t.Fatal(err)
			}
		}
		// As versions before 0014 wrote them: a row of record_fields, no pack.
		res, err := db.Exec(`INSERT INTO record_fields(batch, seq, fields_enc, name_enc, id_enc, account_enc, remark)
			VALUES ((SELECT id FROM batches WHERE batch_id = ? AND state <> 'STAGING'), ?, x'', ?, ?, ?, ?)`, batchID, r.Seq, cts[0], cts[1], cts[2], r.Remark)
		if err != nil || rowsAffected(res) != 1 {
			t.Fatalf("seq %d: %v", r.Seq, err)
		}
	}
	if _, err := db.Exec(`DELETE FROM record_packs WHERE batch = (SELECT id FROM batches WHERE batch_id = ? AND state <> 'STAGING')`, batchID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM record_fields WHERE length(fields_enc) = 0 AND length(name_enc) > 0
		AND length(id_enc) > 0 AND length(account_enc) > 0`).Scan(&n); err != nil || n != len(recs) {
		t.Fatalf("%d legacy rows, want %d (%v)", n, len(recs), err)
	}
}

// packed reads the sealed fields of a record from its pack in the spool
// (spool migration 0015; decoded here on its own, as the format is written
// down there: a version byte 1, then per seq the uvarint length and bytes of
// the fields, then of the remark).
func packed(t *testing.T, db *sql.DB, batchID string, seq int) []byte {
	t.Helper()
	_, _, entries := readPack(t, db, batchID, seq)
	return entries[2*seq]
}

// setPacked replaces the sealed fields of a record in its pack.
func setPacked(t *testing.T, db *sql.DB, batchID string, seq int, fields []byte) {
	t.Helper()
	pk, first, entries := readPack(t, db, batchID, seq)
	entries[2*seq] = fields
	blob := []byte{1}
	for i := 2 * first; i < len(entries); i++ {
		blob = binary.AppendUvarint(blob, uint64(len(entries[i])))
		blob = append(blob, entries[i]...)
	}
	res, err := db.Exec(`UPDATE record_packs SET packed = ? WHERE batch = ? AND first_seq = ?`, blob, pk, first)
	if err != nil || rowsAffected(res) != 1 {
		t.Fatalf("pack of seq %d: %v", seq, err)
	}
}

// readPack returns the pack holding seq: its batch key, first seq, and its
// entries indexed 2*seq (fields) and 2*seq+1 (remark).
func readPack(t *testing.T, db *sql.DB, batchID string, seq int) (int64, int, [][]byte) {
	t.Helper()
	var pk int64
	var first, last int
	var blob []byte
	err := db.QueryRow(`SELECT p.batch, p.first_seq, p.last_seq, p.packed FROM record_packs p JOIN batches b ON b.id = p.batch
		WHERE b.batch_id = ? AND b.state <> 'STAGING' AND p.first_seq <= ? ORDER BY p.first_seq DESC LIMIT 1`, batchID, seq).Scan(&pk, &first, &last, &blob)
	if err != nil || seq > last || len(blob) == 0 || blob[0] != 1 {
		t.Fatalf("pack of %s seq %d: %v", batchID, seq, err)
	}
	entries := make([][]byte, 2*(last+1))
	p := blob[1:]
	for i := 2 * first; i < len(entries); i++ {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			t.Fatalf("pack of %s seq %d: malformed", batchID, seq)
		}
		entries[i], p = p[k:k+int(n)], p[k+int(n):]
	}
	return pk, first, entries
}

// TestLegacyRowsStillServe: records stored in the three-ciphertext layout of
// earlier versions render the same files, show the same masked results,
// appear the same in reports, match return lines by account and name,
// rotate to a new key in their own layout, and are delivered.
func TestLegacyRowsStillServe(t *testing.T) {
	e, d := bodyIntakeEnv(t)
	bt := gen.Full(gen.Spec{BatchID: "OLD-1", N: 120})
	bt.Records[1].Account = bt.Records[0].Account // a shared account: both in the report
	if r := e.post("county", bt); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	ctx := context.Background()
	d.plan(ctx)
	b, err := e.store.Batch(ctx, "OLD-1")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := e.store.Deliveries(ctx, spool.DeliveryFilter{BatchID: "OLD-1"})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	slices.SortFunc(ds, func(a, b spool.Delivery) int { return a.FirstSeq - b.FirstSeq })
	results := func() []ResultItem {
		var page ResultPage
		e.do("GET", "/v1/batches/OLD-1/results?limit=1000", "county", "", nil).json(t, &page)
		if len(page.Items) != 120 {
			t.Fatalf("%d results", len(page.Items))
		}
		for _, it := range page.Items {
			if it.Name == "" || it.IDNumber == "" || it.Account == "" {
				t.Fatalf("seq %d not opened: %+v", it.Seq, it)
			}
		}
		return page.Items
	}
	files := func() [][]byte {
		var out [][]byte
		for _, dl := range ds {
			out = append(out, fromRecords(t, e, b, dl))
		}
		return out
	}
	shared := func() string {
		rb, err := NewReportBuilder(e.g.cfg, e.store, e.g.fields)
		if err != nil {
			t.Fatal(err)
		}
		var w bytes.Buffer
		if _, err := rb.Write(ctx, report.Request{Kind: report.KindSharedAccounts, Full: true, Format: report.CSV}, &w); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.String(), bt.Records[0].IDNumber) || !strings.Contains(w.String(), bt.Records[1].Name) {
			t.Fatalf("shared account not in the report:\n%s", w.String())
		}
		return w.String()
	}
	p := *e.g.profiles["DEMO"]
	ret := *p.Return
	ret.Match = []string{"account", "name", "amount"}
	p.Return = &ret
	match := func() {
		m, err := e.g.matcher(ctx, &Bank{Profile: &p}, ds[0].BankBatchNo)
		if err != nil {
			t.Fatal(err)
		}
		r1 := bt.Records[1]
		if seq, err := m(&format.Result{Account: r1.Account, Name: r1.Name, AmountFen: r1.AmountFen}); err != nil || seq != 2 {
			t.Fatalf("matched %d, %v, want 2", seq, err)
		}
		r0 := bt.Records[0]
		if seq, err := m(&format.Result{Account: r0.Account, Name: r1.Name + "X", AmountFen: r0.AmountFen}); err == nil {
			t.Fatalf("a wrong name matched seq %d", seq)
		}
	}
	wantResults, wantFiles, wantReport := results(), files(), shared()
	match()

	legacyize(t, e, "OLD-1")
	if got := results(); !slices.Equal(got, wantResults) {
		t.Fatal("legacy rows show other results")
	}
	if got := files(); !slices.EqualFunc(got, wantFiles, bytes.Equal) {
		t.Fatal("legacy rows render other files")
	}
	if got := shared(); got != wantReport {
		t.Fatalf("legacy rows report otherwise:\n%s\nwant\n%s", got, wantReport)
	}
	match()

	// Rotation re-encrypts the legacy rows field by field and keeps them legacy.
	keyFile := filepath.Join(e.dir, "data.key")
	newID, err := crypto.AddDataKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := RotateDataKeys(ctx, e.store, keyFile, nil)
	if err != nil || res.Records != 120 || res.Reencrypted != 120 {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	recs, _ := e.store.Records(ctx, "OLD-1", spool.RecordFilter{Limit: 1000})
	for _, r := range recs {
		if len(r.FieldsEnc) != 0 {
			t.Fatalf("seq %d changed layout", r.Seq)
		}
		for _, ct := range [][]byte{r.NameEnc, r.IDEnc, r.AccountEnc} {
			if id, _ := crypto.FieldKeyID(ct); id != newID {
				t.Fatalf("seq %d: a field under %q, want %q", r.Seq, id, newID)
			}
		}
	}
	if got := results(); !slices.Equal(got, wantResults) {
		t.Fatal("rotated legacy rows show other results")
	}

	// Delivered from the records (no bodies).
	os.RemoveAll(bodyDir(e.g.cfg.Spool.Dir, b.Body))
	allSent(t, e, d, ds)
	if n := counter(e.g.metrics.filesSealed.WithLabelValues("DEMO", "records")); n != 3 {
		t.Fatalf("%v files sealed from the records, want 3", n)
	}
}

// TestRotateRefusesMalformedCombined: rotation re-encrypts a combined
// ciphertext only if its plaintext is the combined encoding; it stops at
// one that is not, and leaves it as it was.
func TestRotateRefusesMalformedCombined(t *testing.T) {
	e := newEnv(t)
	e.t = t
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "ROT-BAD", N: 3})); r.status != 201 {
		t.Fatal(r.status)
	}
	odd, err := e.g.fields.EncryptTo(nil, append(appendFields(nil, "a", "b", "c"), 0), FieldAAD(nil, "ROT-BAD", 2, fieldsLabel))
	if err != nil {
		t.Fatal(err)
	}
	db := spoolDB(t, e)
	setPacked(t, db, "ROT-BAD", 2, odd)
	keyFile := filepath.Join(e.dir, "data.key")
	if _, err := crypto.AddDataKey(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateDataKeys(context.Background(), e.store, keyFile, nil); !errors.Is(err, errFieldsEncoding) || !strings.Contains(err.Error(), "ROT-BAD/2 fields") {
		t.Fatalf("rotate over a malformed combined plaintext: %v", err)
	}
	if got := packed(t, db, "ROT-BAD", 2); !bytes.Equal(got, odd) {
		t.Fatal("the record's fields changed")
	}
}
