// Package gen makes deterministic, valid synthetic disbursement batches for
// tests, the demo and benchmarks: real-looking names (some minority names with
// a middle dot), GB 11643 ID numbers with correct check characters, and
// Luhn-valid card numbers. It never produces real people's data.
package gen

import (
	"bufio"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strconv"

	"yktgw/gateway/validate"
)

// Header is the batch header of the intake API.
type Header struct {
	BatchID    string  `json:"batch_id"`
	Tenant     string  `json:"tenant"`
	Bank       string  `json:"bank"`
	Subsidy    Subsidy `json:"subsidy"`
	Period     string  `json:"period"`
	Memo       string  `json:"memo"`
	TotalCount int     `json:"total_count"`
	TotalFen   int64   `json:"total_fen"`
}

// Subsidy is the subsidy object of the intake API.
type Subsidy struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Record is one record of the intake API.
type Record struct {
	Seq         int    `json:"seq"`
	Name        string `json:"name"`
	IDNumber    string `json:"id_number"`
	Account     string `json:"account"`
	AccountKind string `json:"account_kind"`
	AmountFen   int64  `json:"amount_fen"`
	Remark      string `json:"remark,omitempty"`
}

// Batch is a whole batch for the JSON form.
type Batch struct {
	Header
	Records []Record `json:"records"`
}

// Spec describes a batch to generate.
type Spec struct {
	BatchID string
	Tenant  string // default 210102
	Bank    string // default DEMO
	Subsidy string // default GDZL
	Period  string // default 2026-11
	N       int
	Seed    uint64
	// PersonOffset shifts the generated people, so two batches can pay
	// different people (offset by N) or the same ones (same offset).
	PersonOffset int
}

func (s *Spec) defaults() {
	if s.Tenant == "" {
		s.Tenant = "210102"
	}
	if s.Bank == "" {
		s.Bank = "DEMO"
	}
	if s.Subsidy == "" {
		s.Subsidy = "GDZL"
	}
	if s.Period == "" {
		s.Period = "2026-11"
	}
}

var surnames = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "高", "罗"}
var given = []string{"伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建国", "春梅"}
var minority = []string{"阿依古丽·买买提", "古丽娜尔·艾力", "买买提·吐尔逊", "热依拉·阿不都", "扎西·次仁"}

// Person returns the i-th synthetic person: name, ID number, card number.
// The same i always gives the same person, whatever the seed.
func Person(i int) (name, id, account string) {
	r := rand.New(rand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	if i%50 == 7 {
		name = minority[r.IntN(len(minority))]
	} else {
		name = surnames[r.IntN(len(surnames))] + given[r.IntN(len(given))]
	}
	// Area 210102 (沈阳和平区); the birth date and sequence come from i, so
	// 1,000,000 people stay distinct: i%1000 is the sequence, i/1000 picks
	// one of 70×12×28 dates from 1930.
	k := i / 1000
	date := (1930+k%70)*10000 + (1+(k/70)%12)*100 + 1 + (k/840)%28
	sq := i % 1000
	b := make([]byte, 0, 18)
	b = append(b, "210102"...)
	b = strconv.AppendInt(b, int64(date), 10)
	b = append(b, byte('0'+sq/100), byte('0'+sq/10%10), byte('0'+sq%10))
	b = append(b, validate.IDCheckChar(string(b)))
	id = string(b)
	// A 19-digit card: 622202 + 12 digits from i + Luhn digit.
	acct := make([]byte, 0, 19)
	acct = append(acct, "622202"...)
	n := strconv.Itoa(100000000000 + i)
	acct = append(acct, n[len(n)-12:]...)
	acct = append(acct, luhnDigit(acct))
	account = string(acct)
	return
}

func luhnDigit(digits []byte) byte {
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// Records yields the spec's records one by one (nothing is accumulated).
func Records(s Spec, fn func(Record) error) error {
	s.defaults()
	r := rand.New(rand.NewPCG(s.Seed, 42))
	for i := 1; i <= s.N; i++ {
		name, id, acct := Person(s.PersonOffset + i)
		if err := fn(Record{Seq: i, Name: name, IDNumber: id, Account: acct, AccountKind: "card", AmountFen: 1000 + r.Int64N(500000)}); err != nil {
			return err
		}
	}
	return nil
}

// Make builds the header (with control totals) for a spec by generating it once.
func Make(s Spec) Header {
	s.defaults()
	var total int64
	Records(s, func(r Record) error { total += r.AmountFen; return nil })
	return Header{BatchID: s.BatchID, Tenant: s.Tenant, Bank: s.Bank, Subsidy: Subsidy{Code: s.Subsidy, Name: "耕地地力保护补贴"},
		Period: s.Period, Memo: "耕地补贴", TotalCount: s.N, TotalFen: total}
}

// Full returns the whole batch in memory (small batches only).
func Full(s Spec) Batch {
	b := Batch{Header: Make(s)}
	Records(s, func(r Record) error { b.Records = append(b.Records, r); return nil })
	return b
}

// WriteNDJSON streams the batch as NDJSON: header line, then a record a line.
func WriteNDJSON(w io.Writer, s Spec) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Make(s)); err != nil {
		return err
	}
	if err := Records(s, func(r Record) error { return enc.Encode(r) }); err != nil {
		return err
	}
	return bw.Flush()
}
