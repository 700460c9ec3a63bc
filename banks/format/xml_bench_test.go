package format

import (
	"bytes"
	"runtime"
	"testing"
)

// BenchmarkXMLRefParse parses the same return message as
// BenchmarkParse1M/xml with the encoding/xml reference parser the scanner
// replaced, for a before/after in one invocation:
//
//	go test ./banks/format -run '^$' -bench 'Parse1M/xml|XMLRefParse' -benchtime 1x
func BenchmarkXMLRefParse(b *testing.B) {
	ret, data := returnFile(b, styles[2])
	b.SetBytes(int64(len(data)))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		p := newParser(ret)
		p.onResult = func(Result) error { n++; return nil }
		if err := p.runXMLRef(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		p.checkStated()
		if err := p.errs.err(); err != nil {
			b.Fatal(err)
		}
		if n != benchRecords {
			b.Fatalf("parsed %d", n)
		}
	}
	b.StopTimer()
	reportPerRecord(b, benchRecords, &before, cpu0)
}
