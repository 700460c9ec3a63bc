package validate

import (
	"encoding/json"
	"math"
)

// SeqTracker checks, while records stream by, that seqs are exactly 1..n with no
// duplicates, using one bit per seq (125 KiB for 1,000,000 records) and keeping no
// record.
type SeqTracker struct {
	n    int
	bits []uint64
	seen int
}

// NewSeqTracker tracks seqs 1..n; n comes from the header's total_count and must
// be bounded by the caller (intake.max_records). n <= 0 tracks nothing: every seq
// is out of range.
func NewSeqTracker(n int) *SeqTracker {
	if n < 0 {
		n = 0
	}
	return &SeqTracker{n: n, bits: make([]uint64, (n+63)/64)}
}

// Add marks seq as seen. A seq outside 1..n (seq.range) or seen before
// (seq.duplicate) adds an error to out and returns false.
func (t *SeqTracker) Add(seq int, out *Issues) bool {
	if seq < 1 || seq > t.n {
		out.Add(Issue{Seq: seq, Field: "seq", Code: CodeSeqRange})
		return false
	}
	i, m := (seq-1)/64, uint64(1)<<((seq-1)%64)
	if t.bits[i]&m != 0 {
		out.Add(Issue{Seq: seq, Field: "seq", Code: CodeSeqDuplicate})
		return false
	}
	t.bits[i] |= m
	t.seen++
	return true
}

// Seen is the number of distinct in-range seqs added.
func (t *SeqTracker) Seen() int { return t.seen }

// Finish adds a seq.missing error (with that seq) for every seq of 1..n never
// added, and reports whether all were seen. Call it once the stream ended.
func (t *SeqTracker) Finish(out *Issues) bool {
	if t.seen == t.n {
		return true
	}
	for i, w := range t.bits {
		if w == math.MaxUint64 {
			continue
		}
		for b := 0; b < 64; b++ {
			seq := i*64 + b + 1
			if seq > t.n {
				break
			}
			if w&(1<<b) == 0 {
				out.Add(Issue{Seq: seq, Field: "seq", Code: CodeSeqMissing})
			}
		}
	}
	return false
}

// Totals accumulates the record count and amount sum of a streaming batch, to be
// checked against the header's control totals (money rule 2). The sum never wraps:
// an overflow is remembered and refused.
type Totals struct {
	Count    int64
	SumFen   int64
	Overflow bool
}

// Add counts one record of amountFen (whatever its validity: the header's totals
// cover every record sent).
func (t *Totals) Add(amountFen int64) {
	t.Count++
	if t.Overflow {
		return
	}
	if amountFen > 0 && t.SumFen > math.MaxInt64-amountFen ||
		amountFen < 0 && t.SumFen < math.MinInt64-amountFen {
		t.Overflow = true
		return
	}
	t.SumFen += amountFen
}

// Check compares the accumulated totals with the header's total_count and
// total_fen, adds a batch-level error for each mismatch (control.count,
// control.total_fen, control.overflow) and reports whether they agree.
func (t *Totals) Check(totalCount, totalFen int64, out *Issues) bool {
	ok := true
	if t.Count != totalCount {
		out.Add(Issue{Field: "total_count", Code: CodeControlCount})
		ok = false
	}
	if t.Overflow {
		out.Add(Issue{Field: "total_fen", Code: CodeControlOverflow})
		return false
	}
	if t.SumFen != totalFen {
		out.Add(Issue{Field: "total_fen", Code: CodeControlTotalFen})
		ok = false
	}
	return ok
}

var (
	errAmountMissing    = codeErr(CodeAmountMissing)
	errAmountType       = codeErr(CodeAmountType)
	errAmountNotInteger = codeErr(CodeAmountNotInteger)
	errAmountFormat     = codeErr(CodeAmountFormat)
	errAmountRange      = codeErr(CodeAmountRange)
)

// DecodeAmountFen decodes an amount in fen from its raw JSON token, accepting only
// a JSON integer that fits int64: no fraction ("1.0"), no exponent ("1e2"), no
// string ("100"), no leading "+" or zeros, no other type (money rule 1). Surrounding
// JSON white space is allowed. A negative or zero value decodes; the record check
// refuses it. The error is a *CodeError.
func DecodeAmountFen(raw json.RawMessage) (int64, error) {
	s := trimJSONSpace(raw)
	if len(s) == 0 {
		return 0, errAmountMissing
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	} else if s[0] == '+' {
		return 0, errAmountFormat
	}
	if len(s) == 0 {
		return 0, errAmountNotInteger
	}
	if s[0] < '0' || s[0] > '9' {
		if neg {
			return 0, errAmountNotInteger
		}
		return 0, errAmountType // string, null, true, object, array
	}
	var u uint64
	for i, c := range s {
		if c < '0' || c > '9' { // '.', 'e', 'E' or trailing garbage
			return 0, errAmountNotInteger
		}
		if i == 1 && s[0] == '0' {
			return 0, errAmountFormat
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, errAmountRange
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, errAmountRange
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, errAmountRange
	}
	return int64(u), nil
}

// trimJSONSpace is bytes.Trim(b, " \t\r\n") without building the cutset's
// table on every call.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
