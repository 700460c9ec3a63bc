package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks/format"
	"yktgw/crypto"
	"yktgw/internal/gen"
)

var errStop = errors.New("stop")

// failCode is what the bench bank answers for 1 record in 100.
const failCode, failMessage, paidMessage = "E103", "卡或帐号不存在", "交易成功"

// prepareReturns plays the bank: it opens and verifies every file the
// gateway uploaded, parses it with the DEMO outbound layout, and writes
// one sealed return file per delivery (DEMO return layout, signed by the
// bank, sealed to the gateway) into stage, named after the profile's
// feedback_pattern, with a modification time in the past. It returns the
// staged paths and what the returns add up to (counted from the uploaded
// files themselves, so it also checks that the uploads carry the batch).
func prepareReturns(e *env, upload, stage string, hdr gen.Header) ([]string, format.Summary, error) {
	var total format.Summary
	ents, err := os.ReadDir(upload)
	if err != nil {
		return nil, total, err
	}
	p := e.profile
	opt := crypto.SealOptions{Cipher: p.Envelope.Cipher, CFCA: p.Envelope.CFCA}
	if p.SignerID != "" {
		opt.SignerID = []byte(p.SignerID)
	}
	var staged []string
	seen := map[string]bool{}
	past := time.Now().Add(-time.Minute)
	var plain, out, sealed bytes.Buffer
	var recs []format.Record
	for _, ent := range ents {
		if !ent.Type().IsRegular() || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(upload, ent.Name()))
		if err != nil {
			return nil, total, err
		}
		plain.Reset()
		if err := crypto.OpenAndVerify(&plain, bytes.NewReader(raw), e.ks.Bank, e.ks.Gateway.Cert, opt); err != nil {
			return nil, total, fmt.Errorf("bench: uploaded %s: %w", ent.Name(), err)
		}
		recs = recs[:0]
		sum, err := p.Outbound.ParseRecords(bytes.NewReader(plain.Bytes()), func(r format.Record) error {
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return nil, total, fmt.Errorf("bench: uploaded %s does not parse: %w", ent.Name(), err)
		}
		bbn := sum.BankBatchNo
		if bbn == "" || seen[bbn] {
			return nil, total, fmt.Errorf("bench: uploaded %s: bank batch number %q missing or seen twice", ent.Name(), bbn)
		}
		seen[bbn] = true
		rs := format.Summary{BankBatchNo: bbn}
		results := make([]format.Result, len(recs))
		for i, r := range recs {
			res := format.Result{Seq: r.Seq, Name: r.Name, Account: r.Account, AmountFen: r.AmountFen, OrigFen: r.AmountFen,
				IDNumber: r.IDNumber, Remark: r.Remark, BankSerial: fmt.Sprintf("%s%08d", bbn, r.Seq)}
			rs.Count++
			rs.TotalFen += r.AmountFen
			if r.Seq%100 == 37 {
				res.Code, res.Message = failCode, failMessage
				rs.FailedCount++
				rs.FailedFen += r.AmountFen
			} else {
				res.Code, res.Message, res.Paid = p.PaidCodes[0], paidMessage, true
				rs.PaidCount++
				rs.PaidFen += r.AmountFen
			}
			results[i] = res
		}
		out.Reset()
		b := format.Batch{BankBatchNo: bbn, Date: time.Now(), Count: rs.Count, TotalFen: rs.TotalFen}
		err = p.Return.RenderResults(&out, b, rs, func(yield func(format.Result, error) bool) {
			for _, r := range results {
				if !yield(r, nil) {
					return
				}
			}
		})
		if err != nil {
			return nil, total, fmt.Errorf("bench: render return for %s: %w", bbn, err)
		}
		sealed.Reset()
		if err := crypto.SignAndSeal(&sealed, &out, e.ks.Bank, []*smx509.Certificate{e.ks.Gateway.Cert}, opt); err != nil {
			return nil, total, fmt.Errorf("bench: seal return for %s: %w", bbn, err)
		}
		name := strings.Replace(p.FeedbackPattern, "*", bbn, 1)
		if ok, _ := path.Match(p.FeedbackPattern, name); !ok || strings.ContainsAny(name, "*?[") {
			return nil, total, fmt.Errorf("bench: feedback_pattern %q: cannot make a return file name", p.FeedbackPattern)
		}
		dst := filepath.Join(stage, name)
		if err := os.WriteFile(dst, sealed.Bytes(), 0o644); err != nil {
			return nil, total, err
		}
		if err := os.Chtimes(dst, past, past); err != nil {
			return nil, total, err
		}
		staged = append(staged, dst)
		total.Count += rs.Count
		total.TotalFen += rs.TotalFen
		total.PaidCount += rs.PaidCount
		total.PaidFen += rs.PaidFen
		total.FailedCount += rs.FailedCount
		total.FailedFen += rs.FailedFen
	}
	sort.Strings(staged)
	if len(staged) == 0 {
		return nil, total, errors.New("bench: nothing was uploaded")
	}
	return staged, total, nil
}
