package format

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// source is everything a field may take its value from.
type source struct {
	b   *Batch
	r   *Record
	res *Result
	s   *Summary
}

// renderer holds the per-call buffers; a Layout is shared, a renderer is not.
type renderer struct {
	l    *Layout
	w    *bufio.Writer
	line []byte // the line being built, in the file's encoding
	tmp  []byte // UTF-8 scratch (numbers, dates, normalized names)
	enc  []byte // encoded scratch
	xw   xmlWriter

	started bool // a line was written (text styles)
}

func newRenderer(l *Layout, w io.Writer) *renderer {
	rr := &renderer{l: l, w: bufio.NewWriterSize(w, 64<<10)}
	rr.line = make([]byte, 0, 512)
	rr.tmp = make([]byte, 0, 128)
	rr.enc = make([]byte, 0, 256)
	rr.xw.r = rr
	return rr
}

// Render writes one outbound file for batch b with the records recs yields,
// streaming: nothing but the current line is held. b.Count and b.TotalFen are
// written into headers before the records are seen; if the records disagree
// with them, Render returns a CodeRecordMismatch error after writing, and the
// output must be discarded. The first record that cannot be represented (too
// long, unencodable, separator in an unquoted value) stops Render with a
// FieldError; intake should have refused it with CheckRecord already.
func (l *Layout) Render(w io.Writer, b Batch, recs iter.Seq2[Record, error]) error {
	if l.Kind != "outbound" {
		return fmt.Errorf("format: Render needs an outbound layout, this one is %s", l.Kind)
	}
	rr := newRenderer(l, w)
	s := Summary{Count: b.Count, TotalFen: b.TotalFen, BankBatchNo: b.BankBatchNo}
	src := source{b: &b, s: &s}
	if err := rr.begin(&src); err != nil {
		return err
	}
	n, sum := 0, int64(0)
	var cur Record // one variable for all records: &r of the range variable would escape per record
	for r, err := range recs {
		if err != nil {
			return fmt.Errorf("format: records: %w", err)
		}
		cur = r
		src.r = &cur
		if err := rr.detail(&src, r.Seq); err != nil {
			return err
		}
		n++
		sum += r.AmountFen
	}
	src.r = nil
	if err := rr.end(&src); err != nil {
		return err
	}
	if n != b.Count || sum != b.TotalFen {
		return FieldError{Code: CodeRecordMismatch, Message: fmt.Sprintf("batch says %d records / %d fen, records are %d / %d fen", b.Count, b.TotalFen, n, sum)}
	}
	return nil
}

// RenderResults writes a return file (what a bank sends back) with a return
// layout: the bank simulator and round-trip tests use it. s gives the totals
// header/trailer fields show; the results must add up to them.
func (l *Layout) RenderResults(w io.Writer, b Batch, s Summary, res iter.Seq2[Result, error]) error {
	if l.Kind != "return" {
		return fmt.Errorf("format: RenderResults needs a return layout, this one is %s", l.Kind)
	}
	rr := newRenderer(l, w)
	if s.BankBatchNo == "" {
		s.BankBatchNo = b.BankBatchNo
	}
	src := source{b: &b, s: &s}
	if err := rr.begin(&src); err != nil {
		return err
	}
	var got Summary
	var cur Result
	for r, err := range res {
		if err != nil {
			return fmt.Errorf("format: results: %w", err)
		}
		cur = r
		src.res = &cur
		if err := rr.detail(&src, r.Seq); err != nil {
			return err
		}
		got.Count++
		got.TotalFen += r.AmountFen
		if l.IsPaid(r.Code) {
			got.PaidCount++
			got.PaidFen += r.AmountFen
		} else {
			got.FailedCount++
			got.FailedFen += r.AmountFen
		}
	}
	src.res = nil
	if err := rr.end(&src); err != nil {
		return err
	}
	if got.Count != s.Count || got.TotalFen != s.TotalFen {
		return FieldError{Code: CodeRecordMismatch, Message: fmt.Sprintf("summary says %d / %d fen, results are %d / %d fen", s.Count, s.TotalFen, got.Count, got.TotalFen)}
	}
	return nil
}

// CheckRecord reports every reason r cannot be rendered with this layout
// (byte limits in the layout's encoding, characters the encoding lacks,
// separators or line breaks inside values, memo too long, ...). Intake calls it
// before anything is stored. memo is the batch's passbook text; it is checked
// only if the layout carries it.
func (l *Layout) CheckRecord(r Record, memo string) []FieldError {
	rr := renderer{l: l, line: make([]byte, 0, 256), tmp: make([]byte, 0, 64), enc: make([]byte, 0, 128)}
	b := Batch{Memo: memo}
	src := source{b: &b, r: &r, s: &Summary{}}
	var out []FieldError
	for i := range l.Detail {
		f := &l.Detail[i]
		if f.id == idMemo && memo == "" {
			continue
		}
		rr.line = rr.line[:0]
		if err := rr.field(f, &src, r.Seq, 0); err != nil {
			out = append(out, err.(FieldError))
		}
	}
	if memo != "" {
		for _, part := range [][]Field{l.Header, l.Trailer} {
			for i := range part {
				if f := &part[i]; f.id == idMemo {
					rr.line = rr.line[:0]
					if err := rr.field(f, &src, r.Seq, 0); err != nil {
						out = append(out, err.(FieldError))
					}
				}
			}
		}
	}
	if r.Seq <= 0 {
		out = append(out, FieldError{Seq: r.Seq, Field: "seq", Code: CodeInvalid, Message: "must be 1 or more"})
	}
	// Blank keys would render but could never be read back or matched.
	if strings.TrimSpace(r.Name) == "" {
		out = append(out, FieldError{Seq: r.Seq, Field: "name", Code: CodeMissing, Message: "blank"})
	}
	if strings.TrimSpace(r.Account) == "" {
		out = append(out, FieldError{Seq: r.Seq, Field: "account", Code: CodeMissing, Message: "blank"})
	}
	if r.AmountFen <= 0 {
		out = append(out, FieldError{Seq: r.Seq, Field: "amount", Code: CodeInvalid, Message: "must be more than 0 fen"})
	}
	return out
}

func (rr *renderer) begin(src *source) error {
	l := rr.l
	if l.Style == "xml" {
		rr.xw.prolog()
		for i := range l.Header {
			if err := rr.xw.leaf(&l.Header[i], l.Header[i].pathSeg, src, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if len(l.Header) > 0 {
		return rr.textLine(l.Header, src, 0)
	}
	return nil
}

func (rr *renderer) detail(src *source, seq int) error {
	l := rr.l
	if l.Style == "xml" {
		return rr.xw.record(src, seq)
	}
	return rr.textLine(l.Detail, src, seq)
}

func (rr *renderer) end(src *source) error {
	l := rr.l
	if l.Style == "xml" {
		for i := range l.Trailer {
			if err := rr.xw.leaf(&l.Trailer[i], l.Trailer[i].pathSeg, src, 0); err != nil {
				return err
			}
		}
		if err := rr.xw.close(); err != nil {
			return err
		}
	} else if len(l.Trailer) > 0 {
		if err := rr.textLine(l.Trailer, src, 0); err != nil {
			return err
		}
	}
	if rr.started && (l.FinalNewline == nil || *l.FinalNewline) {
		if _, err := rr.w.Write(l.eol); err != nil {
			return fmt.Errorf("format: write: %w", err)
		}
	}
	if err := rr.w.Flush(); err != nil {
		return fmt.Errorf("format: write: %w", err)
	}
	return nil
}

func (rr *renderer) textLine(fields []Field, src *source, seq int) error {
	l := rr.l
	rr.line = rr.line[:0]
	if rr.started {
		// Line endings go before each next line, so the last one is optional.
		rr.line = append(rr.line, l.eol...)
	}
	rr.started = true
	delimited := l.Style == "delimited"
	for i := range fields {
		if i > 0 && delimited {
			rr.line = append(rr.line, l.Delimiter...)
		}
		if err := rr.field(&fields[i], src, seq, 0); err != nil {
			return err
		}
	}
	if l.TrailingDelimiter {
		rr.line = append(rr.line, l.Delimiter...)
	}
	if _, err := rr.w.Write(rr.line); err != nil {
		return fmt.Errorf("format: write: %w", err)
	}
	return nil
}

// value returns the field's text: either s (a string to be encoded) or, for
// numbers and dates, ASCII bytes in rr.tmp (num true).
func (rr *renderer) value(f *Field, src *source) (s string, num bool, err error) {
	b, r, res, sum := src.b, src.r, src.res, src.s
	rr.tmp = rr.tmp[:0]
	switch f.id {
	case idConst:
		return f.Value, false, nil
	case idFiller:
		return "", false, nil
	case idSeq:
		if r != nil {
			rr.tmp = strconv.AppendInt(rr.tmp, int64(r.Seq), 10)
		} else if res != nil {
			rr.tmp = strconv.AppendInt(rr.tmp, int64(res.Seq), 10)
		}
		return "", true, nil
	case idName:
		name := ""
		if r != nil {
			name = r.Name
		} else if res != nil {
			name = res.Name
		}
		if f.Dots != "" {
			return rr.normalizeDots(name, f.Dots), false, nil
		}
		return name, false, nil
	case idIDNumber:
		if r != nil {
			return r.IDNumber, false, nil
		} else if res != nil {
			return res.IDNumber, false, nil
		}
		return "", false, nil
	case idAccount:
		if r != nil {
			return r.Account, false, nil
		} else if res != nil {
			return res.Account, false, nil
		}
		return "", false, nil
	case idAccountKind:
		if r != nil {
			return r.AccountKind, false, nil
		}
		return "", false, nil
	case idRemark:
		if r != nil {
			return r.Remark, false, nil
		} else if res != nil {
			return res.Remark, false, nil
		}
		return "", false, nil
	case idAmount, idOrigAmount:
		var v int64
		switch {
		case r != nil:
			v = r.AmountFen
		case res != nil && f.id == idAmount:
			v = res.AmountFen
		case res != nil:
			v = res.OrigFen
		}
		rr.tmp = appendMoney(rr.tmp, v, f.yuan)
		return "", true, nil
	case idCode:
		if res != nil {
			return res.Code, false, nil
		}
		return "", false, nil
	case idMessage:
		if res != nil {
			return res.Message, false, nil
		}
		return "", false, nil
	case idBankSerial:
		if res != nil {
			return res.BankSerial, false, nil
		}
		return "", false, nil
	case idBankBatchNo:
		if b.BankBatchNo == "" && sum != nil {
			return sum.BankBatchNo, false, nil
		}
		return b.BankBatchNo, false, nil
	case idFileSeq:
		rr.tmp = strconv.AppendInt(rr.tmp, int64(b.FileSeq), 10)
		return "", true, nil
	case idDate, idTime:
		rr.tmp = b.Date.AppendFormat(rr.tmp, f.goFmt)
		return "", true, nil
	case idMemo:
		return b.Memo, false, nil
	case idSubsidyCode:
		return b.SubsidyCode, false, nil
	case idSubsidyName:
		return b.SubsidyName, false, nil
	case idTenant:
		return b.Tenant, false, nil
	case idPeriod:
		return b.Period, false, nil
	case idBatchID:
		return b.BatchID, false, nil
	case idCount:
		rr.tmp = strconv.AppendInt(rr.tmp, int64(sum.Count), 10)
		return "", true, nil
	case idTotal:
		rr.tmp = appendMoney(rr.tmp, sum.TotalFen, f.yuan)
		return "", true, nil
	case idPaidCount:
		rr.tmp = strconv.AppendInt(rr.tmp, int64(sum.PaidCount), 10)
		return "", true, nil
	case idPaidTotal:
		rr.tmp = appendMoney(rr.tmp, sum.PaidFen, f.yuan)
		return "", true, nil
	case idFailedCount:
		rr.tmp = strconv.AppendInt(rr.tmp, int64(sum.FailedCount), 10)
		return "", true, nil
	case idFailedTotal:
		rr.tmp = appendMoney(rr.tmp, sum.FailedFen, f.yuan)
		return "", true, nil
	case idBatchCode:
		return sum.BatchCode, false, nil
	case idBatchMessage:
		return sum.BatchMessage, false, nil
	}
	return "", false, fmt.Errorf("format: field %s cannot be rendered", f.Name)
}

// appendMoney appends fen as whole fen or as yuan with exactly two decimals.
func appendMoney(dst []byte, fen int64, yuan bool) []byte {
	if !yuan {
		return strconv.AppendInt(dst, fen, 10)
	}
	if fen < 0 {
		dst = append(dst, '-')
		fen = -fen
	}
	dst = strconv.AppendInt(dst, fen/100, 10)
	c := fen % 100
	return append(dst, '.', byte('0'+c/10), byte('0'+c%10))
}

// dotVariants are the middle-dot forms seen in minority names.
const dotVariants = "·•．.・‧﹒"

// isDotVariant reports whether c is one of dotVariants (a switch: strings.
// ContainsAny with a non-ASCII set searches the set once per rune of name).
func isDotVariant(c rune) bool {
	switch c {
	case '·', '•', '．', '.', '・', '‧', '﹒':
		return true
	}
	return false
}

func hasDotVariant(name string) bool {
	for _, c := range name {
		if isDotVariant(c) {
			return true
		}
	}
	return false
}

func (rr *renderer) normalizeDots(name, to string) string {
	if !hasDotVariant(name) {
		return name
	}
	rr.tmp = rr.tmp[:0]
	for _, c := range name {
		if isDotVariant(c) {
			rr.tmp = append(rr.tmp, to...)
		} else {
			rr.tmp = utf8.AppendRune(rr.tmp, c)
		}
	}
	return string(rr.tmp) // rare: only names with a dot
}

// field appends one field to rr.line (fixed or delimited); line is the line
// number for errors (0 when rendering).
func (rr *renderer) field(f *Field, src *source, seq, line int) error {
	l := rr.l
	s, num, err := rr.value(f, src)
	if err != nil {
		return err
	}
	if !num && l.isPlain(s) {
		return rr.plainField(f, s, seq, line)
	}
	fe := func(code, msg string) error {
		// Field is the layout's field name (also for XML), so intake can
		// map it to its own record fields.
		return FieldError{Seq: seq, Line: line, Field: f.Name, Code: code, Message: msg}
	}
	var enc []byte
	if num {
		enc = rr.tmp
	} else {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f {
				return fe(CodeControlChar, fmt.Sprintf("control character 0x%02X in value", c))
			}
		}
		rr.enc, err = l.codec.appendEncode(rr.enc[:0], s)
		if err != nil {
			return fe(CodeUnencodable, fmt.Sprintf("%v in %s", err, l.codec.name))
		}
		enc = rr.enc
	}
	switch l.Style {
	case "fixed":
		if len(enc) > f.Width {
			return rr.tooLong(f, seq, line, len(enc))
		}
		rr.line = appendFixed(rr.line, f, enc)
	case "delimited":
		if f.Max > 0 && len(enc) > f.Max {
			return rr.tooLong(f, seq, line, len(enc))
		}
		if !num && (strings.Contains(s, l.Delimiter) || (l.Quote != "" && strings.Contains(s, l.Quote))) {
			if l.Quote == "" {
				return fe(CodeSeparator, fmt.Sprintf("value contains the delimiter %q", l.Delimiter))
			}
			rr.line = append(rr.line, '"')
			for _, c := range enc {
				if c == '"' {
					rr.line = append(rr.line, '"')
				}
				rr.line = append(rr.line, c)
			}
			rr.line = append(rr.line, '"')
			return nil
		}
		rr.line = append(rr.line, enc...)
	case "xml":
		if f.Max > 0 && len(enc) > f.Max {
			return rr.tooLong(f, seq, line, len(enc))
		}
		// Escaping after encoding is safe: no GBK/GB18030 trail byte is < 0x40.
		rr.line = appendEscaped(rr.line, enc)
	}
	return nil
}

// appendFixed appends v (at most f.Width bytes) padded to f.Width on its side.
func appendFixed[T string | []byte](line []byte, f *Field, v T) []byte {
	padN := f.Width - len(v)
	if f.right {
		line = appendPad(line, f.padByte, padN)
		return append(line, v...)
	}
	line = append(line, v...)
	return appendPad(line, f.padByte, padN)
}

// isPlain reports whether every byte of s is one of l.plain: printable ASCII
// that is written as it is. Most values are (numbers, ID and account numbers).
func (l *Layout) isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !l.plain[s[i]] {
			return false
		}
	}
	return true
}

// plainField is field for a value l.isPlain accepts: ASCII is its own
// encoding in every codec, there is no control character, nothing to quote
// or escape. So the only check that can fail is the length, and the value
// is appended as it is: byte for byte what field's general path writes.
func (rr *renderer) plainField(f *Field, s string, seq, line int) error {
	if rr.l.Style == "fixed" {
		if len(s) > f.Width {
			return rr.tooLong(f, seq, line, len(s))
		}
		rr.line = appendFixed(rr.line, f, s)
		return nil
	}
	// delimited, xml
	if f.Max > 0 && len(s) > f.Max {
		return rr.tooLong(f, seq, line, len(s))
	}
	rr.line = append(rr.line, s...)
	return nil
}

// tooLong is the error for a value of n encoded bytes over the field's
// width (fixed) or max (delimited, xml). Field is the layout's field name
// (also for XML), so intake can map it to its own record fields.
func (rr *renderer) tooLong(f *Field, seq, line, n int) error {
	limit := fmt.Sprintf("max %d", f.Max)
	if rr.l.Style == "fixed" {
		limit = fmt.Sprintf("width %d", f.Width)
	}
	return FieldError{Seq: seq, Line: line, Field: f.Name, Code: CodeTooLong, Message: fmt.Sprintf("%d bytes in %s, %s", n, rr.l.codec.name, limit)}
}

func appendPad(dst []byte, c byte, n int) []byte {
	if n <= 0 {
		return dst
	}
	dst = slices.Grow(dst, n)
	pad := dst[len(dst) : len(dst)+n]
	pad[0] = c
	for k := 1; k < n; k *= 2 {
		copy(pad[k:], pad[:k])
	}
	return dst[:len(dst)+n]
}

func appendEscaped(dst, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
