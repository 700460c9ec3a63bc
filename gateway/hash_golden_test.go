package gateway

import (
	"context"
	"encoding/hex"
	"testing"

	"yktgw/internal/gen"
)

// TestContentHashGolden pins the content hash of a fixed batch: intake
// compares a resubmission with hashes stored by earlier versions, so the
// bytes hashed must never change (money rule 3, idempotent intake).
func TestContentHashGolden(t *testing.T) {
	e := newEnv(t)
	e.t = t
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "HASH-GOLDEN", N: 7, Seed: 42})); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	b, err := e.store.Batch(context.Background(), "HASH-GOLDEN")
	if err != nil {
		t.Fatal(err)
	}
	const want = "db7b89ddef80e5e6dce09c3780df5c2ab5f26dd3f2cbadfd7da2593b97b1dffd" // computed by the code before hashRecord wrote in one piece
	if got := hex.EncodeToString(b.ContentHash); got != want {
		t.Fatalf("content hash %s, want %s", got, want)
	}
}
