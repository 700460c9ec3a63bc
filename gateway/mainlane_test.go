package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/gateway/validate"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// cpuSeconds is the process's user+system CPU time: on a shared machine wall
// time mostly measures the neighbours.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// nopStage stands in for the spool's stage: the main-lane benchmark measures
// intake's own goroutine, not the sealer and the SQLite writer.
type nopStage struct{}

func (nopStage) Add(context.Context, []spool.Record) error { return nil }
func (nopStage) Finalize(context.Context, *spool.Batch, string, func(spool.FinalizeResult) []byte) (spool.FinalizeResult, error) {
	return spool.FinalizeResult{}, nil
}
func (nopStage) Abort(context.Context) error { return nil }

// BenchmarkMainLane is intake's main goroutine on the bench's records (gen,
// bank DEMO): walkRecords decodes each NDJSON record and checkRecord
// validates it, renders it into its file's body (sealed and written when the
// 50,000 records of a file are complete) and adds it to the content hash.
// The chunks handed over are dropped (no sealer, no SQLite), and the clock
// is the real one, as in the daemon.
func BenchmarkMainLane(b *testing.B) {
	const n = 50_000
	e := newEnv(b)
	var body bytes.Buffer
	if err := gen.WriteNDJSON(&body, gen.Spec{BatchID: "LANE-1", N: n}); err != nil {
		b.Fatal(err)
	}
	data := body.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuSeconds()
	for b.Loop() {
		in := runLane(b, e, data, n, nil)
		if in.issues.HasErrors() || in.body.incomplete() != "" {
			b.Fatal(in.issues.Errors(), in.body.incomplete())
		}
		in.body.discard()
	}
	cpu := cpuSeconds() - cpu0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(cpu*1e9/float64(b.N*n), "cpu-ns/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N*n), "allocs/record")
}

// runLane runs intake's main goroutine over the NDJSON batch data of n
// records (see BenchmarkMainLane) with the clock now (nil: the real one).
func runLane(tb testing.TB, e *env, data []byte, n int, now func() time.Time) *intake {
	in := &intake{g: e.g, ctx: context.Background(), hash: sm3.New()}
	in.issues.Max = 50
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in.h); err != nil {
		tb.Fatal(err)
	}
	in.count = int64(n)
	in.bank = e.g.profiles[in.h.Bank]
	in.rules = validate.Rules{CapFen: e.g.caps, Luhn: in.bank.Luhn, Now: now}
	in.seqs = validate.NewSeqTracker(n)
	in.stage = nopStage{}
	in.body = newBodyBuilder(e.g.fields, e.g.cfg.Spool.Dir, newBodyName(), in.bank, &in.h, n)
	in.chunk = make([]validate.Record, 0, e.g.cfg.Intake.ChunkRecords)
	in.chunks = make(chan []validate.Record, 1)
	in.free = make(chan []validate.Record, 2)
	done := make(chan struct{})
	go func() {
		for c := range in.chunks {
			clear(c)
			in.free <- c[:0]
		}
		close(done)
	}()
	rest := bytes.NewReader(data[dec.InputOffset():])
	err := walkRecords(json.NewDecoder(bytes.NewReader(nil)), rest, func(rj *recordJSON, err error) error {
		in.nrec++
		if err != nil {
			return err
		}
		return in.checkRecord(rj)
	})
	close(in.chunks)
	<-done
	if err != nil {
		tb.Fatal(err)
	}
	return in
}

// Intake reads the date for the birth-date check again every todayEvery
// records: in a batch checked across midnight, a record born on the new day
// is refused before the clock turns and accepted once the date was read
// after it (and never later than todayEvery records after).
func TestIntakeRereadsToday(t *testing.T) {
	const n = 3072 // 3 × todayEvery
	e := newEnv(t)
	day1 := time.Date(2026, 11, 28, 23, 59, 59, 0, time.FixedZone("CST", 8*3600))
	calls := 0
	clock := func() time.Time {
		calls++
		if calls == 1 {
			return day1
		}
		return day1.Add(2 * time.Second) // 2026-11-29 in China
	}
	born := func() string { // born 2026-11-29
		id := "21010220261129001"
		return id + string(validate.IDCheckChar(id))
	}()
	early, late := 10, 2048
	var body bytes.Buffer
	spec := gen.Spec{BatchID: "MIDNIGHT-1", N: n}
	w := json.NewEncoder(&body)
	w.Encode(gen.Make(spec))
	gen.Records(spec, func(r gen.Record) error {
		if r.Seq == early || r.Seq == late {
			r.IDNumber = born
		}
		return w.Encode(r)
	})
	in := runLane(t, e, body.Bytes(), n, clock)
	var got []int
	for _, is := range in.issues.Errors() {
		got = append(got, is.Seq)
		if is.Code != "id_number.birth_date" {
			t.Errorf("issue %+v", is)
		}
	}
	if len(got) != 1 || got[0] != early {
		t.Fatalf("records refused for their birth date: %v, want only %d", got, early)
	}
	if calls < n/todayEvery || calls > n/todayEvery+1 {
		t.Fatalf("the clock was read %d times for %d records", calls, n)
	}
}
