package sqlite

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"yktgw/spool"
)

// BenchmarkStageAndFinalize stages 100,000 records (ciphertext-sized blobs)
// in chunks as intake does, then finalizes (guards + PENDING). The time
// making the records is not counted; add-s/op and finalize-s/op split the
// rest (wall and CPU seconds). Knobs: YKT_BENCH_N records, YKT_BENCH_CHUNK records per Add,
// YKT_BENCH_POLL=1 readers polling.
func BenchmarkStageAndFinalize(b *testing.B) {
	n, chunk := 100_000, 5000
	if v, err := strconv.Atoi(os.Getenv("YKT_BENCH_N")); err == nil && v > 0 {
		n = v // e.g. a small N under valgrind, whose instruction counts do not depend on the machine's load
	}
	if v, err := strconv.Atoi(os.Getenv("YKT_BENCH_CHUNK")); err == nil && v > 0 {
		chunk = v // intake's default is 10,000 (intake.chunk_records)
	}
	rng := mrand.NewChaCha8([32]byte{1})
	blob := func(size int) []byte { p := make([]byte, size); rng.Read(p); return p }
	recs := make([]spool.Record, chunk)
	var addDur, finDur, addCPU, finCPU time.Duration
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
		declared := n // as intake declares it (0: the SQL claim and shared-account scan, as before)
		if os.Getenv("YKT_BENCH_UNDECLARED") != "" {
			declared = 0
		}
		st, err := s.BeginBatch(ctx, &spool.Batch{BatchID: fmt.Sprint("B", i), Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11", TotalCount: declared})
		if err != nil {
			b.Fatal(err)
		}
		for seq := 1; seq <= n; seq += chunk {
			for j := range recs[:min(chunk, n-seq+1)] {
				recs[j] = spool.Record{Seq: seq + j, FieldsEnc: blob(98), IDIndex: blob(16),
					AccountIndex: blob(16), DedupeKey: blob(16), AccountKind: "card", AmountFen: 100}
			}
			b.StartTimer()
			ta, ca := time.Now(), cpuTime()
			if err := st.Add(ctx, recs[:min(chunk, n-seq+1)]); err != nil {
				b.Fatal(err)
			}
			addDur += time.Since(ta)
			addCPU += cpuTime() - ca
			b.StopTimer()
		}
		b.StartTimer()
		tf, cf := time.Now(), cpuTime()
		res, err := st.Finalize(ctx, &spool.Batch{BatchID: fmt.Sprint("B", i), Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL",
			Period: "2026-11", TotalCount: n, TotalFen: int64(100 * n)}, "bench", nil)
		if err != nil || len(res.Conflicts) > 0 {
			b.Fatal(err, res.Conflicts)
		}
		finDur += time.Since(tf)
		finCPU += cpuTime() - cf
		b.StopTimer()
		close(stopPoll)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(addDur.Seconds()/float64(b.N), "add-s/op")
	b.ReportMetric(finDur.Seconds()/float64(b.N), "finalize-s/op")
	b.ReportMetric(addCPU.Seconds()/float64(b.N), "add-cpu-s/op")
	b.ReportMetric(finCPU.Seconds()/float64(b.N), "finalize-cpu-s/op")
}

// cpuTime is the process's user and system CPU time: on a shared machine it
// varies less with the load than the wall clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
		recs = append(recs, spool.Record{Seq: seq, FieldsEnc: blob(98), IDIndex: blob(16),
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
		if err := s.RecordRange(ctx, "B", 1, n, func(r *spool.Record) error { sum += r.AmountFen + int64(len(r.FieldsEnc)); return nil }); err != nil {
			b.Fatal(err)
		}
		if sum != int64(n)*(100+98) {
			b.Fatalf("sum %d", sum)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
