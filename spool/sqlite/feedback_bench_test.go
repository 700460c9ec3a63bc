package sqlite

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"yktgw/spool"
)

// sentBatch builds a spool holding one batch of n records (ciphertext-sized
// blobs, amount 100+seq%7 fen) planned in deliveries of perFile records,
// every delivery SENT. With YKT_BENCH_SPOOL set, the built spool is kept at
// that path and copied for later runs (building 1,000,000 records takes a
// while).
func sentBatch(tb testing.TB, n, perFile int) (*Store, []spool.Delivery) {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "spool.db")
	tmpl := os.Getenv("YKT_BENCH_SPOOL")
	if tmpl != "" {
		tmpl = fmt.Sprintf("%s.%d.%d", tmpl, n, perFile)
		if _, err := os.Stat(tmpl); err == nil {
			if err := copyFile(path, tmpl); err != nil {
				tb.Fatal(err)
			}
			s, err := Open(ctx, path)
			if err != nil {
				tb.Fatal(err)
			}
			ds, err := s.Deliveries(ctx, spool.DeliveryFilter{BatchID: "B1"})
			if err != nil {
				tb.Fatal(err)
			}
			return s, ds
		}
	}
	s, err := Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	ds := plannedBatch(tb, s, n, perFile)
	for _, d := range ds {
		advanceDelivery(tb, s, d, spool.DeliverySent)
	}
	ds, err = s.Deliveries(ctx, spool.DeliveryFilter{BatchID: "B1"})
	if err != nil {
		tb.Fatal(err)
	}
	if tmpl != "" {
		if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			tb.Fatal(err)
		}
		if err := copyFile(tmpl, path); err != nil {
			tb.Fatal(err)
		}
	}
	return s, ds
}

// plannedBatch stages batch B1 of n records (random blobs for the sealed
// fields and indexes), finalizes and queues it, and plans its deliveries of
// perFile records (all PLANNED).
func plannedBatch(tb testing.TB, s *Store, n, perFile int) []spool.Delivery {
	tb.Helper()
	ctx := context.Background()
	rng := mrand.NewChaCha8([32]byte{2})
	blob := func(size int) []byte { p := make([]byte, size); rng.Read(p); return p }
	b := &spool.Batch{BatchID: "B1", Tenant: "210102", Bank: "DEMO", SubsidyCode: "GDZL", Period: "2026-11"}
	st, err := s.BeginBatch(ctx, b)
	if err != nil {
		tb.Fatal(err)
	}
	const chunk = 5000
	recs := make([]spool.Record, chunk)
	var total int64
	for seq := 1; seq <= n; seq += chunk {
		k := min(chunk, n-seq+1)
		for j := range recs[:k] {
			fen := int64(100 + (seq+j)%7)
			total += fen
			recs[j] = spool.Record{Seq: seq + j, FieldsEnc: blob(98), IDIndex: blob(16),
				AccountIndex: blob(16), DedupeKey: blob(16), AccountKind: "card", AmountFen: fen}
		}
		if err := st.Add(ctx, recs[:k]); err != nil {
			tb.Fatal(err)
		}
	}
	b.TotalCount, b.TotalFen = n, total
	if res, err := st.Finalize(ctx, b, "bench", nil); err != nil || len(res.Conflicts) > 0 {
		tb.Fatal(err, res.Conflicts)
	}
	if err := s.TransitionBatch(ctx, "B1", spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "test"}); err != nil {
		tb.Fatal(err)
	}
	ds, err := s.PlanDeliveries(ctx, "B1", perFile, func(bank string, k int64) string { return fmt.Sprintf("%s%08d", bank, k) }, spool.Event{Actor: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

// advanceDelivery takes a PLANNED delivery through SEALED and SENDING up to
// the state to (SEALED, SENDING or SENT).
func advanceDelivery(tb testing.TB, s *Store, d spool.Delivery, to spool.DeliveryState) {
	tb.Helper()
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F" + d.BankBatchNo, SealedPath: "/x", Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now()},
	} {
		if err := s.ChangeDelivery(context.Background(), c); err != nil {
			tb.Fatal(err)
		}
		if c.To == to {
			return
		}
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	// Written through before the benchmark starts: otherwise the first
	// checkpoint's fsync pays for the whole copy.
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// resultRows streams a return file for delivery d as the gateway would: one
// record in 100 failed (ACCOUNT_CLOSED), every amount as sent.
func resultRows(d spool.Delivery) func(add func(spool.ResultRow) error) error {
	return func(add func(spool.ResultRow) error) error {
		for seq := d.FirstSeq; seq <= d.LastSeq; seq++ {
			r := spool.ResultRow{Seq: seq, Paid: true, AmountFen: int64(100 + seq%7), BankCode: "0000", BankMessage: "交易成功",
				BankSerial: fmt.Sprintf("%s%08d", d.BankBatchNo, seq)}
			if seq%100 == 37 {
				r.Paid, r.Reason, r.BankCode, r.BankMessage = false, "ACCOUNT_NOT_FOUND", "E103", "卡或帐号不存在"
			}
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// BenchmarkApplyFeedback applies one return file per delivery of a SENT
// batch (default 200,000 records in files of 50,000; YKT_BENCH_N to change)
// until the batch settles: the spool's part of reconciliation. "temp" stages
// each file's lines in the apply's transaction; "ahead" stages the next
// file's lines (StageFeedback) on another goroutine while one applies, as
// the gateway does.
func BenchmarkApplyFeedback(b *testing.B) {
	b.Run("temp", func(b *testing.B) { benchApplyFeedback(b, false) })
	b.Run("ahead", func(b *testing.B) { benchApplyFeedback(b, true) })
}

func benchApplyFeedback(b *testing.B, ahead bool) {
	n, perFile := 200_000, 50_000
	if v, err := strconv.Atoi(os.Getenv("YKT_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, ds := sentBatch(b, n, perFile)
		b.StartTimer()
		type prepared struct {
			f       spool.Feedback
			rows    []spool.ResultRow
			release func()
		}
		prepare := func(d spool.Delivery) prepared {
			p := prepared{f: spool.Feedback{Bank: d.Bank, Name: "R" + d.BankBatchNo, Size: 1, SM3: []byte("sm3-" + d.BankBatchNo), BankBatchNo: d.BankBatchNo,
				BadReasons: map[string]bool{"ACCOUNT_NOT_FOUND": true}}, release: func() {}}
			resultRows(d)(func(r spool.ResultRow) error { p.rows = append(p.rows, r); return nil })
			if ahead {
				var err error
				if p.release, err = s.StageFeedback(ctx, p.f, p.rows); err != nil {
					b.Error(err)
				}
			}
			return p
		}
		ready := make(chan prepared, 1)
		go func() {
			for _, d := range ds {
				ready <- prepare(d)
			}
			close(ready)
		}()
		j := 0
		for p := range ready {
			d := ds[j]
			j++
			res, err := s.ApplyFeedback(ctx, p.f, func(add func(spool.ResultRow) error) error {
				for _, r := range p.rows {
					if err := add(r); err != nil {
						return err
					}
				}
				return nil
			})
			p.release()
			if err != nil || len(res.Anomalies) > 0 {
				b.Fatal(err, res.Anomalies)
			}
			if res.Paid+res.Failed != d.Count {
				b.Fatalf("applied %+v to %d records", res, d.Count)
			}
		}
		b.StopTimer()
		if bt, _ := s.Batch(ctx, "B1"); bt.State != spool.BatchSettled {
			b.Fatalf("batch %s", bt.State)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
