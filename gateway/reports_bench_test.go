package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"yktgw/internal/gen"
	"yktgw/spool"
)

// BenchmarkReports100k submits 100,000 records through the real NDJSON
// intake, sends them and applies a return file that fails every one (so the
// return list has 100,000 rows and every account is remembered as closed),
// then fetches each list over HTTP as xlsx (admin: full view), reporting
// seconds per list, rows and the peak live heap while it is written.
//
//	go test -run '^$' -bench Reports100k -benchtime 1x ./gateway/
func BenchmarkReports100k(b *testing.B) {
	const n = 100_000
	e := newEnv(b)
	ctx := context.Background()
	secret, _, err := CreateToken(ctx, e.store, "admin", []string{"*"}, []string{RoleAdmin}, "test")
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen.WriteNDJSON(pw, gen.Spec{BatchID: "BIG", N: n})) }()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/batches", pr)
	req.Header.Set("Authorization", "Bearer "+e.tokens["county"])
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		b.Fatalf("submit: %v %v", res, err)
	}
	res.Body.Close()
	b.Logf("intake of %d records: %s", n, time.Since(t0))
	t0 = time.Now()
	ds, err := e.store.PlanDeliveries(ctx, "BIG", n, func(bank string, k int64) string { return fmt.Sprintf("%s%08d", bank, k) }, spool.Event{})
	if err != nil {
		b.Fatal(err)
	}
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F", SealedPath: "/x", Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now(), DeadlineAt: time.Now().Add(time.Hour)},
	} {
		if err := e.store.ChangeDelivery(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.store.ApplyFeedback(ctx, spool.Feedback{Bank: "DEMO", Name: "R", Size: 1, SM3: []byte("r"), BankBatchNo: d.BankBatchNo, BadReasons: badReasons},
		func(add func(spool.ResultRow) error) error {
			for i := 1; i <= n; i++ {
				if err := add(spool.ResultRow{Seq: i, Reason: "ACCOUNT_CLOSED", BankCode: "E12", BankMessage: "卡或帐号已销户"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
		b.Fatal(err)
	}
	b.Logf("sent and failed: %s", time.Since(t0))
	for _, path := range []string{
		"/v1/batches/BIG/return-list",
		"/v1/reports/sanwu?subsidy=GDZL&period=2026-11",
		"/v1/reports/duplicates?subsidy=GDZL&period=2026-11",
		"/v1/reports/shared-accounts?subsidy=GDZL&period=2026-11",
		"/v1/reports/cross-department?period=2026-11",
	} {
		b.Run(path, func(b *testing.B) {
			var peak uint64
			var size int64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				stop := make(chan struct{})
				pk := peakHeap(stop)
				req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != 200 {
					b.Fatalf("%v %v", res, err)
				}
				size, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				close(stop)
				if p := <-pk; p > peak {
					peak = p
				}
			}
			b.ReportMetric(float64(size), "bytes")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
