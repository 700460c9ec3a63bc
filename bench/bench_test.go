package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/banks/sim"
	"yktgw/crypto"
	"yktgw/internal/gen"
)

func TestMedianMinMax(t *testing.T) {
	for _, c := range []struct {
		in          []time.Duration
		med, lo, hi time.Duration
	}{
		{[]time.Duration{3}, 3, 3, 3},
		{[]time.Duration{5, 1, 3}, 3, 1, 5},
		{[]time.Duration{4, 9, 1, 2, 7}, 4, 1, 9},
	} {
		if got := median(c.in); got != c.med {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.med)
		}
		if lo, hi := minmax(c.in); lo != c.lo || hi != c.hi {
			t.Errorf("minmax(%v) = %v,%v, want %v,%v", c.in, lo, hi, c.lo, c.hi)
		}
	}
}

func TestVmHWM(t *testing.T) {
	b, err := vmHWM(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if b < 1<<20 || b > 1<<40 {
		t.Fatalf("VmHWM of this test = %d bytes, implausible", b)
	}
}

// TestPrepareReturns: files sealed as the gateway seals them come back as
// one sealed DEMO return each, that the gateway's key opens, whose lines
// add up to the batch, 1 record in 100 failed.
func TestPrepareReturns(t *testing.T) {
	dir := t.TempDir()
	ks, err := sim.SetupKeys(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := banks.LoadProfile("../testdata/banks/demo/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ks: ks, profile: p}
	spec := gen.Spec{BatchID: "T1", N: 250, Seed: 7}
	hdr := gen.Make(spec)
	upload, stage := filepath.Join(dir, "upload"), filepath.Join(dir, "stage")
	os.MkdirAll(upload, 0o700)
	os.MkdirAll(stage, 0o700)
	opt := crypto.SealOptions{Cipher: p.Envelope.Cipher}
	// Two deliveries: seq 1..200 and 201..250.
	var all []gen.Record
	gen.Records(spec, func(r gen.Record) error { all = append(all, r); return nil })
	for i, part := range [][]gen.Record{all[:200], all[200:]} {
		var total int64
		for _, r := range part {
			total += r.AmountFen
		}
		bbn := "DEMO000000000" + string(rune('1'+i))
		var plain, sealed bytes.Buffer
		fb := format.Batch{BankBatchNo: bbn, FileSeq: i + 1, Date: time.Now(), Count: len(part), TotalFen: total, Memo: hdr.Memo}
		err := p.Outbound.Render(&plain, fb, func(yield func(format.Record, error) bool) {
			for _, r := range part {
				if !yield(format.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber, Account: r.Account, AccountKind: r.AccountKind, AmountFen: r.AmountFen}, nil) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := crypto.SignAndSeal(&sealed, &plain, ks.Gateway, []*smx509.Certificate{ks.Bank.Cert}, opt); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(upload, p.OutboundFileName(fb)), sealed.Bytes(), 0o600)
	}
	os.WriteFile(filepath.Join(upload, ".DEMO_PAY_x.part"), []byte("partial"), 0o600) // ignored

	staged, sum, err := prepareReturns(e, upload, stage, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if len(staged) != 2 || sum.Count != 250 || sum.TotalFen != hdr.TotalFen || sum.FailedCount != 3 || sum.PaidCount != 247 ||
		sum.PaidFen+sum.FailedFen != hdr.TotalFen {
		t.Fatalf("staged %d files, summary %+v (batch total %d)", len(staged), sum, hdr.TotalFen)
	}
	var got format.Summary
	for _, s := range staged {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		var plain bytes.Buffer
		if err := crypto.OpenAndVerify(&plain, bytes.NewReader(raw), ks.Gateway, ks.Bank.Cert, opt); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		fs, err := p.Return.Parse(&plain, func(format.Result) error { return nil })
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got.Count += fs.Count
		got.PaidFen += fs.PaidFen
		got.FailedCount += fs.FailedCount
	}
	if got.Count != 250 || got.PaidFen != sum.PaidFen || got.FailedCount != 3 {
		t.Fatalf("returns parse to %+v, want %+v", got, sum)
	}
}

func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Burn about 100 ms of CPU on this goroutine: the reading must grow by
	// about that (ticks of 10 ms; other threads may add a little).
	start := time.Now()
	x := uint64(1)
	for time.Since(start) < 150*time.Millisecond {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 50*time.Millisecond || d > 2*time.Second || x == 0 {
		t.Fatalf("CPU time grew by %v while burning 150 ms of wall time", d)
	}
}

// TestReadLanes takes the lanes of the named batch's "batch accepted" line
// from a daemon's JSON log, past other lines and other batches.
func TestReadLanes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.log")
	log := `not json
{"time":"2026-11-28T18:55:52Z","level":"INFO","msg":"batch accepted","batch":"OTHER","lanes":{"chunks":1,"read_wait":1}}
{"time":"2026-11-28T18:55:52Z","level":"INFO","msg":"batch planned","batch":"B-1"}
{"time":"2026-11-28T18:55:52Z","level":"INFO","msg":"batch accepted","batch":"B-1","records":1000000,"lanes":{"chunks":100,"read_wait":1687271347,"seal_busy":2620414529,"seal_wait":953747273,"write_busy":3541696442,"write_wait":75164683,"finalize":470138437}}
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	l, ok := readLanes(path, "B-1")
	want := intakeLanes{Chunks: 100, ReadWait: 1687271347, SealBusy: 2620414529, SealWait: 953747273, WriteBusy: 3541696442, WriteWait: 75164683, Finalize: 470138437}
	if !ok || l != want {
		t.Fatalf("lanes %+v %v, want %+v", l, ok, want)
	}
	if _, ok := readLanes(path, "B-2"); ok {
		t.Fatal("lanes of a batch the log does not name")
	}
}

func TestParseMetrics(t *testing.T) {
	page := []byte(`# HELP yktgw_spool_log_copy_deferred 1 while ...
# TYPE yktgw_spool_log_copy_deferred gauge
yktgw_spool_log_copy_deferred 1
yktgw_spool_log_copies_total 12
yktgw_records{state="PAID",bank="DEMO"} 5
yktgw_spool_log_bytes 2.5e+08
`)
	got := parseMetrics(page, "yktgw_spool_log_copy_deferred", "yktgw_spool_log_copies_total", "yktgw_records")
	want := map[string]float64{"yktgw_spool_log_copy_deferred": 1, "yktgw_spool_log_copies_total": 12}
	if len(got) != len(want) || got["yktgw_spool_log_copy_deferred"] != 1 || got["yktgw_spool_log_copies_total"] != 12 {
		t.Fatalf("parseMetrics = %v, want %v", got, want)
	}
}
