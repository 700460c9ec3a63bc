package validate

import (
	"time"
	"unicode"
	"unicode/utf8"
)

// Luhn policies of Rules.Luhn, from the bank profile.
const (
	LuhnWarn  = "warn" // default: a failing card number is a warning
	LuhnError = "error"
	LuhnOff   = "off"
)

// MaxRemarkRunes bounds a remark in characters; the bank layout's byte limit is
// checked later against the layout.
const MaxRemarkRunes = 100

// Rules are the per-batch parameters of record validation. A Rules is read-only
// once built and may be shared by concurrent intakes.
type Rules struct {
	CapFen map[string]int64 // per-record cap in fen, by subsidy code (config subsidies)
	Luhn   string           // LuhnWarn (also ""), LuhnError or LuhnOff, from the bank profile
	Now    func() time.Time // clock for "birth date not in the future"; nil means time.Now
}

// Record is one disbursement record as submitted. Record() normalizes Name,
// IDNumber, Account and Remark in place.
type Record struct {
	Seq         int
	Name        string
	IDNumber    string
	Account     string
	AccountKind string
	AmountFen   int64
	Remark      string
}

var (
	errRemarkInvalid = codeErr(CodeRemarkInvalidChar)
	errRemarkTooLong = codeErr(CodeRemarkTooLong)
)

func (r *Rules) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func add(out *Issues, seq int, field string, err error, sev Severity) {
	ce := err.(*CodeError)
	out.Add(Issue{Seq: seq, Field: field, Code: ce.Code, Message: ce.Message, Severity: sev})
}

// Subsidy checks that the batch's subsidy code has a configured cap; if not it
// adds a batch-level (seq 0) error and returns false.
func (r *Rules) Subsidy(code string, out *Issues) bool {
	if _, ok := r.CapFen[code]; ok {
		return true
	}
	out.Add(Issue{Field: "subsidy", Code: CodeSubsidyUnknown, Severity: Error})
	return false
}

// Day is a date in China as the number YYYYMMDD: what birth dates in ID
// numbers must not come after.
type Day int

// Today is the Rules' clock's date in China.
func (r *Rules) Today() Day { return Day(todayYMD(r.now())) }

// Record checks one record of a batch for subsidy: name, ID number, account (with
// the Luhn policy), amount (> 0 and <= the subsidy's cap) and remark. Valid fields
// are normalized in place; every problem is added to out. Seq range and uniqueness
// are the SeqTracker's, totals the Totals'.
func (r *Rules) Record(subsidy string, in *Record, out *Issues) {
	r.RecordOn(subsidy, r.Today(), in, out)
}

// RecordOn is Record with today's date given (Today): a caller checking a
// stream of records reads the clock once for many of them instead of once
// a record.
func (r *Rules) RecordOn(subsidy string, today Day, in *Record, out *Issues) {
	if v, err := NormalizeName(in.Name); err != nil {
		add(out, in.Seq, "name", err, Error)
	} else {
		in.Name = v
	}
	if v, err := normalizeID(in.IDNumber, int(today)); err != nil {
		add(out, in.Seq, "id_number", err, Error)
	} else {
		in.IDNumber = v
	}
	if k, ok := AccountKinds[in.AccountKind]; !ok {
		add(out, in.Seq, "account_kind", errAccountKind, Error)
	} else if v, err := normalizeAccount(in.Account, k); err != nil {
		add(out, in.Seq, "account", err, Error)
	} else {
		in.Account = v
		if k.Luhn && r.Luhn != LuhnOff && !Luhn(v) {
			sev := Warning
			if r.Luhn == LuhnError {
				sev = Error
			}
			out.Add(Issue{Seq: in.Seq, Field: "account", Code: CodeAccountLuhn, Severity: sev})
		}
	}
	switch cap, ok := r.CapFen[subsidy]; {
	case in.AmountFen <= 0:
		out.Add(Issue{Seq: in.Seq, Field: "amount_fen", Code: CodeAmountNonPositive})
	case !ok:
		out.Add(Issue{Seq: in.Seq, Field: "amount_fen", Code: CodeAmountNoCap})
	case in.AmountFen > cap:
		out.Add(Issue{Seq: in.Seq, Field: "amount_fen", Code: CodeAmountOverCap})
	}
	if v, err := normalizeRemark(in.Remark); err != nil {
		add(out, in.Seq, "remark", err, Error)
	} else {
		in.Remark = v
	}
}

// normalizeRemark trims a remark and refuses control characters, invalid UTF-8
// and more than MaxRemarkRunes characters. An empty remark is fine.
func normalizeRemark(s string) (string, error) {
	s = trimSpace(s)
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7F {
				return "", errRemarkInvalid
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return "", errRemarkInvalid
			}
			i += size
		}
		n++
	}
	if n > MaxRemarkRunes {
		return "", errRemarkTooLong
	}
	return s, nil
}
