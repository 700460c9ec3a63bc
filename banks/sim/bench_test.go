package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAccept50k: one DEMO file of 50,000 records (the profile's
// max_records_per_file) from the gateway's Send over SFTP to the sealed
// return file in the feedback directory: upload, open and verify, three
// parse passes, outcomes, render, sign and seal, stage and publish.
//
//	go test -run '^$' -bench Accept50k -benchtime 3x ./banks/sim/
func BenchmarkAccept50k(b *testing.B) {
	e := start(b, "", func(c *Config) { c.Delay = 0 })
	const n = 50_000
	files := make([][]byte, b.N)
	for i := range files {
		files[i], _ = e.batch(fmt.Sprintf("BENCH%04d", i), n, e.ks.Gateway)
	}
	b.SetBytes(int64(len(files[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bbn := fmt.Sprintf("BENCH%04d", i)
		if err := e.send(bbn, "DEMO_PAY_"+bbn+".txt.p7", files[i]); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "return file", 5*time.Minute, func() bool { return e.sim.Stats().ReturnsWritten == i+1 })
	}
	b.StopTimer()
	if st := e.sim.Stats(); st.Records != n*b.N {
		b.Fatalf("stats = %+v", st)
	}
}
