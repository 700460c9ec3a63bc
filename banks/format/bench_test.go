package format

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

// The gateway renders and parses files of up to 1,000,000 records. Run with
//
//	go test ./banks/format -run '^$' -bench 1M -benchtime 1x
//
// records/s and allocs/record are reported per style.
// YKT_BENCH_RECORDS overrides the count (for profiling).
var benchRecords = func() int {
	if n, err := strconv.Atoi(os.Getenv("YKT_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// cpuSeconds is the process's user+system CPU time: on the shared 2-core
// machine wall time mostly measures the neighbours, CPU time measures us
// (it includes the GC's background work).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func reportPerRecord(b *testing.B, n int, before *runtime.MemStats, cpu0 float64) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(total/(cpuSeconds()-cpu0), "records/cpu-s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/record")
}

func BenchmarkRender1M(b *testing.B) {
	for _, s := range styles {
		b.Run(s.name, func(b *testing.B) {
			out, _ := loadStyle(b, s)
			gbkSafe := out.Encoding() == "GBK"
			batch := testBatch(benchRecords)
			_, batch.TotalFen = sumRecords(genRecords(benchRecords, gbkSafe))
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cpu0 := cpuSeconds()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := out.Render(io.Discard, batch, genRecords(benchRecords, gbkSafe)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportPerRecord(b, benchRecords, &before, cpu0)
		})
	}
}

// returnFile renders a 1M-record return file for style s (setup, untimed).
func returnFile(b *testing.B, s style) (*Layout, []byte) {
	out, ret := loadStyle(b, s)
	gbkSafe := out.Encoding() == "GBK"
	batch := testBatch(benchRecords)
	var sum Summary
	results := func(yield func(Result, error) bool) {
		for r := range genRecords(benchRecords, gbkSafe) {
			res := Result{Seq: r.Seq, Name: r.Name, Account: r.Account, AmountFen: r.AmountFen, OrigFen: r.AmountFen,
				Code: s.paid, Message: "交易成功", BankSerial: "SN2026112800001"}
			if r.Seq%10 == 0 {
				res.Code, res.Message, res.BankSerial = "E1", "户名与账号不符", ""
			}
			if !yield(res, nil) {
				return
			}
		}
	}
	for r := range results {
		sum.Count++
		sum.TotalFen += r.AmountFen
		if r.Code == s.paid {
			sum.PaidCount++
			sum.PaidFen += r.AmountFen
		} else {
			sum.FailedCount++
			sum.FailedFen += r.AmountFen
		}
	}
	sum.BatchCode = "AAAAAAA"
	var buf bytes.Buffer
	if err := ret.RenderResults(&buf, batch, sum, results); err != nil {
		b.Fatal(err)
	}
	return ret, buf.Bytes()
}

func BenchmarkParse1M(b *testing.B) {
	for _, s := range styles {
		b.Run(s.name, func(b *testing.B) {
			ret, data := returnFile(b, s)
			b.SetBytes(int64(len(data)))
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cpu0 := cpuSeconds()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n := 0
				sum, err := ret.Parse(bytes.NewReader(data), func(Result) error { n++; return nil })
				if err != nil {
					b.Fatal(err)
				}
				if n != benchRecords || sum.Count != benchRecords {
					b.Fatalf("parsed %d", n)
				}
			}
			b.StopTimer()
			reportPerRecord(b, benchRecords, &before, cpu0)
		})
	}
}

// BenchmarkBodyWriter renders detail lines only (what intake does for every
// record: BodyWriter.Add) for records shaped like the bench's: a Han name
// (one in 50 a minority name with a middle dot), an 18-character ID number,
// a 19-digit card number, an empty remark. The records are built before the
// timer starts.
func BenchmarkBodyWriter(b *testing.B) {
	const n = 50_000
	recs := make([]Record, n)
	given := []string{"伟", "芳", "秀英", "建国", "春梅"}
	for i := range recs {
		name := names[i%2] + given[i%len(given)]
		if i%50 == 7 {
			name = "阿依古丽·买买提"
		}
		recs[i] = Record{Seq: i + 1, Name: name, IDNumber: "21010219" + strconv.Itoa(3000000000 + i)[1:], Account: strconv.Itoa(6222020000000000000 + i),
			AccountKind: "card", AmountFen: int64(1000 + i*37%500000)}
	}
	for _, s := range styles {
		b.Run(s.name, func(b *testing.B) {
			out, _ := loadStyle(b, s)
			var buf bytes.Buffer
			bw, err := out.NewBodyWriter(&buf, testBatch(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cpuSeconds()
			for b.Loop() {
				buf.Reset()
				bw.Reset(&buf)
				for i := range recs {
					if err := bw.Add(recs[i]); err != nil {
						b.Fatal(err)
					}
				}
				if err := bw.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuSeconds()-cpu0)*1e9/float64(b.N*n), "cpu-ns/record")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
