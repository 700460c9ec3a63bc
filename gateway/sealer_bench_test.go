package gateway

import (
	"path/filepath"
	"testing"

	"yktgw/crypto"
	"yktgw/gateway/validate"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// BenchmarkSealer seals chunks of 4096 generated records the way intake's
// sealer goroutine does (personal fields encrypted, blind indexes, dedupe
// keys); it reports ns and bytes of sealed personal fields per record.
func BenchmarkSealer(b *testing.B) {
	keyFile := filepath.Join(b.TempDir(), "data.key")
	if err := crypto.GenerateDataKeyFile(keyFile); err != nil {
		b.Fatal(err)
	}
	ring, err := OpenLiveKeyring(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	const chunk = 4096
	var recs []validate.Record
	for _, r := range gen.Full(gen.Spec{BatchID: "B-BENCH", N: chunk}).Records {
		recs = append(recs, validate.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber, Account: r.Account, AmountFen: r.AmountFen})
	}
	sl := &sealer{fc: ring, batchID: "B-BENCH", subsidy: "GDZL", period: "2026-11"}
	out := make([]spool.Record, 0, chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err = sl.seal(out[:0], recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var stored int
	for _, r := range out {
		stored += sealedBytes(&r)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*chunk), "ns/record")
	b.ReportMetric(float64(stored)/chunk, "sealed-B/record")
}

// sealedBytes is what a record's personal fields take in record_fields.
func sealedBytes(r *spool.Record) int {
	return len(r.FieldsEnc) + len(r.NameEnc) + len(r.IDEnc) + len(r.AccountEnc)
}
