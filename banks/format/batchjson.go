package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
)

// BatchJSON is the header of the batch file `yktgw file render --batch` reads:
//
//	{"batch": {"bank_batch_no": "...", "file_seq": 1, "date": "2026-11-28",
//	           "count": 2, "total_fen": 300, "memo": "...", ...},
//	 "records": [{"seq": 1, "name": "...", "id_number": "...", "account": "...",
//	              "account_kind": "card", "amount_fen": 100, "remark": "..."}, ...]}
//
// "batch" must come before "records"; records are decoded one at a time.
// date is YYYY-MM-DD (taken as Beijing time) or RFC 3339. Amounts are integers
// in fen; a number with a fraction is refused.
type BatchJSON struct {
	BankBatchNo string `json:"bank_batch_no"`
	FileSeq     int    `json:"file_seq"`
	Date        string `json:"date"`
	Count       int    `json:"count"`
	TotalFen    int64  `json:"total_fen"`
	Memo        string `json:"memo"`
	SubsidyCode string `json:"subsidy_code"`
	SubsidyName string `json:"subsidy_name"`
	Tenant      string `json:"tenant"`
	Period      string `json:"period"`
	BatchID     string `json:"batch_id"`
}

var beijing = time.FixedZone("CST", 8*3600)

// Batch converts the JSON header.
func (j BatchJSON) Batch() (Batch, error) {
	b := Batch{BankBatchNo: j.BankBatchNo, FileSeq: j.FileSeq, Count: j.Count, TotalFen: j.TotalFen, Memo: j.Memo,
		SubsidyCode: j.SubsidyCode, SubsidyName: j.SubsidyName, Tenant: j.Tenant, Period: j.Period, BatchID: j.BatchID}
	if j.Date != "" {
		d, err := time.ParseInLocation("2006-01-02", j.Date, beijing)
		if err != nil {
			d, err = time.Parse(time.RFC3339, j.Date)
		}
		if err != nil {
			return b, fmt.Errorf("format: batch date %q: want YYYY-MM-DD or RFC 3339", j.Date)
		}
		b.Date = d
	}
	return b, nil
}

// ReadBatchJSON reads the batch header and returns an iterator over the
// records, decoded one by one from r as the iterator is ranged over (it can be
// ranged over once).
func ReadBatchJSON(r io.Reader) (Batch, iter.Seq2[Record, error], error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return Batch{}, nil, err
	}
	var b Batch
	seenBatch := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return b, nil, fmt.Errorf("format: batch json: %w", err)
		}
		switch t {
		case "batch":
			var j BatchJSON
			if err := dec.Decode(&j); err != nil {
				return b, nil, fmt.Errorf("format: batch json: batch: %w", err)
			}
			if b, err = j.Batch(); err != nil {
				return b, nil, err
			}
			seenBatch = true
		case "records":
			if !seenBatch {
				return b, nil, errors.New(`format: batch json: "batch" must come before "records"`)
			}
			if err := expectDelim(dec, '['); err != nil {
				return b, nil, err
			}
			return b, func(yield func(Record, error) bool) {
				for i := 1; dec.More(); i++ {
					var rec Record
					if err := dec.Decode(&rec); err != nil {
						yield(rec, fmt.Errorf("format: batch json: record %d: %w", i, err))
						return
					}
					if !yield(rec, nil) {
						return
					}
				}
			}, nil
		default:
			return b, nil, fmt.Errorf("format: batch json: unknown key %v", t)
		}
	}
	return b, nil, errors.New(`format: batch json: no "records"`)
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("format: batch json: %w", err)
	}
	if t != d {
		return fmt.Errorf("format: batch json: want %q, got %v", d, t)
	}
	return nil
}
