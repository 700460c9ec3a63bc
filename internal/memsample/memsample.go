// Package memsample samples a runtime/metrics value until told to stop and
// reports its peak: the memory bounds of tests and benchmarks (the live
// heap must not grow with a batch) read it. Test and benchmark use only.
package memsample

import (
	"runtime/metrics"
	"time"
)

// Metrics the tests bound.
const (
	HeapObjects = "/memory/classes/heap/objects:bytes" // allocated heap, garbage not yet collected included
	LiveHeap    = "/gc/heap/live:bytes"                // heap the last GC cycle marked live
)

// Peak samples the metric name every interval until stop is closed, then
// sends the largest value seen.
func Peak(name string, every time.Duration, stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: name}}
		var peak uint64
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			metrics.Read(s)
			if s[0].Value.Kind() == metrics.KindUint64 {
				if v := s[0].Value.Uint64(); v > peak {
					peak = v
				}
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}
