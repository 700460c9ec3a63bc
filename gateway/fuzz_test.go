package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"yktgw/internal/gen"
)

func fuzzSubmit(f *testing.F, ndjson bool) {
	small := gen.Full(gen.Spec{BatchID: "F-1", N: 3})
	js, _ := json.Marshal(small)
	var nd bytes.Buffer
	gen.WriteNDJSON(&nd, gen.Spec{BatchID: "F-2", N: 3})
	for _, s := range [][]byte{js, nd.Bytes(), []byte(`{}`), []byte(`{"records":[]}`), []byte(`{"batch_id":"x","records":[{"seq":1,"amount_fen":1.5}]}`),
		[]byte("{\"batch_id\":\"a\"}\n{\"seq\":1}\n"), []byte(`[`), []byte(`{"total_fen":99999999999999999999}`)} {
		f.Add(s)
	}
	e := newEnv(f)
	who := &Principal{TokenID: "fuzz", Tenants: []string{"210102"}, Roles: []string{RoleSubmitter}}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := e.g.Submit(context.Background(), who, bytes.NewReader(body), ndjson)
		if err != nil {
			t.Fatalf("internal error on bad input: %v", err)
		}
		switch res.Status {
		case StatusCreated, StatusSame:
			if res.Batch == nil {
				t.Fatal("accepted without a batch view")
			}
			counts, err := e.store.RecordCounts(context.Background(), res.Batch.BatchID)
			n := 0
			for _, c := range counts {
				n += c.Count
			}
			if err != nil || n != res.Batch.TotalCount {
				t.Fatalf("accepted batch has %d records, says %d (%v)", n, res.Batch.TotalCount, err)
			}
		case StatusBad, StatusConflict, StatusInvalid, 403, 413:
			if res.Errors == nil || len(res.Errors.Errors) == 0 {
				t.Fatalf("status %d without errors", res.Status)
			}
			for _, i := range res.Errors.Errors {
				if i.Code == "" || i.Message == "" {
					t.Fatalf("issue without code or message: %+v", i)
				}
			}
		default:
			t.Fatalf("unexpected status %d", res.Status)
		}
		var staged int
		if err := rawStaged(e.store, &staged); err != nil || staged != 0 {
			t.Fatalf("%d stages left behind (%v)", staged, err)
		}
	})
}

func FuzzSubmitJSON(f *testing.F)   { fuzzSubmit(f, false) }
func FuzzSubmitNDJSON(f *testing.F) { fuzzSubmit(f, true) }
