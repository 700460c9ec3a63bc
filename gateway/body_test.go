package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"yktgw/banks/format"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// bodyIntakeEnv is a dispatch env (channel: every send succeeds) whose DEMO
// files hold 50 records, taking records in chunks of 16 (chunks end inside files).
func bodyIntakeEnv(t testing.TB) (*env, *dispatcher) {
	t.Helper()
	ch := &scriptChannel{send: func(int) error { return nil }}
	e, d := dispatchEnv(t, scriptProber{ch})
	e.g.profiles["DEMO"].MaxRecordsPerFile = 50
	e.g.cfg.Intake.ChunkRecords = 16
	return e, d
}

// bodyEnv is a dispatch env whose DEMO files hold 50 records, with a batch of
// 120 records submitted and planned (3 files: 1-50, 51-100, 101-120).
func bodyEnv(t testing.TB, id string) (*env, *dispatcher, *spool.Batch, []spool.Delivery) {
	t.Helper()
	e, d := bodyIntakeEnv(t)
	if r := e.post("county", gen.Full(gen.Spec{BatchID: id, N: 120})); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	ctx := context.Background()
	d.plan(ctx)
	b, err := e.store.Batch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := e.store.Deliveries(ctx, spool.DeliveryFilter{BatchID: id})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	slices.SortFunc(ds, func(a, b spool.Delivery) int { return a.FirstSeq - b.FirstSeq })
	return e, d, b, ds
}

func fileBatch(b *spool.Batch, dl spool.Delivery) format.Batch {
	return format.Batch{BankBatchNo: dl.BankBatchNo, FileSeq: dl.FileSeq, Date: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		Count: dl.Count, TotalFen: dl.TotalFen, Memo: b.Memo, SubsidyCode: b.SubsidyCode, SubsidyName: b.SubsidyName,
		Tenant: b.Tenant, Period: b.Period, BatchID: b.BatchID}
}

// fromRecords renders a planned file the way it was always rendered.
func fromRecords(t *testing.T, e *env, b *spool.Batch, dl spool.Delivery) []byte {
	t.Helper()
	var w bytes.Buffer
	if err := e.g.profiles["DEMO"].Outbound.Render(&w, fileBatch(b, dl), e.g.recordsOf(context.Background(), dl)); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// TestBodiesRenderTheRecordsFile: intake leaves one sealed body per planned
// file, each assembles into exactly the file the records give, and sealing a
// delivery removes its body (the directory goes with the last one).
func TestBodiesRenderTheRecordsFile(t *testing.T) {
	e, d, b, ds := bodyEnv(t, "BODY-1")
	if b.Body == "" {
		t.Fatal("the batch has no body")
	}
	dir := bodyDir(e.g.cfg.Spool.Dir, b.Body)
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	slices.Sort(names)
	if want := []string{"1-50", "101-120", "51-100"}; !slices.Equal(names, want) {
		t.Fatalf("bodies %v, want %v", names, want)
	}
	p := e.g.profiles["DEMO"]
	for _, dl := range ds {
		var got bytes.Buffer
		ok, err := e.g.renderFromBody(&got, p, b, dl, fileBatch(b, dl))
		if !ok || err != nil {
			t.Fatalf("%d-%d: body not used: %v", dl.FirstSeq, dl.LastSeq, err)
		}
		if want := fromRecords(t, e, b, dl); !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%d-%d: the body's file differs from the records' file", dl.FirstSeq, dl.LastSeq)
		}
	}
	allSent(t, e, d, ds)
	if n := counter(e.g.metrics.filesSealed.WithLabelValues("DEMO", "body")); n != 3 {
		t.Fatalf("%v files sealed from bodies, want 3", n)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("body directory still there after sealing: %v", err)
	}
}

// allSent ticks the dispatcher until every delivery is SENT.
func allSent(t *testing.T, e *env, d *dispatcher, ds []spool.Delivery) {
	t.Helper()
	for i := 0; ; i++ {
		d.tickWait(context.Background())
		sent := 0
		for _, dl := range ds {
			got, err := e.store.Delivery(context.Background(), dl.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == spool.DeliverySent && got.Size > 0 {
				sent++
			} else if i == 50 {
				t.Fatalf("delivery %d-%d is %s (%s)", dl.FirstSeq, dl.LastSeq, got.State, got.LastError)
			}
		}
		if sent == len(ds) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBodyIsNeverTheTruth: a body that does not open, belongs to another
// file, or claims totals other than the planned file's is not used.
func TestBodyIsNeverTheTruth(t *testing.T) {
	e, _, b, ds := bodyEnv(t, "BODY-2")
	dir := bodyDir(e.g.cfg.Spool.Dir, b.Body)
	p := e.g.profiles["DEMO"]
	use := func(dl spool.Delivery) (bool, error) {
		var w bytes.Buffer
		return e.g.renderFromBody(&w, p, b, dl, fileBatch(b, dl))
	}
	// A flipped byte: GCM refuses it.
	path := bodyPath(e.g.cfg.Spool.Dir, b.Body, 1, 50)
	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 1
	os.WriteFile(path, raw, 0o600)
	if ok, err := use(ds[0]); ok || err == nil {
		t.Fatalf("tampered body used (ok %v, err %v)", ok, err)
	}
	// Another file's body under this file's name: the additional data differ.
	other, _ := os.ReadFile(filepath.Join(dir, "51-100"))
	os.WriteFile(filepath.Join(dir, "101-120"), other, 0o600)
	if ok, err := use(ds[2]); ok || err == nil {
		t.Fatalf("another file's body used (ok %v, err %v)", ok, err)
	}
	// A body that opens but whose totals are not the planned file's.
	plain := make([]byte, 16, 64)
	binary.BigEndian.PutUint64(plain[0:8], uint64(ds[1].Count))
	binary.BigEndian.PutUint64(plain[8:16], uint64(ds[1].TotalFen+1))
	plain = append(plain, "\n1|x|y|z|1|"...)
	sealed, err := e.g.fields.EncryptTo([]byte(bodyMagic), plain, bodyAAD(nil, b.BatchID, 51, 100, layoutPrint(p.Outbound)))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "51-100"), sealed, 0o600)
	if ok, err := use(ds[1]); ok || err == nil {
		t.Fatalf("body with other totals used (ok %v, err %v)", ok, err)
	}
	// No body at all: the records, silently.
	os.RemoveAll(dir)
	if ok, err := use(ds[0]); ok || err != nil {
		t.Fatalf("missing body: ok %v, err %v", ok, err)
	}
}

// TestBadBodiesStillDeliverTheRecords: with every body damaged, the
// dispatcher seals and sends files rendered from the records.
func TestBadBodiesStillDeliverTheRecords(t *testing.T) {
	e, d, b, ds := bodyEnv(t, "BODY-3")
	dir := bodyDir(e.g.cfg.Spool.Dir, b.Body)
	for _, dl := range ds {
		path := filepath.Join(dir, filepath.Base(bodyPath("", b.Body, dl.FirstSeq, dl.LastSeq)))
		raw, _ := os.ReadFile(path)
		raw[len(raw)-1] ^= 0x80
		os.WriteFile(path, raw, 0o600)
	}
	allSent(t, e, d, ds)
	if n := counter(e.g.metrics.filesSealed.WithLabelValues("DEMO", "records")); n != 3 {
		t.Fatalf("%v files sealed from the records, want 3", n)
	}
}

// TestRefusedBatchLeavesNoBody: bodies written before an error further down
// the batch are removed with the stage.
func TestRefusedBatchLeavesNoBody(t *testing.T) {
	e, _ := bodyIntakeEnv(t)
	bt := gen.Full(gen.Spec{BatchID: "BODY-BAD", N: 120})
	bt.Records[110].IDNumber = "110105194912310021" // bad check digit, after two files' bodies
	if r := e.post("county", bt); r.status != StatusInvalid {
		t.Fatalf("%d %s", r.status, r.body)
	}
	ents, _ := os.ReadDir(filepath.Join(e.g.cfg.Spool.Dir, "body"))
	if len(ents) != 0 {
		t.Fatalf("bodies of a refused batch left behind: %v", ents)
	}
}

// TestSweepBodies: at start-up, bodies of batches that will not be sealed
// again go (a crashed stage's, a settled batch's); a queued batch's stay.
func TestSweepBodies(t *testing.T) {
	e, _, b, _ := bodyEnv(t, "BODY-4")
	orphan := bodyDir(e.g.cfg.Spool.Dir, newBodyName())
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(orphan, "1-50"), []byte("left by a crash"), 0o600)
	if err := e.g.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan body kept: %v", err)
	}
	if _, err := os.Stat(bodyDir(e.g.cfg.Spool.Dir, b.Body)); err != nil {
		t.Fatalf("the sending batch's bodies went: %v", err)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestLayoutProblemsAllReported: rendering a record into its body is the
// layout check while the batch is clean; every layout problem is still
// reported, with its record and field, also those after the first (when
// there is no body to render into any more), and nothing is left behind.
func TestLayoutProblemsAllReported(t *testing.T) {
	e, _ := bodyIntakeEnv(t)
	bt := gen.Full(gen.Spec{BatchID: "BODY-LAYOUT", N: 120})
	bt.Records[4].Remark = "a|b"                  // the DEMO file's delimiter
	bt.Records[70].Name = strings.Repeat("张", 31) // 62 bytes in GB18030, max 60
	bt.Records[100].Remark = "c|d"
	r := e.post("county", bt)
	if r.status != StatusInvalid {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var body ErrorBody
	r.json(t, &body)
	got := map[string]bool{}
	for _, is := range body.Errors {
		got[fmt.Sprintf("%d/%s/%s", is.Seq, is.Field, is.Code)] = true
	}
	for _, want := range []string{"5/remark/layout.separator", "71/name/layout.too_long", "101/remark/layout.separator"} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	if len(body.Errors) != 3 {
		t.Errorf("errors %+v, want exactly 3", body.Errors)
	}
	ents, _ := os.ReadDir(filepath.Join(e.g.cfg.Spool.Dir, "body"))
	if len(ents) != 0 {
		t.Fatalf("bodies of a refused batch left behind: %v", ents)
	}
}

// FuzzBodyFile: whatever bytes lie in a body's place, the dispatcher never
// panics and never uses them unless they are a body sealed for this file
// (the seed corpus holds the real one, which must be used).
func FuzzBodyFile(f *testing.F) {
	e, _, b, ds := bodyEnv(f, "BODY-FUZZ")
	dl := ds[0]
	path := bodyPath(e.g.cfg.Spool.Dir, b.Body, dl.FirstSeq, dl.LastSeq)
	real, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(bodyMagic))
	f.Add(append([]byte(bodyMagic), real[len(bodyMagic):len(bodyMagic)+40]...))
	f.Add([]byte{})
	p := e.g.profiles["DEMO"]
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var w bytes.Buffer
		ok, _ := e.g.renderFromBody(&w, p, b, dl, fileBatch(b, dl))
		if ok != bytes.Equal(data, real) {
			t.Fatalf("body of %d bytes used: %v", len(data), ok)
		}
	})
}

// TestOutOfOrderBatchHasNoBodies: records in another order than seq are
// accepted, but the bodies (rendered in seq order) are given up and removed;
// the files are rendered from the records.
func TestOutOfOrderBatchHasNoBodies(t *testing.T) {
	e, d := bodyIntakeEnv(t)
	bt := gen.Full(gen.Spec{BatchID: "BODY-ORDER", N: 120})
	bt.Records[60], bt.Records[61] = bt.Records[61], bt.Records[60]
	if r := e.post("county", bt); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if left, _ := filepath.Glob(filepath.Join(e.g.cfg.Spool.Dir, "body", "*", "*")); len(left) != 0 {
		t.Fatalf("bodies of a batch out of order left: %v", left)
	}
	ctx := context.Background()
	d.plan(ctx)
	ds, err := e.store.Deliveries(ctx, spool.DeliveryFilter{BatchID: "BODY-ORDER"})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	allSent(t, e, d, ds)
	if n := counter(e.g.metrics.filesSealed.WithLabelValues("DEMO", "records")); n != 3 {
		t.Fatalf("%v files sealed from the records, want 3", n)
	}
}

// blank decides as format.CheckRecord's strings.TrimSpace(s) == "" does.
func TestBlank(t *testing.T) {
	for _, s := range []string{"", " ", "\t\r\n", "\u3000", "\u0085\u00a0", " a ", "王", " 王\u3000", "\xff", " \xff ", "\u200b", "0"} {
		if got, want := blank(s), strings.TrimSpace(s) == ""; got != want {
			t.Errorf("blank(%q) = %v, want %v", s, got, want)
		}
	}
}
