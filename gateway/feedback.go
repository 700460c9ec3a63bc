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
func (g *Gateway) pollFeedback(ctx context.Context, bank *Bank) {
	p := bank.Profile
	log := g.log.With("bank", p.Code)
	refs, err := bank.Channel.ListFeedback(ctx)
	if err != nil {
		log.Warn("feedback: list", "err", err)
		return
	}
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		if err := g.applyOne(ctx, bank, ref); err != nil {
			log.Error("feedback: apply", "file", ref.ID, "err", err)
		}
	}
}

func (g *Gateway) applyOne(ctx context.Context, bank *Bank, ref banks.FeedbackRef) error {
	rc, err := bank.Channel.OpenFeedback(ctx, ref)
	if err != nil {
		return err
	}
	sealed, err := io.ReadAll(io.LimitReader(rc, maxFeedbackBytes+1))
	rc.Close()
	if err != nil {
		return err
	}
	outcome, err := g.ApplyFeedback(ctx, bank.Profile.Code, ref.ID, sealed)
	if err != nil || outcome == FeedbackRefused {
		return err // refused files stay at the bank; ops decide
	}
	hit(FPFeedbackBeforeArchive)
	if err := bank.Channel.AckFeedback(ctx, ref); err != nil {
		// Applied and recorded: the next poll sees the same bytes, finds them
		// applied and archives them then.
		g.log.Warn("feedback: archive at the bank failed; will retry", "bank", bank.Profile.Code, "file", ref.ID, "err", err)
	}
	return nil
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
	p := bank.Profile
	log := g.log.With("bank", p.Code, "file", name)
	sum := sm3.Sum(sealed)
	f := spool.Feedback{Bank: p.Code, Name: name, Size: int64(len(sealed)), SM3: sum[:], BadReasons: badReasons}
	if prev, err := g.store.FeedbackByDigest(ctx, p.Code, f.SM3); err == nil && prev.State == "ANOMALY" {
		// Refused before, alarm raised: it stays at the bank until ops act.
		return FeedbackRefused, nil
	} else if err != nil && !errors.Is(err, spool.ErrNotFound) {
		return FeedbackRefused, err
	}
	refuse := func(why string) (FeedbackOutcome, error) {
		// The reason goes to the log, the alarm and the spool: a parse error
		// may quote a field of a misaligned line, so numbers are masked.
		why = pii.ScrubDigits(why)
		log.Error("ALARM return file refused", "why", why)
		g.metrics.feedbackRefused(p.Code)
		_, err := g.store.ApplyFeedback(ctx, f, func(func(spool.ResultRow) error) error { return errors.New(why) })
		return FeedbackRefused, err
	}
	if len(sealed) > maxFeedbackBytes {
		return refuse(fmt.Sprintf("larger than %d bytes", maxFeedbackBytes))
	}
	var plain bytes.Buffer
	if err := crypto.OpenAndVerify(&plain, bytes.NewReader(sealed), g.party, bank.Cert, sealOptions(p)); err != nil {
		return refuse("cannot open or verify: " + err.Error())
	}
	// Pass 1: parse the whole file; every problem is reported before
	// anything is applied.
	sumry, err := p.Return.Parse(bytes.NewReader(plain.Bytes()), func(format.Result) error { return nil })
	if err != nil {
		return refuse(parseSummary(err))
	}
	f.BankBatchNo = sumry.BankBatchNo
	if f.BankBatchNo == "" {
		return refuse("the return file names no bank batch number")
	}
	if err := g.feedbackEarly(ctx, p.Code, f.BankBatchNo); err != nil {
		return FeedbackRefused, err // not recorded: it is looked at again later
	}
	match, err := g.matcher(ctx, bank, f.BankBatchNo)
	if err != nil {
		return FeedbackRefused, err
	}
	// Pass 2, inside the spool transaction: match, classify and stage each
	// result; the store checks counts, sums and states and applies all or nothing.
	half := sumry.Count / 2
	res, err := g.store.ApplyFeedback(ctx, f, func(add func(spool.ResultRow) error) error {
		n := 0
		_, err := p.Return.Parse(bytes.NewReader(plain.Bytes()), func(r format.Result) error {
			seq, err := match(&r)
			if err != nil {
				return err
			}
			row := spool.ResultRow{Seq: seq, Paid: r.Paid, AmountFen: r.AmountFen, BankCode: r.Code, BankMessage: r.Message, BankSerial: r.BankSerial}
			if !r.Paid {
				row.Reason = string(p.Classify(r.Code, r.Message))
			}
			if n++; n == half {
				hit(FPMidFeedbackApply)
			}
			return add(row)
		})
		return err
	})
	clear(plain.Bytes())
	if err != nil {
		return FeedbackRefused, err
	}
	switch {
	case res.Duplicate:
		log.Warn("return file already applied (duplicate bytes)")
		return FeedbackDuplicate, nil
	case len(res.Anomalies) > 0:
		log.Error("ALARM return file refused: nothing applied", "bank_batch_no", f.BankBatchNo, "anomalies", len(res.Anomalies), "first", res.Anomalies[0].Kind+": "+res.Anomalies[0].Message)
		g.metrics.feedbackRefused(p.Code)
		return FeedbackRefused, nil
	}
	log.Info("return file applied", "bank_batch_no", f.BankBatchNo, "batch", res.BatchID, "paid", res.Paid, "paid_fen", res.PaidFen,
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

// matcher returns how a return line is matched to its record: by seq, or by
// account, name and amount (with the account looked up by its blind index).
func (g *Gateway) matcher(ctx context.Context, bank *Bank, bankBatchNo string) (func(*format.Result) (int, error), error) {
	key := bank.Profile.Return.MatchKey()
	bySeq := len(key) == 0
	for _, k := range key {
		if k == "seq" {
			bySeq = true
		}
	}
	if bySeq {
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
		name   []byte // ciphertext
	}
	byAccount := map[string][]cand{}
	err = g.store.RecordRange(ctx, dl.BatchID, dl.FirstSeq, dl.LastSeq, func(r *spool.Record) error {
		k := string(r.AccountIndex)
		byAccount[k] = append(byAccount[k], cand{r.Seq, r.AmountFen, append([]byte(nil), r.NameEnc...)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	var aad, buf []byte
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
			aad = FieldAAD(aad[:0], dl.BatchID, c.seq, "name")
			buf, err = g.fields.DecryptTo(buf[:0], c.name, aad)
			if err != nil {
				return 0, err
			}
			if r.Name == "" || string(buf) == want {
				used[c.seq] = true
				return c.seq, nil
			}
		}
		return 0, fmt.Errorf("line %d: no record of %s matches its account, name and amount", r.Line, bankBatchNo)
	}, nil
}
