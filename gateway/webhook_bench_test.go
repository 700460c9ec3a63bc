package gateway

import (
	"bytes"
	"context"
	"testing"

	"yktgw/internal/gen"
	"yktgw/spool"
)

// BenchmarkWebhookPage renders one batch.results page (1,000 records, from
// the SQLite spool) and signs it with HMAC-SM3: the work of one webhook
// attempt before the network.
func BenchmarkWebhookPage(b *testing.B) {
	e := newEnv(b)
	var buf bytes.Buffer
	gen.WriteNDJSON(&buf, gen.Spec{BatchID: "WB-1", N: spool.OutboxPageSize})
	res, err := e.g.Submit(context.Background(), &Principal{TokenID: "b", Tenants: []string{"*"}, Roles: []string{RoleSubmitter}}, &buf, true)
	if err != nil || res.Status != StatusCreated {
		b.Fatalf("submit: %+v %v", res, err)
	}
	ev := spool.OutboxEvent{EventID: "ev_b", Kind: spool.EventBatchResults, BatchID: "WB-1", Tenant: "210102", Page: 1, Pages: 1,
		FirstSeq: 1, LastSeq: spool.OutboxPageSize}
	secret := []byte("bench-secret-0123456789")
	var size int
	for b.Loop() {
		body, err := e.g.renderWebhook(context.Background(), ev)
		if err != nil {
			b.Fatal(err)
		}
		_ = WebhookSignature(secret, 1_800_000_000, body)
		size = len(body)
	}
	b.ReportMetric(float64(size), "body_bytes")
}
