package memsample

import (
	"runtime"
	"testing"
	"time"
)

var sink [][]byte

func TestPeakSeesAnAllocation(t *testing.T) {
	runtime.GC()
	stop := make(chan struct{})
	pk := Peak(HeapObjects, time.Millisecond, stop)
	for i := 0; i < 64; i++ {
		sink = append(sink, make([]byte, 1<<20)) // 64 MiB held
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	if got := <-pk; got < 64<<20 {
		t.Fatalf("peak %d bytes with 64 MiB held", got)
	}
	sink = nil
}
