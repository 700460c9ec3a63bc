package sqlite

import (
	"context"
	"testing"

	"yktgw/spool"
	"yktgw/spool/spooltest"
)

// A spool written before migration 0014 keeps its records' three field
// ciphertexts: they read back unchanged with an empty FieldsEnc, rotation
// sees and rewrites them in their layout, and new records in the combined
// layout sit beside them.
func TestMigration0014KeepsLegacyFields(t *testing.T) {
	path, db := migratedTo(t, 13)
	if _, err := db.Exec(`INSERT INTO batches(id, batch_id, tenant, bank, subsidy_code, period, state, created_at, updated_at) VALUES (1,'OLD','210102','DEMO','GDZL','2026-11','RECEIVED',0,0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO records(batch, seq, id_index, account_index, dedupe_key, amount_fen, state) VALUES (1, 1, x'04', x'05', x'06', 100, 'PENDING')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO record_fields(batch, seq, name_enc, id_enc, account_enc, remark) VALUES (1, 1, x'01', x'02', x'03', '备注')`); err != nil {
		t.Fatal(err)
	}
	s := openMigrated(t, path, db)
	ctx := context.Background()
	recs, err := s.Records(ctx, "OLD", spool.RecordFilter{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %+v %v", recs, err)
	}
	if r := recs[0]; len(r.FieldsEnc) != 0 || string(r.NameEnc) != "\x01" || string(r.IDEnc) != "\x02" || string(r.AccountEnc) != "\x03" || r.Remark != "备注" {
		t.Fatalf("legacy record after migration: %+v", r)
	}
	// A new batch in the combined layout beside it.
	nr := spooltest.Rec(1, "p9", "a9", "GDZL", "2026-12", 100)
	nr.FieldsEnc, nr.NameEnc, nr.IDEnc, nr.AccountEnc = []byte("combined"), nil, nil, nil
	spooltest.Submit(t, s, spooltest.Header("NEW", "210102", "GDZL", "2026-12"), []spool.Record{nr})
	// Rotation reads each row in its layout and writes back what it is given.
	seen := map[string]spool.FieldRow{}
	_, read, changed, err := s.RewriteFields(ctx, spool.FieldCursor{}, 10, func(r *spool.FieldRow) (bool, error) {
		seen[r.BatchID] = *r
		if r.BatchID == "OLD" {
			r.NameEnc, r.IDEnc, r.AccountEnc = []byte("n2"), []byte("i2"), []byte("a2")
		} else {
			r.FieldsEnc = []byte("combined2")
		}
		return true, nil
	})
	if err != nil || read != 2 || changed != 2 {
		t.Fatalf("rewrite: %d %d %v", read, changed, err)
	}
	if o, n := seen["OLD"], seen["NEW"]; len(o.FieldsEnc) != 0 || string(o.NameEnc) != "\x01" || string(n.FieldsEnc) != "combined" || len(n.NameEnc) != 0 {
		t.Fatalf("rewrite saw %+v and %+v", o, n)
	}
	old, _ := s.Records(ctx, "OLD", spool.RecordFilter{})
	nw, _ := s.Records(ctx, "NEW", spool.RecordFilter{})
	if len(old) != 1 || len(nw) != 1 || len(old[0].FieldsEnc) != 0 || string(old[0].NameEnc) != "n2" || string(old[0].AccountEnc) != "a2" ||
		string(nw[0].FieldsEnc) != "combined2" || len(nw[0].NameEnc)+len(nw[0].IDEnc)+len(nw[0].AccountEnc) != 0 {
		t.Fatalf("after rewrite: %+v / %+v", old, nw)
	}
}
