package sqlite

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"yktgw/spool"
)

// BenchmarkStageAndFinalize stages 100,000 records (ciphertext-sized blobs)
// in chunks as intake does, then finalizes (guards + PENDING).
func BenchmarkStageAndFinalize(b *testing.B) {
	n, chunk := 100_000, 5000
	if v, err := strconv.Atoi(os.Getenv("YKT_BENCH_N")); err == nil && v > 0 {
		n = v // e.g. a small N under valgrind, whose instruction counts do not depend on the machine's load
	}
	rng := mrand.NewChaCha8([32]byte{1})
	blob := func(size int) []byte { p := make([]byte, size); rng.Read(p); return p }
	recs := make([]spool.Record, chunk)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "spool.db"))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		stopPoll := make(chan struct{})
		if os.Getenv("YKT_BENCH_POLL") != "" { // readers polling as the API and the dispatcher do
			go func() {
				for {
					select {
					case <-stopPoll:
						return
					case <-time.After(10 * time.Millisecond):
					}
					s.Batches(ctx, spool.BatchFilter{Limit: 10})
				}
			}()
		}
		b.StartTimer()
		st, err := s.BeginBatch(ctx, &spool.Batch{BatchID: fmt.Sprint("B", i), Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11"})
		if err != nil {
			b.Fatal(err)
		}
		for seq := 1; seq <= n; seq += chunk {
			for j := range recs[:min(chunk, n-seq+1)] {
				recs[j] = spool.Record{Seq: seq + j, NameEnc: blob(35), IDEnc: blob(46), AccountEnc: blob(47), IDIndex: blob(16),
					AccountIndex: blob(16), DedupeKey: blob(16), AccountKind: "card", AmountFen: 100}
			}
			if err := st.Add(ctx, recs[:min(chunk, n-seq+1)]); err != nil {
				b.Fatal(err)
			}
		}
		res, err := st.Finalize(ctx, &spool.Batch{BatchID: fmt.Sprint("B", i), Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL",
			Period: "2026-11", TotalCount: n, TotalFen: int64(100 * n)}, "bench", nil)
		if err != nil || len(res.Conflicts) > 0 {
			b.Fatal(err, res.Conflicts)
		}
		b.StopTimer()
		close(stopPoll)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRecordRange reads 200,000 records back as the dispatcher does.
func BenchmarkRecordRange(b *testing.B) {
	n, chunk := 200_000, 10000
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "spool.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := mrand.NewChaCha8([32]byte{2})
	blob := func(size int) []byte { p := make([]byte, size); rng.Read(p); return p }
	st, err := s.BeginBatch(ctx, &spool.Batch{BatchID: "B", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11"})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]spool.Record, 0, chunk)
	for seq := 1; seq <= n; seq++ {
		recs = append(recs, spool.Record{Seq: seq, NameEnc: blob(35), IDEnc: blob(46), AccountEnc: blob(47), IDIndex: blob(16),
			AccountIndex: blob(16), DedupeKey: blob(16), AccountKind: "card", AmountFen: 100, Remark: "补贴"})
		if len(recs) == chunk {
			if err := st.Add(ctx, recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if _, err := st.Finalize(ctx, &spool.Batch{BatchID: "B", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11",
		TotalCount: n, TotalFen: int64(100 * n)}, "bench", nil); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx) // the dispatcher's context is cancellable
	defer cancel()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var sum int64
		if err := s.RecordRange(ctx, "B", 1, n, func(r *spool.Record) error { sum += r.AmountFen + int64(len(r.NameEnc)); return nil }); err != nil {
			b.Fatal(err)
		}
		if sum != int64(n)*135 {
			b.Fatalf("sum %d", sum)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
