package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/crypto"
	"yktgw/gateway/validate"
	"yktgw/internal/pii"
	"yktgw/spool"
)

// maxFeedbackBytes bounds one return file held in memory (a return file
// covers one delivery, itself bounded by max_records_per_file).
const maxFeedbackBytes = 512 << 20

// badReasons are the failure reasons whose accounts are remembered and
// flagged when they appear in later batches.
var badReasons = map[string]bool{
	string(banks.ReasonAccountClosed): true, string(banks.ReasonAccountDormant): true, string(banks.ReasonAccountFrozen): true,
	string(banks.ReasonAccountLost): true, string(banks.ReasonAccountNotFound): true, string(banks.ReasonAccountInactive): true,
	string(banks.ReasonAccountRestricted): true,
}

// pollFeedback fetches every ready return file of one bank and applies each
// once: it is recorded in the spool (by SM3) in the same transaction that
// applies it, and archived at the bank only after that commit.
//
// The next files are fetched, opened, verified, parsed, matched and their
// lines staged in the spool (a store that can: feedbackStager) while one is
// applied (the spool has one writer; the rest is CPU on the other core).
// Files are still applied one at a time and in order, and at most
// feedbackAhead prepared files wait; preparing records nothing. A file is
// archived at the bank after its commit, on a goroutine of its own, while
// the next one applies.
func (g *Gateway) pollFeedback(ctx context.Context, bank *Bank) {
	p := bank.Profile
	log := g.log.With("bank", p.Code)
	refs, err := bank.Channel.ListFeedback(ctx)
	if err != nil {
		log.Warn("feedback: list", "err", err)
		return
	}
	// feedbackAhead-1 wait in the channel, one more in the preparer's send.
	ready := make(chan *preparedFeedback, feedbackAhead-1)
	go func() {
		defer close(ready)
		for _, ref := range refs {
			if ctx.Err() != nil {
				return
			}
			pf := g.fetchFeedback(ctx, bank, ref)
			select {
			case ready <- pf:
			case <-ctx.Done():
				pf.release()
				return
			}
		}
	}()
	acks := make(chan banks.FeedbackRef, len(refs))
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for ref := range acks {
			hit(FPFeedbackBeforeArchive)
			if err := bank.Channel.AckFeedback(ctx, ref); err != nil {
				// Applied and recorded: the next poll sees the same bytes, finds
				// them applied and archives them then.
				log.Warn("feedback: archive at the bank failed; will retry", "file", ref.ID, "err", err)
			}
		}
	}()
	for pf := range ready {
		if ctx.Err() != nil {
			pf.release()
			continue // the preparer stops; let it finish
		}
		ack, err := g.applyFetched(ctx, pf)
		if err != nil {
			log.Error("feedback: apply", "file", pf.ref.ID, "err", err)
		}
		if ack {
			acks <- pf.ref
		}
	}
	close(acks)
	<-acked
}

// feedbackAhead is how many prepared return files may wait for the writer.
// One: the next file is prepared while the current one applies. Two let the
// preparer run a file further ahead and cut the writer's waits between files
// (0.26-1.03 s a run to 0-0.37 s on a heavily loaded machine), but measured
// end to end at 1,000,000 records on a less loaded one it made feedback
// slower in 3 of 3 alternating pairs (4.73/4.42/4.12 s with one against
// 5.34/4.79/4.29 s with two) and used more CPU (7.2/7.1/6.3 against
// 8.4/7.2/6.7 CPU-s): the preparer then competes with the writer for the
// cores when the writer needs them. Each waiting file holds its result rows
// (about 5 MB for 50,000 lines) and a slot of the scratch database.
const feedbackAhead = 1

// feedbackApplyHook, when set (tests), is called before each fetched file
// is applied.
var feedbackApplyHook func(ref banks.FeedbackRef)

// feedbackStager is what a spool may also do: stage a prepared file's lines
// ahead of ApplyFeedback (spool/sqlite: from a connection of its own, while
// the writer applies the file before). It records and decides nothing;
// ApplyFeedback checks that the file's lines are exactly the staged ones.
type feedbackStager interface {
	StageFeedback(ctx context.Context, f spool.Feedback, rows []spool.ResultRow) (release func(), err error)
}

// fetchFeedback reads one return file from the bank's channel and prepares it.
func (g *Gateway) fetchFeedback(ctx context.Context, bank *Bank, ref banks.FeedbackRef) *preparedFeedback {
	rc, err := bank.Channel.OpenFeedback(ctx, ref)
	if err != nil {
		return &preparedFeedback{ref: ref, err: err}
	}
	var buf bytes.Buffer
	if ref.Size > 0 && ref.Size <= maxFeedbackBytes {
		buf.Grow(int(ref.Size) + bytes.MinRead) // read in one piece, not by doubling
	}
	_, err = buf.ReadFrom(io.LimitReader(rc, maxFeedbackBytes+1))
	rc.Close()
	if err != nil {
		return &preparedFeedback{ref: ref, err: err}
	}
	pf := g.prepareFeedback(ctx, bank, ref.ID, buf.Bytes())
	pf.ref = ref
	if st, ok := g.store.(feedbackStager); ok && pf.err == nil && !pf.skip && pf.refuse == "" && pf.rowsErr == nil {
		// Not staged: ApplyFeedback stages the lines itself.
		if release, err := st.StageFeedback(ctx, pf.f, pf.rows); err == nil {
			pf.unstage = release
		} else {
			g.log.Debug("feedback: lines not staged ahead", "bank", bank.Profile.Code, "file", ref.ID, "err", err)
		}
	}
	return pf
}

// applyFetched applies a prepared file; ack says it may be archived at the
// bank now (applied, or the same bytes applied before).
func (g *Gateway) applyFetched(ctx context.Context, pf *preparedFeedback) (ack bool, err error) {
	defer pf.release()
	if feedbackApplyHook != nil {
		feedbackApplyHook(pf.ref)
	}
	outcome, err := g.applyPrepared(ctx, pf)
	if err != nil || outcome == FeedbackRefused {
		return false, err // refused files stay at the bank; ops decide
	}
	return true, nil
}

// FeedbackOutcome says what became of one return file or message.
type FeedbackOutcome int

const (
	FeedbackApplied   FeedbackOutcome = iota // applied now: acknowledge it to the bank
	FeedbackDuplicate                        // the same bytes were applied before: acknowledge it
	FeedbackRefused                          // anomaly, alarm raised, nothing applied: do not acknowledge
)

// ApplyFeedback opens, verifies, parses, matches and applies one sealed
// return file (or pushed message) of a bank, all or nothing, and records it
// by SM3 so that it is applied once whichever way it arrives again. A file
// channel archives it, a message channel acks it, a callback answers 200 only
// after this returns Applied or Duplicate.
func (g *Gateway) ApplyFeedback(ctx context.Context, bankCode, name string, sealed []byte) (FeedbackOutcome, error) {
	bank := g.banks[bankCode]
	if bank == nil {
		return FeedbackRefused, fmt.Errorf("gateway: feedback for unknown bank %q", bankCode)
	}
	return g.applyPrepared(ctx, g.prepareFeedback(ctx, bank, name, sealed))
}

// preparedFeedback is a return file opened, verified, parsed and matched to
// its records: everything but the spool transaction, and nothing recorded.
type preparedFeedback struct {
	ref  banks.FeedbackRef // when it came from a file channel
	bank *Bank
	f    spool.Feedback
	// rows are the file's lines, matched to records (no personal data:
	// seq, amount, code, message, serial, reason). rowsErr, if set, is a
	// line that matched no record: it refuses the file after the rows.
	rows    []spool.ResultRow
	rowsErr error
	lines   int    // the file's detail lines, as counted by the parser
	refuse  string // refused as it is (cannot open, verify or parse): why
	skip    bool   // refused before with an alarm: it waits for ops
	err     error  // nothing decided (the channel or the spool failed, or the delivery is not SENT yet)
	unstage func() // frees the lines staged in the spool (feedbackStager), if any
}

// release frees what preparing left in the spool.
func (pf *preparedFeedback) release() {
	if pf.unstage != nil {
		pf.unstage()
		pf.unstage = nil
	}
}

// prepareFeedback does the CPU work of one return file: SM3, open and verify,
// one parse (every problem is found before anything is applied), matching.
func (g *Gateway) prepareFeedback(ctx context.Context, bank *Bank, name string, sealed []byte) *preparedFeedback {
	p := bank.Profile
	sum := sm3.Sum(sealed)
	pf := &preparedFeedback{bank: bank, f: spool.Feedback{Bank: p.Code, Name: name, Size: int64(len(sealed)), SM3: sum[:], BadReasons: badReasons}}
	if prev, err := g.store.FeedbackByDigest(ctx, p.Code, pf.f.SM3); err == nil && prev.State == "ANOMALY" {
		// Refused before, alarm raised: it stays at the bank until ops act.
		pf.skip = true
		return pf
	} else if err != nil && !errors.Is(err, spool.ErrNotFound) {
		pf.err = err
		return pf
	}
	if len(sealed) > maxFeedbackBytes {
		pf.refuse = fmt.Sprintf("larger than %d bytes", maxFeedbackBytes)
		return pf
	}
	var plain bytes.Buffer
	plain.Grow(len(sealed)) // the content is a little shorter than its envelope
	defer func() { clear(plain.Bytes()) }()
	if err := crypto.OpenAndVerify(&plain, bytes.NewReader(sealed), g.party, bank.Cert, sealOptions(p)); err != nil {
		pf.refuse = "cannot open or verify: " + err.Error()
		return pf
	}
	bySeq := matchBySeq(p.Return)
	var rb resultRows
	if p.Return.Style != "xml" {
		// One row per line at most, and a file holds one delivery.
		n := bytes.Count(plain.Bytes(), []byte{'\n'}) + 1
		if p.MaxRecordsPerFile > 0 {
			n = min(n, p.MaxRecordsPerFile)
		}
		rb.rows = make([]spool.ResultRow, 0, n)
	}
	sumry, err := p.Return.Parse(bytes.NewReader(plain.Bytes()), func(r format.Result) error {
		if bySeq {
			rb.add(p, r.Seq, &r)
		}
		return nil
	})
	if err != nil {
		pf.refuse = parseSummary(err)
		return pf
	}
	pf.lines = sumry.Count
	pf.f.BankBatchNo = sumry.BankBatchNo
	if pf.f.BankBatchNo == "" {
		pf.refuse = "the return file names no bank batch number"
		return pf
	}
	if err := g.feedbackEarly(ctx, p.Code, pf.f.BankBatchNo); err != nil {
		pf.err = err // not recorded: it is looked at again later
		return pf
	}
	if !bySeq {
		// Matching by account, name and amount needs the delivery, named
		// in the header: a second pass over the (already checked) lines.
		match, err := g.matcher(ctx, bank, pf.f.BankBatchNo)
		if err != nil {
			pf.err = err
			return pf
		}
		_, pf.rowsErr = p.Return.Parse(bytes.NewReader(plain.Bytes()), func(r format.Result) error {
			seq, err := match(&r)
			if err != nil {
				return err
			}
			rb.add(p, seq, &r)
			return nil
		})
	}
	pf.rows = rb.rows
	return pf
}

// resultRows collects a file's lines as spool rows. Codes and messages
// repeat (one per outcome) and are shared; the bank serial is copied, so
// nothing keeps the parser's line (with names and accounts) alive.
type resultRows struct {
	rows []spool.ResultRow
	text map[string]string
}

func (rb *resultRows) add(p *banks.Profile, seq int, r *format.Result) {
	row := spool.ResultRow{Seq: seq, Paid: r.Paid, AmountFen: r.AmountFen, BankCode: rb.intern(r.Code), BankMessage: rb.intern(r.Message),
		BankSerial: strings.Clone(r.BankSerial)}
	if !r.Paid {
		row.Reason = string(p.Classify(r.Code, r.Message))
	}
	rb.rows = append(rb.rows, row)
}

func (rb *resultRows) intern(s string) string {
	if v, ok := rb.text[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if len(rb.text) < 256 { // free text per line would not repeat
		if rb.text == nil {
			rb.text = map[string]string{}
		}
		rb.text[v] = v
	}
	return v
}

// applyPrepared records a prepared return file in the spool: refused (alarm)
// or applied all or nothing.
func (g *Gateway) applyPrepared(ctx context.Context, pf *preparedFeedback) (FeedbackOutcome, error) {
	if pf.err != nil {
		return FeedbackRefused, pf.err
	}
	if pf.skip {
		return FeedbackRefused, nil
	}
	p := pf.bank.Profile
	log := g.log.With("bank", p.Code, "file", pf.f.Name)
	// Asked again: a file with the same bytes may have been refused while
	// this one was prepared.
	if prev, err := g.store.FeedbackByDigest(ctx, p.Code, pf.f.SM3); err == nil && prev.State == "ANOMALY" {
		return FeedbackRefused, nil
	} else if err != nil && !errors.Is(err, spool.ErrNotFound) {
		return FeedbackRefused, err
	}
	if pf.refuse != "" {
		// The reason goes to the log, the alarm and the spool: a parse error
		// may quote a field of a misaligned line, so numbers are masked.
		why := pii.ScrubDigits(pf.refuse)
		log.Error("ALARM return file refused", "why", why)
		g.metrics.feedbackRefused(p.Code)
		_, err := g.store.ApplyFeedback(ctx, pf.f, func(func(spool.ResultRow) error) error { return errors.New(why) })
		return FeedbackRefused, err
	}
	// Inside the spool transaction: the store stages the rows, checks counts,
	// sums and states, and applies all or nothing.
	half := pf.lines / 2
	res, err := g.store.ApplyFeedback(ctx, pf.f, func(add func(spool.ResultRow) error) error {
		for i, row := range pf.rows {
			if i+1 == half {
				hit(FPMidFeedbackApply)
			}
			if err := add(row); err != nil {
				return err
			}
		}
		return pf.rowsErr
	})
	if err != nil {
		return FeedbackRefused, err
	}
	switch {
	case res.Duplicate:
		log.Warn("return file already applied (duplicate bytes)")
		return FeedbackDuplicate, nil
	case len(res.Anomalies) > 0:
		log.Error("ALARM return file refused: nothing applied", "bank_batch_no", pf.f.BankBatchNo, "anomalies", len(res.Anomalies), "first", res.Anomalies[0].Kind+": "+res.Anomalies[0].Message)
		g.metrics.feedbackRefused(p.Code)
		return FeedbackRefused, nil
	}
	log.Info("return file applied", "bank_batch_no", pf.f.BankBatchNo, "batch", res.BatchID, "paid", res.Paid, "paid_fen", res.PaidFen,
		"failed", res.Failed, "failed_fen", res.FailedFen, "resolved_unknown", res.Resolved, "settled", res.Settled)
	g.metrics.feedbackApplied(p.Code, res)
	return FeedbackApplied, nil
}

func parseSummary(err error) string {
	var pe format.ParseErrors
	if errors.As(err, &pe) {
		var b strings.Builder
		fmt.Fprintf(&b, "%d problem(s): ", len(pe))
		for i, e := range pe {
			if i == 5 {
				fmt.Fprintf(&b, "; ...")
				break
			}
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(e.Error())
		}
		return b.String()
	}
	return err.Error()
}

// matchBySeq says whether the layout's lines name their record by seq.
func matchBySeq(l *format.Layout) bool {
	key := l.MatchKey()
	for _, k := range key {
		if k == "seq" {
			return true
		}
	}
	return len(key) == 0
}

// matcher returns how a return line is matched to its record: by seq, or by
// account, name and amount (with the account looked up by its blind index).
func (g *Gateway) matcher(ctx context.Context, bank *Bank, bankBatchNo string) (func(*format.Result) (int, error), error) {
	if matchBySeq(bank.Profile.Return) {
		return func(r *format.Result) (int, error) { return r.Seq, nil }, nil
	}
	ds, err := g.store.Deliveries(ctx, spool.DeliveryFilter{Bank: bank.Profile.Code})
	if err != nil {
		return nil, err
	}
	var dl *spool.Delivery
	for i := range ds {
		if ds[i].BankBatchNo == bankBatchNo {
			dl = &ds[i]
		}
	}
	if dl == nil {
		// The store reports the unknown batch number as an anomaly.
		return func(r *format.Result) (int, error) { return r.Seq, nil }, nil
	}
	type cand struct {
		seq    int
		amount int64
		sealed [4][]byte // ciphertexts: fields, name, id_number, account (one layout or the other)
	}
	byAccount := map[string][]cand{}
	err = g.store.RecordRange(ctx, dl.BatchID, dl.FirstSeq, dl.LastSeq, func(r *spool.Record) error {
		k := string(r.AccountIndex)
		c := cand{seq: r.Seq, amount: r.AmountFen}
		all := make([]byte, 0, len(r.FieldsEnc)+len(r.NameEnc)+len(r.IDEnc)+len(r.AccountEnc))
		for i, ct := range [4][]byte{r.FieldsEnc, r.NameEnc, r.IDEnc, r.AccountEnc} {
			all = append(all, ct...)
			c.sealed[i] = all[len(all)-len(ct):]
		}
		byAccount[k] = append(byAccount[k], c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	o := &fieldOpener{fc: g.fields}
	return func(r *format.Result) (int, error) {
		acct, err := validate.NormalizeAccount(r.Account, "passbook")
		if err != nil {
			acct = r.Account
		}
		idx := g.fields.BlindIndexTo(nil, domainAccount, acct)[:indexLen]
		want, _ := validate.NormalizeName(r.Name)
		amount := r.OrigFen
		if amount == 0 {
			amount = r.AmountFen
		}
		for _, c := range byAccount[string(idx)] {
			if used[c.seq] || (amount != 0 && c.amount != amount) {
				continue
			}
			name, _, _, err := o.openFields(dl.BatchID, c.seq, c.sealed[0], c.sealed[1], c.sealed[2], c.sealed[3])
			if err != nil {
				return 0, err
			}
			match := r.Name == "" || string(name) == want
			o.wipe()
			if match {
				used[c.seq] = true
				return c.seq, nil
			}
		}
		return 0, fmt.Errorf("line %d: no record of %s matches its account, name and amount", r.Line, bankBatchNo)
	}, nil
}
