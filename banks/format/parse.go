package format

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"
	"unsafe"
)

// Parse reads a return file with a return layout, streaming: fn is called
// with each valid result as soon as its line is read. A malformed file is read
// to its end and every problem (up to MaxErrors) comes back as ParseErrors,
// line-numbered; results of broken lines are not passed to fn. Callers stage
// what fn receives and apply it only if Parse returns nil. An error returned
// by fn stops Parse and is returned as is.
//
// Checks: encoding validity, line shape (widths in bytes, field counts,
// multi-byte characters split by a field boundary), numbers and amounts,
// constants, duplicated match keys, and header/trailer totals against the
// lines. Unknown result codes are passed on unchanged. Trailing blank lines,
// a missing final line ending, LF or CRLF and a UTF-8 or GB18030 BOM are
// tolerated.
func (l *Layout) Parse(r io.Reader, fn func(Result) error) (Summary, error) {
	if l.Kind != "return" {
		return Summary{}, fmt.Errorf("format: Parse needs a return layout, this one is %s", l.Kind)
	}
	p := newParser(l)
	p.onResult = fn
	return p.run(r)
}

// ParseRecords reads an outbound file (what the gateway sent) back into
// records, with the same checks as Parse. The bank simulator and auditors use
// it. The returned Summary carries the stated/computed count and total.
func (l *Layout) ParseRecords(r io.Reader, fn func(Record) error) (Summary, error) {
	if l.Kind != "outbound" {
		return Summary{}, fmt.Errorf("format: ParseRecords needs an outbound layout, this one is %s", l.Kind)
	}
	p := newParser(l)
	p.onRecord = fn
	return p.run(r)
}

type span struct{ start, end int32 }

type parser struct {
	l        *Layout
	onResult func(Result) error
	onRecord func(Record) error
	errs     errList
	stop     error // error from the callback

	line  int    // current line number (or record index for xml)
	ubuf  []byte // UTF-8 text of the current row's string fields
	dbuf  []byte // decoded line (delimited)
	spans []span // delimited: field spans in dbuf (or ubuf after unquoting)

	// the current row
	rowErr bool
	seq    int
	amount int64
	orig   int64
	has    [numFieldIDs]bool
	seen   [numFieldIDs]bool
	text   [numFieldIDs]span

	sum    Summary // computed from the lines
	stated [numFieldIDs]int64
	hasSt  [numFieldIDs]bool
	stLine [numFieldIDs]int

	dups dupSet
}

func newParser(l *Layout) *parser {
	return &parser{l: l, ubuf: make([]byte, 0, 256), dbuf: make([]byte, 0, 512)}
}

func (p *parser) fe(f *Field, code, msg string) {
	p.rowErr = true
	e := FieldError{Seq: p.seq, Line: p.line, Code: code, Message: msg}
	if f != nil {
		e.Field = f.label()
	}
	p.errs.add(e)
}

func (p *parser) run(r io.Reader) (Summary, error) {
	var err error
	if p.l.Style == "xml" {
		err = p.runXML(r)
	} else {
		err = p.runText(r)
	}
	if err != nil {
		return p.sum, err
	}
	if p.stop != nil {
		return p.sum, p.stop
	}
	p.checkStated()
	return p.sum, p.errs.err()
}

const readBuf = 64 << 10

func (p *parser) runText(r io.Reader) error {
	l := p.l
	br := bufio.NewReaderSize(r, readBuf)
	skipBOM(br, l.codec)
	var (
		held      []byte
		heldLine  int
		holding   bool
		headerOK  = len(l.Header) == 0
		blankFrom int
		blanks    int
		sawAny    bool
	)
	wantTrailer := len(l.Trailer) > 0
	for p.stop == nil {
		raw, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			p.line++
			p.rowErr = false
			p.seq = 0
			p.fe(nil, CodeLineTooLong, fmt.Sprintf("line longer than %d bytes", readBuf))
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("format: read: %w", err)
			}
			if err == io.EOF {
				break
			}
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("format: read: %w", err)
		}
		if len(raw) == 0 && err == io.EOF {
			break
		}
		p.line++
		line := trimEOL(raw)
		if isBlank(line) {
			if blanks == 0 {
				blankFrom = p.line
			}
			blanks++
			if err == io.EOF {
				break
			}
			continue
		}
		if blanks > 0 {
			save := p.line
			p.line, p.seq, p.rowErr = blankFrom, 0, false
			p.fe(nil, CodeBlankLine, fmt.Sprintf("%d blank line(s) before more data", blanks))
			p.line, blanks = save, 0
		}
		sawAny = true
		switch {
		case !headerOK:
			headerOK = true
			p.headerLine(l.Header, line, "header")
		case !wantTrailer:
			p.detailLine(line)
		default:
			if holding {
				cur := p.line
				p.line = heldLine
				p.detailLine(held)
				p.line = cur
			}
			held = append(held[:0], line...)
			heldLine, holding = p.line, true
		}
		if err == io.EOF {
			break
		}
	}
	if p.stop != nil {
		return nil
	}
	if !sawAny {
		p.line, p.seq = 0, 0
		p.fe(nil, CodeTruncated, "empty file")
		return nil
	}
	if wantTrailer {
		if !holding {
			p.line, p.seq = p.line+1, 0
			p.fe(nil, CodeTruncated, "file ends without its trailer line")
			return nil
		}
		p.line = heldLine
		p.headerLine(l.Trailer, held, "trailer")
	}
	return nil
}

func skipBOM(br *bufio.Reader, c *codec) {
	if b, _ := br.Peek(3); bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3)
		return
	}
	if c.kind == encGB18030 {
		if b, _ := br.Peek(4); bytes.Equal(b, []byte{0x84, 0x31, 0x95, 0x33}) {
			br.Discard(4)
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func (p *parser) resetRow() {
	p.rowErr = false
	p.seq, p.amount, p.orig = 0, 0, 0
	p.has = [numFieldIDs]bool{}
	p.seen = [numFieldIDs]bool{}
	p.ubuf = p.ubuf[:0]
}

// splitFields cuts a text line into the fields' values: for fixed style raw
// bytes per width; for delimited the decoded (UTF-8) pieces. It calls set for
// each field with the value and whether it is already UTF-8.
func (p *parser) splitFields(fields []Field, line []byte, part string, set func(i int, v []byte, utf bool)) bool {
	l := p.l
	if l.Style == "fixed" {
		return p.splitFixed(fields, line, part, set)
	}
	var err error
	p.dbuf, err = l.codec.appendDecode(p.dbuf[:0], line)
	if err != nil {
		p.fe(nil, CodeBadEncoding, err.Error())
		return false
	}
	p.spans = p.spans[:0]
	d := p.dbuf
	delim := l.Delimiter
	for pos := 0; ; {
		if l.Quote != "" && pos < len(d) && d[pos] == '"' {
			// CSV-style: "..." with "" for a quote; unescaped into dbuf's tail.
			start := len(p.dbuf)
			i := pos + 1
			closed := false
			for i < len(d) {
				if d[i] == '"' {
					if i+1 < len(d) && d[i+1] == '"' {
						p.dbuf = append(p.dbuf, '"')
						i += 2
						continue
					}
					closed = true
					i++
					break
				}
				p.dbuf = append(p.dbuf, d[i])
				i++
			}
			d = p.dbuf[:len(d)] // append may have moved the buffer
			if !closed {
				p.fe(nil, CodeShape, fmt.Sprintf("%s field %d: unterminated quote", part, len(p.spans)+1))
				return false
			}
			p.spans = append(p.spans, span{int32(start), int32(len(p.dbuf))})
			if i == len(d) {
				break
			}
			if !bytes.HasPrefix(d[i:], []byte(delim)) {
				p.fe(nil, CodeShape, fmt.Sprintf("%s field %d: text after closing quote", part, len(p.spans)))
				return false
			}
			pos = i + len(delim)
			if pos == len(d) {
				p.spans = append(p.spans, span{int32(pos), int32(pos)})
				break
			}
			continue
		}
		k := bytes.Index(d[pos:], []byte(delim))
		if k < 0 {
			p.spans = append(p.spans, span{int32(pos), int32(len(d))})
			break
		}
		p.spans = append(p.spans, span{int32(pos), int32(pos + k)})
		pos += k + len(delim)
	}
	n := len(p.spans)
	// A trailing delimiter leaves one last empty (or blank) piece.
	if n == len(fields)+1 {
		last := p.spans[n-1]
		if isBlank(p.dbuf[last.start:last.end]) {
			n--
		}
	}
	if n != len(fields) {
		p.fe(nil, CodeShape, fmt.Sprintf("%s line has %d fields, want %d", part, n, len(fields)))
		return false
	}
	for i := 0; i < n; i++ {
		s := p.spans[i]
		set(i, p.dbuf[s.start:s.end], true)
	}
	return true
}

func (p *parser) splitFixed(fields []Field, line []byte, part string, set func(i int, v []byte, utf bool)) bool {
	l := p.l
	width := 0
	for i := range fields {
		width += fields[i].Width
	}
	if len(line) > width {
		if !isBlank(line[width:]) {
			p.fe(nil, CodeShape, fmt.Sprintf("%s line is %d bytes, want %d", part, len(line), width))
			return false
		}
		line = line[:width]
	}
	if len(line) < width {
		// Only a tail of space-padded free text may have been trimmed; anything
		// else (an amount, a key, a code) cut short means a truncated line.
		pos := 0
		for i := range fields {
			f := &fields[i]
			end := pos + f.Width
			if end > len(line) && !(trimmableTail(f)) {
				p.fe(f, CodeShape, fmt.Sprintf("%s line is %d bytes, want %d (truncated?)", part, len(line), width))
				return false
			}
			pos = end
		}
	}
	var cutsArr [64]int
	cuts := cutsArr[:0]
	pos := 0
	for i := range fields {
		pos += fields[i].Width
		cuts = append(cuts, pos)
	}
	if bad, at := l.codec.scanFixed(line, cuts); bad >= 0 {
		p.fe(nil, CodeBadEncoding, fmt.Sprintf("invalid %s bytes at byte %d", l.codec.name, bad+1))
		return false
	} else if at >= 0 {
		for i := range cuts {
			if cuts[i] == at {
				p.fe(&fields[i], CodeSplitChar, fmt.Sprintf("field ends at byte %d inside a multi-byte character", at))
				break
			}
		}
		return false
	}
	pos = 0
	for i := range fields {
		end := pos + fields[i].Width
		var v []byte
		switch {
		case pos >= len(line):
		case end > len(line):
			v = line[pos:]
		default:
			v = line[pos:end]
		}
		set(i, v, false)
		pos = end
	}
	return true
}

func trimmableTail(f *Field) bool {
	if f.right || f.padByte != ' ' {
		return false
	}
	switch f.id {
	case idFiller, idMessage, idRemark, idBankSerial, idMemo, idSubsidyName, idBatchMessage:
		return true
	}
	return false
}

// detailLine parses one detail line and hands it on.
func (p *parser) detailLine(line []byte) {
	p.resetRow()
	fields := p.l.Detail
	if !p.splitFields(fields, line, "detail", func(i int, v []byte, utf bool) { p.setDetail(&fields[i], v, utf) }) {
		return
	}
	p.finishRow()
}

func (p *parser) textValue(f *Field, v []byte, utf bool) (span, bool) {
	v = trimField(f, v, utf)
	start := len(p.ubuf)
	if utf {
		p.ubuf = append(p.ubuf, v...)
	} else {
		var err error
		p.ubuf, err = p.l.codec.appendDecode(p.ubuf, v)
		if err != nil {
			p.fe(f, CodeBadEncoding, err.Error())
			return span{}, false
		}
	}
	return span{int32(start), int32(len(p.ubuf))}, true
}

// trimField strips blanks (space, tab, and for UTF-8 text the ideographic
// space U+3000) and a text field's padding around a value.
func trimField(f *Field, v []byte, utf bool) []byte {
	for {
		n := len(v)
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		if utf {
			for len(v) >= 3 && v[0] == 0xE3 && v[1] == 0x80 && v[2] == 0x80 {
				v = v[3:]
			}
			for len(v) >= 3 && v[len(v)-3] == 0xE3 && v[len(v)-2] == 0x80 && v[len(v)-1] == 0x80 {
				v = v[:len(v)-3]
			}
		}
		if len(v) == n {
			break
		}
	}
	if f.padByte != ' ' && f.Width > 0 && !fieldInfo[f.id].number {
		if f.right {
			for len(v) > 0 && v[0] == f.padByte {
				v = v[1:]
			}
		} else {
			for len(v) > 0 && v[len(v)-1] == f.padByte {
				v = v[:len(v)-1]
			}
		}
	}
	return v
}

func (p *parser) setDetail(f *Field, v []byte, utf bool) {
	p.seen[f.id] = true
	info := fieldInfo[f.id]
	if info.number {
		t := trimField(f, v, true)
		if len(t) == 0 {
			if !f.Optional {
				p.fe(f, CodeMissing, "blank")
			}
			return
		}
		switch f.id {
		case idSeq:
			n, ok := parseUint(t)
			if !ok || n == 0 || n > 1<<31 {
				p.fe(f, CodeInvalid, fmt.Sprintf("not a sequence number: %q", t))
				return
			}
			p.seq = int(n)
		case idAmount, idOrigAmount:
			fen, ok := parseMoney(t, f.yuan)
			if !ok {
				p.fe(f, CodeInvalid, fmt.Sprintf("not an amount in %s: %q", unitName(f.yuan), t))
				return
			}
			if f.id == idAmount {
				p.amount = fen
			} else {
				p.orig = fen
			}
		default:
			if _, ok := parseUint(t); !ok {
				p.fe(f, CodeInvalid, fmt.Sprintf("not a number: %q", t))
				return
			}
		}
		p.has[f.id] = true
		return
	}
	switch f.id {
	case idFiller:
		return
	case idDate, idTime:
		return // informational in detail lines
	}
	sp, ok := p.textValue(f, v, utf)
	if !ok {
		return
	}
	if f.id == idConst {
		if string(p.ubuf[sp.start:sp.end]) != f.Value {
			p.fe(f, CodeConst, fmt.Sprintf("%q, want %q", p.ubuf[sp.start:sp.end], f.Value))
		}
		return
	}
	if sp.start == sp.end {
		if requiredText(f) {
			p.fe(f, CodeMissing, "blank")
		}
		return
	}
	p.has[f.id] = true
	p.text[f.id] = sp
}

func requiredText(f *Field) bool {
	if f.Optional {
		return false
	}
	switch f.id {
	case idName, idAccount, idCode:
		return true
	}
	return false
}

func unitName(yuan bool) string {
	if yuan {
		return "yuan"
	}
	return "fen"
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseMoney reads whole fen, or yuan with up to two decimals ("12", "12.3",
// "12.30"); more decimals, signs or other characters are invalid.
func parseMoney(b []byte, yuan bool) (int64, bool) {
	if !yuan {
		n, ok := parseUint(b)
		if !ok || n > 1<<53 {
			return 0, false
		}
		return int64(n), true
	}
	dot := bytes.IndexByte(b, '.')
	intPart, frac := b, []byte(nil)
	if dot >= 0 {
		intPart, frac = b[:dot], b[dot+1:]
		if len(frac) == 0 || len(frac) > 2 {
			return 0, false
		}
	}
	if len(intPart) == 0 {
		return 0, false
	}
	y, ok := parseUint(intPart)
	if !ok || y > 1<<46 {
		return 0, false
	}
	f, ok := uint64(0), true
	if len(frac) > 0 {
		f, ok = parseUint(frac)
		if !ok {
			return 0, false
		}
		if len(frac) == 1 {
			f *= 10
		}
	}
	return int64(y*100 + f), true
}

func (p *parser) str(id fieldID, s string) string {
	if !p.has[id] {
		return ""
	}
	sp := p.text[id]
	return s[sp.start:sp.end]
}

// finishRow checks the row's key and hands it to the callback.
func (p *parser) finishRow() {
	l := p.l
	for i := range l.Detail {
		f := &l.Detail[i]
		if f.id == idSeq && !p.has[idSeq] && !f.Optional && !p.rowErr {
			p.fe(f, CodeMissing, "no sequence number")
		}
	}
	if p.rowErr {
		return
	}
	// One allocation per row: every string field is a slice of s.
	s := string(p.ubuf)
	if l.Kind == "return" {
		var dupMsg string
		if l.matchSeq {
			dupMsg = p.dups.seen(uint64(p.seq), p.line, true)
		} else {
			dupMsg = p.dups.seen(keyHash(p.str(idAccount, s), p.str(idName, s), p.amount), p.line, false)
		}
		res := Result{
			Seq: p.seq, Name: p.str(idName, s), Account: p.str(idAccount, s),
			AmountFen: p.amount, OrigFen: p.orig,
			IDNumber: p.str(idIDNumber, s), Remark: p.str(idRemark, s),
			Code: p.str(idCode, s), Message: p.str(idMessage, s), BankSerial: p.str(idBankSerial, s),
			Line: p.line,
		}
		res.Paid = l.IsPaid(res.Code)
		p.sum.Count++
		p.sum.TotalFen += res.AmountFen
		if res.Paid {
			p.sum.PaidCount++
			p.sum.PaidFen += res.AmountFen
		} else {
			p.sum.FailedCount++
			p.sum.FailedFen += res.AmountFen
		}
		// A duplicate is counted (the file's own totals include it) but not
		// passed on: the file is refused as a whole.
		if dupMsg != "" {
			p.fe(nil, CodeDuplicate, "same "+joinKey(l.Match)+" as "+dupMsg)
			return
		}
		if p.onResult != nil && p.stop == nil {
			if err := p.onResult(res); err != nil {
				p.stop = err
			}
		}
		return
	}
	rec := Record{Seq: p.seq, Name: p.str(idName, s), IDNumber: p.str(idIDNumber, s), Account: p.str(idAccount, s),
		AccountKind: p.str(idAccountKind, s), AmountFen: p.amount, Remark: p.str(idRemark, s)}
	p.sum.Count++
	p.sum.TotalFen += rec.AmountFen
	if msg := p.dups.seen(uint64(p.seq), p.line, true); msg != "" {
		p.fe(nil, CodeDuplicate, "same seq as "+msg)
		return
	}
	if p.onRecord != nil && p.stop == nil {
		if err := p.onRecord(rec); err != nil {
			p.stop = err
		}
	}
}

func joinKey(k []string) string {
	out := ""
	for i, s := range k {
		if i > 0 {
			out += "+"
		}
		out += s
	}
	return out
}

// headerLine parses a header or trailer line: totals are kept to be checked
// against the lines at the end; batch number and batch code are reported.
func (p *parser) headerLine(fields []Field, line []byte, part string) {
	p.resetRow()
	p.splitFields(fields, line, part, func(i int, v []byte, utf bool) { p.setHeader(&fields[i], v, utf) })
}

func (p *parser) setHeader(f *Field, v []byte, utf bool) {
	info := fieldInfo[f.id]
	if info.number {
		t := trimField(f, v, true)
		if len(t) == 0 {
			if !f.Optional {
				p.fe(f, CodeMissing, "blank")
			}
			return
		}
		var n int64
		if info.money {
			fen, ok := parseMoney(t, f.yuan)
			if !ok {
				p.fe(f, CodeInvalid, fmt.Sprintf("not an amount in %s: %q", unitName(f.yuan), t))
				return
			}
			n = fen
		} else {
			u, ok := parseUint(t)
			if !ok {
				p.fe(f, CodeInvalid, fmt.Sprintf("not a number: %q", t))
				return
			}
			n = int64(u)
		}
		p.stated[f.id], p.hasSt[f.id], p.stLine[f.id] = n, true, p.line
		return
	}
	if f.id == idFiller {
		return
	}
	sp, ok := p.textValue(f, v, utf)
	if !ok {
		return
	}
	val := p.ubuf[sp.start:sp.end]
	switch f.id {
	case idConst:
		if string(val) != f.Value {
			p.fe(f, CodeConst, fmt.Sprintf("%q, want %q", val, f.Value))
		}
	case idDate, idTime:
		if len(val) > 0 {
			if _, err := time.Parse(f.goFmt, string(val)); err != nil {
				p.fe(f, CodeInvalid, fmt.Sprintf("%q is not %s", val, f.Format))
			}
		}
	case idBankBatchNo:
		p.sum.BankBatchNo = string(val)
	case idBatchCode:
		p.sum.BatchCode = string(val)
	case idBatchMessage:
		p.sum.BatchMessage = string(val)
	}
}

// checkStated compares header/trailer totals with what the lines add up to.
func (p *parser) checkStated() {
	computed := [numFieldIDs]int64{
		idCount: int64(p.sum.Count), idTotal: p.sum.TotalFen,
		idPaidCount: int64(p.sum.PaidCount), idPaidTotal: p.sum.PaidFen,
		idFailedCount: int64(p.sum.FailedCount), idFailedTotal: p.sum.FailedFen,
	}
	for _, id := range []fieldID{idCount, idTotal, idPaidCount, idPaidTotal, idFailedCount, idFailedTotal} {
		if !p.hasSt[id] {
			continue
		}
		if (id == idPaidCount || id == idPaidTotal || id == idFailedCount || id == idFailedTotal) && len(p.l.paid) == 0 {
			p.errs.add(FieldError{Line: p.stLine[id], Field: fieldNames[id], Code: CodeSummary, Message: "layout has no paid_codes, cannot check paid/failed totals"})
			continue
		}
		if p.stated[id] != computed[id] {
			p.errs.add(FieldError{Line: p.stLine[id], Field: fieldNames[id], Code: CodeSummary,
				Message: "file says " + strconv.FormatInt(p.stated[id], 10) + ", lines add up to " + strconv.FormatInt(computed[id], 10)})
		}
	}
}

// dupSet remembers match keys: a bitmap for sequence numbers up to 1<<24,
// a map (key hash -> first line) beyond and for composite keys.
type dupSet struct {
	bits []uint64
	m    map[uint64]int32
}

const dupBitmapMax = 1 << 24

func (d *dupSet) seen(k uint64, line int, isSeq bool) string {
	if isSeq && k < dupBitmapMax {
		w := k / 64
		if int(w) >= len(d.bits) {
			n := max(int(w)+1, 2*len(d.bits))
			d.bits = append(d.bits, make([]uint64, n-len(d.bits))...)
		}
		if d.bits[w]&(1<<(k%64)) != 0 {
			return "an earlier line (seq " + strconv.FormatUint(k, 10) + ")"
		}
		d.bits[w] |= 1 << (k % 64)
		return ""
	}
	if d.m == nil {
		d.m = make(map[uint64]int32)
	}
	if first, ok := d.m[k]; ok {
		return "line " + strconv.Itoa(int(first))
	}
	d.m[k] = int32(line)
	return ""
}

// keyHash is FNV-1a over account, name and amount.
func keyHash(account, name string, amount int64) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range [2]string{account, name} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	for i := 0; i < 8; i++ {
		h ^= uint64(byte(amount >> (8 * i)))
		h *= 1099511628211
	}
	return h
}

// bytesString views b as a string without copying (only for map lookups and
// comparisons that do not keep the string).
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
