package gateway

import (
	"context"
	"path/filepath"
	"testing"

	"yktgw/crypto"
	"yktgw/internal/gen"
	"yktgw/spool"
)

func TestRotateDataKeysOnline(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "ROT-1", N: 30})
	if r := e.post("county", b); r.status != 201 {
		t.Fatal(r.status)
	}
	var before ResultPage
	e.do("GET", "/v1/batches/ROT-1/results", "county", "", nil).json(t, &before)
	keyFile := filepath.Join(e.dir, "data.key")
	oldID := e.g.fields.(*LiveKeyring).Current().ActiveKeyID()
	newID, err := crypto.AddDataKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := RotateDataKeys(context.Background(), e.store, keyFile, nil)
	if err != nil || res.Records != 30 || res.Reencrypted != 30 || res.ActiveKey != newID {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	recs, _ := e.store.Records(context.Background(), "ROT-1", spool.RecordFilter{})
	for _, r := range recs {
		if id, _ := crypto.FieldKeyID(r.FieldsEnc); id != newID || len(r.NameEnc)+len(r.IDEnc)+len(r.AccountEnc) != 0 {
			t.Fatalf("seq %d still under %s (old %s), or not in the combined layout", r.Seq, id, oldID)
		}
	}
	// The running gateway has not loaded the new key yet: it reloads on the
	// first ciphertext under it, and reads the same values.
	var after ResultPage
	e.do("GET", "/v1/batches/ROT-1/results", "county", "", nil).json(t, &after)
	for i := range before.Items {
		if after.Items[i].Name != before.Items[i].Name || after.Items[i].IDNumber != before.Items[i].IDNumber ||
			after.Items[i].Account != before.Items[i].Account || after.Items[i].Name == "" {
			t.Fatalf("item %d changed by rotation: %+v vs %+v", i, after.Items[i], before.Items[i])
		}
	}
	if e.g.fields.(*LiveKeyring).Current().ActiveKeyID() != newID {
		t.Fatal("the gateway did not pick up the new key")
	}
	// Everything is under the active key now: a second rotation changes nothing;
	// blind indexes did not change, so money rule 4 still finds the same people.
	res, err = RotateDataKeys(context.Background(), e.store, keyFile, nil)
	if err != nil || res.Reencrypted != 0 {
		t.Fatalf("second rotation: %+v %v", res, err)
	}
	again := gen.Full(gen.Spec{BatchID: "ROT-2", N: 30})
	if r := e.post("county", again); r.status != 422 || !hasCode(codes(t, r), "1:id_number:id_number.already_paid") {
		t.Fatalf("same people after rotation: %d", r.status)
	}
}
