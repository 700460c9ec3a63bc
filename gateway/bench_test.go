package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"yktgw/internal/gen"
	"yktgw/internal/memsample"
)

// peakHeap samples the live heap until stop is closed and returns the peak.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	return memsample.Peak(memsample.HeapObjects, 5*time.Millisecond, stop)
}

// BenchmarkIntakeNDJSON submits N records through the real HTTP handler into
// SQLite (validation, encryption, blind indexes, staging, finalize) and
// reports records/s and the peak live heap; the peak must not grow with N.
// The request body is generated on the fly, so it is not in the heap either.
func BenchmarkIntakeNDJSON(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			var peak uint64
			var total time.Duration
			var seq atomic.Int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b)
				id := fmt.Sprintf("BENCH-%d", seq.Add(1))
				runtime.GC()
				stop := make(chan struct{})
				pk := peakHeap(stop)
				b.StartTimer()
				start := time.Now()
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(gen.WriteNDJSON(pw, gen.Spec{BatchID: id, N: n})) }()
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/batches", pr)
				req.Header.Set("Authorization", "Bearer "+e.tokens["county"])
				req.Header.Set("Content-Type", "application/x-ndjson")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 201 {
					b.Fatalf("status %d: %s", res.StatusCode, bytes.TrimSpace(body))
				}
				total += time.Since(start)
				b.StopTimer()
				close(stop)
				if p := <-pk; p > peak {
					peak = p
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
