package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/crypto"
	"yktgw/spool"
)

// Bank is one paying bank at run time: its profile, its certificate (the
// recipient of what we seal, the signer of its returns) and its channel.
type Bank struct {
	Profile *banks.Profile
	Cert    *smx509.Certificate
	Channel banks.Channel
	sem     chan struct{} // bounds deliveries in flight to this bank
}

// BankBatchNo formats our bank batch number: the bank code and a counter
// that the spool never hands out twice.
func BankBatchNo(bank string, n int64) string { return bank + fmt.Sprintf("%010d", n) }

// dispatcher turns queued batches into sealed files and delivers them,
// exactly once: a delivery is recorded as SENDING before any byte leaves,
// so after a crash or an unknown outcome the bank side is asked before
// anything is sent again (money rule 5).
type dispatcher struct {
	g        *Gateway
	mu       sync.Mutex
	inflight map[int64]bool // deliveries being sent by this process
	probeAt  map[int64]time.Time
	sending  sync.WaitGroup // sends in flight (they overlap with sealing)
}

// wait waits for the sends in flight (at shutdown).
func (d *dispatcher) wait() { d.sending.Wait() }

func newDispatcher(g *Gateway) *dispatcher {
	return &dispatcher{g: g, inflight: map[int64]bool{}, probeAt: map[int64]time.Time{}}
}

// tick does one round: plan queued batches, settle unknown outcomes, and
// seal planned deliveries while the sealed ones are already being sent (each
// send runs in the background, bounded per bank). Errors are logged; the
// next tick retries.
func (d *dispatcher) tick(ctx context.Context) {
	d.plan(ctx)
	d.recover(ctx)
	d.send(ctx)
	d.seal(ctx)
}

// tickWait is tick followed by waiting for the sends it started (tests).
func (d *dispatcher) tickWait(ctx context.Context) {
	d.tick(ctx)
	d.wait()
}

func (d *dispatcher) plan(ctx context.Context) {
	g := d.g
	bs, err := g.store.Batches(ctx, spool.BatchFilter{State: spool.BatchQueued, Limit: 100})
	if err != nil {
		g.log.Error("dispatch: list queued", "err", err)
		return
	}
	for i := len(bs) - 1; i >= 0; i-- { // oldest first
		b := bs[i]
		bank := g.banks[b.Bank]
		if bank == nil {
			g.log.Error("dispatch: batch for a bank without a channel", "batch", b.BatchID, "bank", b.Bank)
			continue
		}
		per := filePer(bank.Profile)
		ds, err := g.store.PlanDeliveries(ctx, b.BatchID, per, BankBatchNo, spool.Event{Actor: "system"})
		if err != nil {
			if !errors.Is(err, spool.ErrStale) {
				g.log.Error("dispatch: plan", "batch", b.BatchID, "err", err)
			}
			continue
		}
		g.log.Info("batch planned", "batch", b.BatchID, "bank", b.Bank, "deliveries", len(ds))
	}
}

func (d *dispatcher) seal(ctx context.Context) {
	g := d.g
	ds, err := g.store.Deliveries(ctx, spool.DeliveryFilter{States: []spool.DeliveryState{spool.DeliveryPlanned}, Limit: 100})
	if err != nil {
		g.log.Error("dispatch: list planned", "err", err)
		return
	}
	// seal_workers files at once: rendering, decrypting the fields and
	// sealing are CPU work that reads through the spool's reader connections;
	// only the short SEALED transition goes through the one writer.
	work := make(chan spool.Delivery)
	var wg sync.WaitGroup
	for range max(1, min(g.cfg.Dispatcher.SealWorkers, len(ds))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dl := range work {
				if err := d.sealOne(ctx, dl); err != nil {
					g.log.Error("dispatch: seal", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "err", err)
					if errors.Is(err, errPermanent) {
						d.dead(ctx, dl, spool.DeliveryPlanned, err.Error())
					}
					continue
				}
				d.send(ctx) // start sending it while the next one is sealed
			}
		}()
	}
	for _, dl := range ds {
		if ctx.Err() != nil {
			break
		}
		work <- dl
	}
	close(work)
	wg.Wait()
}

var errPermanent = errors.New("permanent")

// sealOne renders the delivery's records in the bank's layout (in memory:
// the plain file never touches the disk), signs and seals it to the bank,
// writes the sealed bytes durably into the spool directory and records
// their name, size and SM3.
func (d *dispatcher) sealOne(ctx context.Context, dl spool.Delivery) error {
	g := d.g
	bank := g.banks[dl.Bank]
	if bank == nil {
		return fmt.Errorf("no bank %s", dl.Bank)
	}
	b, err := g.store.Batch(ctx, dl.BatchID)
	if err != nil {
		return err
	}
	p := bank.Profile
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	fb := format.Batch{BankBatchNo: dl.BankBatchNo, FileSeq: dl.FileSeq, Date: g.now().In(loc), Count: dl.Count, TotalFen: dl.TotalFen,
		Memo: b.Memo, SubsidyCode: b.SubsidyCode, SubsidyName: b.SubsidyName, Tenant: b.Tenant, Period: b.Period, BatchID: b.BatchID}
	var plain bytes.Buffer
	plain.Grow(dl.Count * 128)
	defer func() { clear(plain.Bytes()[:plain.Cap()]) }() // personal data: wipe the plain file
	fromBody, err := g.renderFromBody(&plain, p, b, dl, fb)
	if err != nil {
		g.log.Warn("delivery: body not used, rendering from the records", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "err", err)
	}
	if !fromBody {
		if err := p.Outbound.Render(&plain, fb, g.recordsOf(ctx, dl)); err != nil {
			return fmt.Errorf("%w: render: %v", errPermanent, err)
		}
	}
	name := p.OutboundFileName(fb)
	dir := filepath.Join(g.cfg.Spool.Dir, "out", dl.Bank)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	final := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sm3.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	err = crypto.SignAndSeal(cw, &plain, g.party, []*smx509.Certificate{bank.Cert}, sealOptions(p))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, crypto.ErrTooLarge) {
			return fmt.Errorf("%w: seal: %v", errPermanent, err)
		}
		return fmt.Errorf("seal: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	err = g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed,
		FileName: name, SealedPath: final, Size: cw.n, SM3: h.Sum(nil)})
	if err != nil {
		return err
	}
	g.dropBody(b, dl)
	from := "records"
	if fromBody {
		from = "body"
	}
	g.metrics.filesSealed.WithLabelValues(dl.Bank, from).Inc()
	g.log.Info("delivery sealed", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "file", name, "records", dl.Count, "bytes", cw.n, "from_body", fromBody)
	hit(FPSealedBeforeSend)
	return nil
}

func sealOptions(p *banks.Profile) crypto.SealOptions {
	o := crypto.SealOptions{Cipher: p.Envelope.Cipher, CFCA: p.Envelope.CFCA}
	if p.SignerID != "" {
		o.SignerID = []byte(p.SignerID)
	}
	return o
}

// recordsOf yields a delivery's records with their personal fields opened.
func (g *Gateway) recordsOf(ctx context.Context, dl spool.Delivery) iter.Seq2[format.Record, error] {
	return func(yield func(format.Record, error) bool) {
		stop := errors.New("stop")
		o := fieldOpener{fc: g.fields}
		err := g.store.RecordRange(ctx, dl.BatchID, dl.FirstSeq, dl.LastSeq, func(r *spool.Record) error {
			name, id, acct, err := o.openFields(dl.BatchID, r.Seq, r.FieldsEnc, r.NameEnc, r.IDEnc, r.AccountEnc)
			if err != nil {
				return fmt.Errorf("record %d %w", r.Seq, err)
			}
			if !yield(format.Record{Seq: r.Seq, Name: string(name), IDNumber: string(id), Account: string(acct),
				AccountKind: r.AccountKind, AmountFen: r.AmountFen, Remark: r.Remark}, nil) {
				return stop
			}
			return nil
		})
		o.wipe()
		if err != nil && !errors.Is(err, stop) {
			yield(format.Record{}, err)
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func outbound(dl spool.Delivery) *banks.Outbound {
	o := &banks.Outbound{Bank: dl.Bank, BankBatchNo: dl.BankBatchNo, Name: dl.FileName, Size: dl.Size,
		Open: func() (io.ReadCloser, error) { return os.Open(dl.SealedPath) }}
	copy(o.SM3[:], dl.SM3)
	return o
}

// claim marks a delivery as being worked on by this process.
func (d *dispatcher) claim(id int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[id] {
		return false
	}
	d.inflight[id] = true
	return true
}

func (d *dispatcher) release(id int64) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.mu.Unlock()
}

// recover settles deliveries left in SENDING (a crash, or a send whose
// outcome is unknown): the bank side is asked, and only what provably did
// not arrive goes back to be sent again (money rule 5).
func (d *dispatcher) recover(ctx context.Context) {
	g := d.g
	ds, err := g.store.Deliveries(ctx, spool.DeliveryFilter{States: []spool.DeliveryState{spool.DeliverySending}, Limit: 100})
	if err != nil {
		g.log.Error("dispatch: list sending", "err", err)
		return
	}
	for _, dl := range ds {
		d.mu.Lock()
		due := d.probeAt[dl.ID]
		d.mu.Unlock()
		if g.now().Before(due) || !d.claim(dl.ID) {
			continue
		}
		d.probe(ctx, dl)
		d.release(dl.ID)
	}
}

func (d *dispatcher) probe(ctx context.Context, dl spool.Delivery) {
	g := d.g
	log := g.log.With("bank", dl.Bank, "bank_batch_no", dl.BankBatchNo)
	bank := g.banks[dl.Bank]
	if bank == nil {
		return
	}
	prober, ok := bank.Channel.(banks.Prober)
	if !ok {
		d.dead(ctx, dl, spool.DeliverySending, "outcome unknown and the channel cannot be asked whether the file arrived; ops must check with the bank")
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	res, err := prober.Probe(pctx, outbound(dl))
	cancel()
	log.Info("delivery outcome asked", "result", res.String(), "err", err)
	switch res {
	case banks.ProbeArrived:
		d.sent(ctx, dl, banks.Receipt{Ref: dl.FileName, Size: dl.Size, At: g.now()}, "arrived (probed after unknown outcome)")
	case banks.ProbeNotArrived:
		err := g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: spool.DeliverySending, To: spool.DeliverySealed,
			Error: "not arrived (probed after unknown outcome); will be sent again", Event: spool.Event{Action: "delivery.probed", Reason: "not arrived"}})
		if err != nil {
			log.Error("dispatch: after probe", "err", err)
		}
	case banks.ProbeMismatch:
		d.dead(ctx, dl, spool.DeliverySending, "the bank holds another file under this name; ops must check with the bank")
	default:
		// Cannot tell: ask again later, never send blindly.
		d.mu.Lock()
		d.probeAt[dl.ID] = g.now().Add(d.backoff(dl.Attempts))
		d.mu.Unlock()
		if dl.Attempts >= g.cfg.Dispatcher.MaxAttempts*2 {
			d.dead(ctx, dl, spool.DeliverySending, fmt.Sprintf("outcome still unknown after asking the bank repeatedly: %v", err))
		}
	}
}

// send delivers sealed deliveries that are due and inside their bank's send window.
func (d *dispatcher) send(ctx context.Context) {
	g := d.g
	now := g.now()
	ds, err := g.store.Deliveries(ctx, spool.DeliveryFilter{States: []spool.DeliveryState{spool.DeliverySealed}, DueBy: now, Limit: 100})
	if err != nil {
		g.log.Error("dispatch: list sealed", "err", err)
		return
	}
	for _, dl := range ds {
		bank := g.banks[dl.Bank]
		if bank == nil || !g.maySend(bank.Profile, now) || !d.claim(dl.ID) {
			continue
		}
		d.sending.Add(1)
		go func() {
			defer d.sending.Done()
			defer d.release(dl.ID)
			select {
			case bank.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-bank.sem }()
			d.sendOne(ctx, bank, dl)
		}()
	}
}

// maySend applies the profile's send windows and business-day rule.
func (g *Gateway) maySend(p *banks.Profile, now time.Time) bool {
	if !p.InSendWindow(now) {
		return false
	}
	if p.BusinessDaysOnly && g.calendar != nil {
		ok, covered := g.calendar.IsBusinessDay(now)
		if !covered {
			g.warnCalendar(now)
			wd := now.Weekday()
			return wd != time.Saturday && wd != time.Sunday
		}
		return ok
	}
	return true
}

func (d *dispatcher) sendOne(ctx context.Context, bank *Bank, dl spool.Delivery) {
	g := d.g
	log := g.log.With("bank", dl.Bank, "bank_batch_no", dl.BankBatchNo)
	// Durable before the first byte leaves: a crash from here on is an
	// unknown outcome, settled by asking the bank.
	if err := g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: spool.DeliverySealed, To: spool.DeliverySending}); err != nil {
		if !errors.Is(err, spool.ErrStale) {
			log.Error("dispatch: begin send", "err", err)
		}
		return
	}
	dl.Attempts++
	g.metrics.deliveryAttempt(dl.Bank)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	rec, err := bank.Channel.Send(sctx, outbound(dl))
	cancel()
	switch {
	case err == nil:
		hit(FPRenamedBeforeSpoolKnows)
		d.sent(ctx, dl, rec, "")
	case errors.Is(err, banks.ErrOutcomeUnknown) || ctx.Err() != nil:
		// Leave it SENDING: the next round asks the bank before anything else.
		g.metrics.deliveryFailed(dl.Bank, "unknown")
		log.Warn("delivery outcome unknown; the bank side will be asked", "err", err)
	case banks.IsRetryable(err) && dl.Attempts < g.cfg.Dispatcher.MaxAttempts:
		next := g.now().Add(d.backoff(dl.Attempts))
		g.metrics.deliveryFailed(dl.Bank, "retry")
		log.Warn("delivery failed, will retry", "attempt", dl.Attempts, "next", next, "err", err)
		if err := g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: spool.DeliverySending, To: spool.DeliverySealed,
			NextAttempt: next, Error: err.Error()}); err != nil {
			log.Error("dispatch: retry later", "err", err)
		}
	default:
		g.metrics.deliveryFailed(dl.Bank, "dead")
		d.dead(ctx, dl, spool.DeliverySending, fmt.Sprintf("gave up after %d attempts: %v", dl.Attempts, err))
	}
}

func (d *dispatcher) sent(ctx context.Context, dl spool.Delivery, rec banks.Receipt, note string) {
	g := d.g
	at := rec.At
	if at.IsZero() {
		at = g.now()
	}
	deadline := time.Time{}
	if p := g.banks[dl.Bank].Profile; p.FeedbackDeadline > 0 {
		deadline = g.now().Add(p.FeedbackDeadline)
	}
	err := g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: spool.DeliverySending, To: spool.DeliverySent,
		Receipt: rec.Ref, SentAt: at, DeadlineAt: deadline, Event: spool.Event{Reason: note}})
	if err != nil {
		g.log.Error("dispatch: mark sent", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "err", err)
		return
	}
	g.log.Info("delivery sent", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "file", dl.FileName, "records", dl.Count, "fen", dl.TotalFen)
	g.metrics.deliverySent(dl.Bank)
	// Sealing removed the file's body; a crash between the two left it.
	if b, err := g.store.Batch(ctx, dl.BatchID); err == nil {
		g.dropBody(b, dl)
	}
}

func (d *dispatcher) dead(ctx context.Context, dl spool.Delivery, from spool.DeliveryState, why string) {
	g := d.g
	g.log.Error("ALARM delivery dead: ops must decide", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "batch", dl.BatchID, "why", why)
	if err := g.store.ChangeDelivery(ctx, spool.DeliveryChange{ID: dl.ID, From: from, To: spool.DeliveryDead, Error: why}); err != nil {
		g.log.Error("dispatch: mark dead", "bank", dl.Bank, "bank_batch_no", dl.BankBatchNo, "err", err)
	}
}

// backoff is exponential with full jitter between half and the whole step.
func (d *dispatcher) backoff(attempt int) time.Duration {
	cfg := d.g.cfg.Dispatcher
	base := cfg.BackoffInitial
	if base <= 0 {
		base = 2 * time.Second
	}
	step := base
	for i := 1; i < attempt && step < cfg.BackoffMax; i++ {
		step *= 2
	}
	if cfg.BackoffMax > 0 && step > cfg.BackoffMax {
		step = cfg.BackoffMax
	}
	half := step / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
