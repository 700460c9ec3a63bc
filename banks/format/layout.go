package format

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Batch is the header data of one outbound file (one delivery = one file =
// part or all of a platform batch).
type Batch struct {
	BankBatchNo string    `json:"bank_batch_no"` // ours, unique per bank
	FileSeq     int       `json:"file_seq"`      // 1..n within the platform batch
	Date        time.Time `json:"date"`
	Count       int       `json:"count"`     // records in THIS file
	TotalFen    int64     `json:"total_fen"` // sum in THIS file
	Memo        string    `json:"memo"`      // what the passbook shows (摘要)
	SubsidyCode string    `json:"subsidy_code"`
	SubsidyName string    `json:"subsidy_name"`
	Tenant      string    `json:"tenant"`
	Period      string    `json:"period"`
	BatchID     string    `json:"batch_id"`
}

// Record is one payment line of an outbound file.
type Record struct {
	Seq         int    `json:"seq"`
	Name        string `json:"name"`
	IDNumber    string `json:"id_number"`
	Account     string `json:"account"`
	AccountKind string `json:"account_kind"`
	AmountFen   int64  `json:"amount_fen"`
	Remark      string `json:"remark"`
}

// Result is one parsed return line (or XML record element). Code and Message
// are the bank's raw values and are never dropped, known or not.
type Result struct {
	Seq        int    `json:"seq"`
	Name       string `json:"name,omitempty"`
	Account    string `json:"account,omitempty"`
	AmountFen  int64  `json:"amount_fen"`            // processed amount as the line says
	OrigFen    int64  `json:"orig_fen,omitempty"`    // requested amount, when the layout has orig_amount
	IDNumber   string `json:"id_number,omitempty"`   // when the return layout repeats it
	Remark     string `json:"remark,omitempty"`      // when the return layout repeats it
	Code       string `json:"code"`                  // raw bank code or flag
	Message    string `json:"message,omitempty"`     // raw bank text
	BankSerial string `json:"bank_serial,omitempty"` // bank's serial for the transfer
	Paid       bool   `json:"paid"`                  // Code is one of the layout's paid codes
	Line       int    `json:"line"`                  // 1-based line, or record element index for XML
}

// Summary is what a parsed file adds up to (computed from its lines, and
// checked against whatever header/trailer totals the file states).
type Summary struct {
	Count        int    `json:"count"`
	TotalFen     int64  `json:"total_fen"`
	PaidCount    int    `json:"paid_count"`
	PaidFen      int64  `json:"paid_fen"`
	FailedCount  int    `json:"failed_count"`
	FailedFen    int64  `json:"failed_fen"`
	BankBatchNo  string `json:"bank_batch_no,omitempty"`
	BatchCode    string `json:"batch_code,omitempty"`    // per-batch return code (XML styles)
	BatchMessage string `json:"batch_message,omitempty"` // per-batch return text
}

// Field is one field of a header, detail or trailer line (or XML element).
type Field struct {
	Name     string `yaml:"name"`     // what the field holds, see LAYOUTS.md ("seq", "name", "amount", "count", "const", ...)
	Value    string `yaml:"value"`    // the constant for name: const
	Width    int    `yaml:"width"`    // fixed style: width in bytes of the layout's encoding
	Max      int    `yaml:"max"`      // delimited/xml: maximum bytes (0 = unlimited)
	Align    string `yaml:"align"`    // fixed: left | right (default: right for numbers, left for text)
	Pad      string `yaml:"pad"`      // fixed: one ASCII padding character (default "0" for numbers, " " for text)
	Unit     string `yaml:"unit"`     // money: fen | yuan (default fen)
	Format   string `yaml:"format"`   // date/time: YYYY MM DD hh mm ss tokens or a Go layout
	Path     string `yaml:"path"`     // xml: element path (header/trailer: from the root; detail: inside the record element)
	Dots     string `yaml:"dots"`     // name: rewrite every middle-dot variant (· • ． . ・ ‧ ﹒) to this string
	Optional bool   `yaml:"optional"` // parse: the value may be blank

	id      fieldID
	padByte byte
	right   bool
	yuan    bool
	goFmt   string
	pathSeg []string
	fullSeg []string // xml detail: record path + pathSeg
}

// Layout is one bank file layout, loaded from YAML. It is immutable after
// loading and safe for concurrent use.
type Layout struct {
	Kind              string   `yaml:"kind"`        // outbound | return
	Style             string   `yaml:"style"`       // fixed | delimited | xml
	EncodingName      string   `yaml:"encoding"`    // GB18030 | GBK | UTF-8
	LineEnding        string   `yaml:"line_ending"` // CRLF | LF (render; parse accepts both)
	Delimiter         string   `yaml:"delimiter"`
	Quote             string   `yaml:"quote"` // delimited: "" = a delimiter inside a value is refused; `"` = CSV-style quoting
	TrailingDelimiter bool     `yaml:"trailing_delimiter"`
	FinalNewline      *bool    `yaml:"final_newline"` // render: end the last line with a line ending (default true)
	Header            []Field  `yaml:"header"`
	Detail            []Field  `yaml:"detail"`
	Trailer           []Field  `yaml:"trailer"`
	Match             []string `yaml:"match"`      // return: the key matching a result to its record: [seq] or [account, name, amount]
	PaidCodes         []string `yaml:"paid_codes"` // return: codes/flags meaning paid (a profile fills these from its code map)
	XML               *XMLSpec `yaml:"xml"`

	codec     *codec
	eol       []byte
	lineWidth int
	// plain marks the bytes a text value may hold and still be written as
	// it is (see renderer.plainField): printable ASCII other than the
	// delimiter's and the quote's bytes (delimited) or the characters XML
	// escapes. Compile fills it; all false (never plain) until then.
	plain      [256]bool
	hasOrig    bool
	paid       map[string]struct{}
	matchSeq   bool
	detailIdx  map[string]int // xml: relative path -> detail field index
	headerIdx  map[string]int // xml: absolute path -> header/trailer field index (header first)
	recordPath []string
}

// XMLSpec holds what only the XML style needs.
type XMLSpec struct {
	Record string `yaml:"record"` // slash path of the repeated record element, from the root, e.g. CMS/Body/Details/Detail
	Indent bool   `yaml:"indent"` // render one element per line
}

// LoadLayout reads and validates one layout YAML file.
func LoadLayout(path string) (*Layout, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	l, err := ParseLayout(data)
	if err != nil {
		return nil, fmt.Errorf("format: layout %s: %w", path, err)
	}
	return l, nil
}

// ParseLayout parses and validates a layout from YAML bytes.
func ParseLayout(data []byte) (*Layout, error) {
	var l Layout
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if err := l.Compile(); err != nil {
		return nil, err
	}
	return &l, nil
}

// Encoding returns the layout's encoding name: "GB18030", "GBK" or "UTF-8".
func (l *Layout) Encoding() string { return l.codec.name }

// MatchKey returns the field names that match a result to its record.
func (l *Layout) MatchKey() []string { return append([]string(nil), l.Match...) }

// SetPaidCodes replaces the codes that mean paid (used by Parse to split the
// summary into paid and failed). Call it only while setting up, before the
// layout is shared.
func (l *Layout) SetPaidCodes(codes []string) {
	l.PaidCodes = append([]string(nil), codes...)
	l.paid = make(map[string]struct{}, len(codes))
	for _, c := range codes {
		l.paid[c] = struct{}{}
	}
}

// IsPaid reports whether code is one of the layout's paid codes.
func (l *Layout) IsPaid(code string) bool {
	_, ok := l.paid[code]
	return ok
}

// Compile validates the layout and prepares it for use; it returns every
// problem found. LoadLayout and ParseLayout call it.
func (l *Layout) Compile() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch l.Kind {
	case "outbound", "return":
	default:
		bad("kind %q: want outbound or return", l.Kind)
	}
	c, err := codecFor(l.EncodingName)
	if err != nil {
		bad("%v", err)
		c = utf8Codec
	}
	l.codec = c
	switch strings.ToUpper(l.LineEnding) {
	case "", "CRLF":
		l.eol = []byte("\r\n")
	case "LF":
		l.eol = []byte("\n")
	default:
		bad("line_ending %q: want CRLF or LF", l.LineEnding)
	}
	switch l.Style {
	case "fixed":
		if l.Delimiter != "" || l.Quote != "" {
			bad("fixed style takes no delimiter or quote")
		}
	case "delimited":
		if l.Delimiter == "" {
			bad("delimited style needs a delimiter")
		}
		if strings.ContainsAny(l.Delimiter, "\r\n") {
			bad("delimiter must not contain a line break")
		}
		if l.Quote != "" && l.Quote != `"` {
			bad(`quote %q: want "" (none) or "\""`, l.Quote)
		}
	case "xml":
		if l.XML == nil || l.XML.Record == "" {
			bad("xml style needs xml.record (the repeated record element path)")
		} else {
			l.recordPath = splitPath(l.XML.Record)
		}
	default:
		bad("style %q: want fixed, delimited or xml", l.Style)
	}
	if len(l.Detail) == 0 {
		bad("detail: no fields")
	}
	ret := l.Kind == "return"
	for _, p := range []struct {
		name   string
		fields []Field
	}{{"header", l.Header}, {"detail", l.Detail}, {"trailer", l.Trailer}} {
		part, fields := p.name, p.fields
		width := 0
		for i := range fields {
			f := &fields[i]
			if err := l.compileField(f, part == "detail", ret); err != nil {
				bad("%s field %d (%s): %v", part, i+1, f.Name, err)
			}
			width += f.Width
		}
		if part == "detail" {
			l.lineWidth = width
		}
	}
	if l.Style == "xml" {
		l.detailIdx = map[string]int{}
		for i, f := range l.Detail {
			if f.id == idFiller {
				bad("detail field %d: filler has no meaning in xml", i+1)
				continue
			}
			k := strings.Join(f.pathSeg, "/")
			if _, dup := l.detailIdx[k]; dup {
				bad("detail field %d: path %q used twice", i+1, f.Path)
			}
			l.detailIdx[k] = i
		}
		l.headerIdx = map[string]int{}
		for i, f := range append(append([]Field(nil), l.Header...), l.Trailer...) {
			if f.id == idFiller {
				bad("header/trailer field %d: filler has no meaning in xml", i+1)
				continue
			}
			k := strings.Join(f.pathSeg, "/")
			if _, dup := l.headerIdx[k]; dup {
				bad("header/trailer path %q used twice", f.Path)
			}
			if len(l.recordPath) > 0 && hasPrefix(f.pathSeg, l.recordPath) {
				bad("header/trailer path %q lies inside the record element", f.Path)
			}
			l.headerIdx[k] = i
		}
	}
	has := map[fieldID]bool{}
	for _, f := range l.Detail {
		has[f.id] = true
		if f.id == idOrigAmount {
			l.hasOrig = true
		}
	}
	if ret {
		if len(l.Match) == 0 {
			l.Match = []string{"seq"}
		}
		switch strings.Join(l.Match, ",") {
		case "seq":
			l.matchSeq = true
		case "account,name,amount":
		default:
			bad("match %v: want [seq] or [account, name, amount]", l.Match)
		}
		for _, k := range l.Match {
			if id, ok := fieldIDs[k]; ok && !has[id] {
				bad("match key %q is not a detail field", k)
			}
		}
		if !has[idCode] {
			bad("return detail needs a code field (the result code or flag)")
		}
		if !has[idAmount] {
			bad("return detail needs an amount field (the processed amount)")
		}
	} else {
		if len(l.Match) > 0 || len(l.PaidCodes) > 0 {
			bad("match and paid_codes belong to return layouts")
		}
		for _, need := range []fieldID{idSeq, idAmount, idAccount, idName} {
			if !has[need] {
				bad("outbound detail needs a %s field", fieldNames[need])
			}
		}
	}
	l.SetPaidCodes(l.PaidCodes)
	l.plain = [256]bool{}
	if len(errs) == 0 {
		l.compilePlain()
	}
	return errors.Join(errs...)
}

// compilePlain fills l.plain (see the field's comment).
func (l *Layout) compilePlain() {
	for c := 0x20; c < 0x7f; c++ {
		l.plain[c] = true
	}
	var special string
	switch l.Style {
	case "fixed":
	case "delimited":
		special = l.Delimiter + l.Quote
	case "xml":
		special = `&<>"'`
	default:
		l.plain = [256]bool{}
		return
	}
	for i := 0; i < len(special); i++ {
		l.plain[special[i]] = false
	}
}

func (l *Layout) compileField(f *Field, detail, ret bool) error {
	id, ok := fieldIDs[f.Name]
	if !ok {
		return fmt.Errorf("unknown field name")
	}
	f.id = id
	info := fieldInfo[id]
	switch {
	case detail && info.where&inDetail == 0:
		return fmt.Errorf("not allowed in a detail line")
	case !detail && info.where&inHeader == 0:
		return fmt.Errorf("not allowed in a header or trailer")
	case !ret && info.where&onlyReturn != 0:
		return fmt.Errorf("only in return layouts")
	}
	if id == idConst && f.Value == "" {
		return fmt.Errorf("const needs a value")
	}
	if id != idConst && f.Value != "" {
		return fmt.Errorf("value is only for const")
	}
	switch f.Unit {
	case "", "fen":
	case "yuan":
		if !info.money {
			return fmt.Errorf("unit only applies to amounts")
		}
		f.yuan = true
	default:
		return fmt.Errorf("unit %q: want fen or yuan", f.Unit)
	}
	if f.Format != "" && !info.date {
		return fmt.Errorf("format only applies to date and time")
	}
	if info.date {
		fm := f.Format
		if fm == "" {
			fm = "YYYYMMDD"
			if id == idTime {
				fm = "hhmmss"
			}
		}
		f.goFmt = strings.NewReplacer("YYYY", "2006", "MM", "01", "DD", "02", "hh", "15", "mm", "04", "ss", "05").Replace(fm)
	}
	if f.Dots != "" && id != idName {
		return fmt.Errorf("dots only applies to name")
	}
	switch f.Align {
	case "":
		f.right = info.number
	case "left":
	case "right":
		f.right = true
	default:
		return fmt.Errorf("align %q: want left or right", f.Align)
	}
	switch {
	case f.Pad == "" && info.number:
		f.padByte = '0'
	case f.Pad == "":
		f.padByte = ' '
	case len(f.Pad) == 1 && f.Pad[0] >= 0x20 && f.Pad[0] < 0x7f:
		f.padByte = f.Pad[0]
	default:
		return fmt.Errorf("pad %q: want one printable ASCII character", f.Pad)
	}
	if f.Max < 0 || f.Width < 0 {
		return fmt.Errorf("negative width or max")
	}
	switch l.Style {
	case "fixed":
		if f.Width == 0 {
			return fmt.Errorf("fixed style needs a width")
		}
		if f.Max != 0 {
			return fmt.Errorf("fixed style uses width, not max")
		}
		if id == idConst && len(f.Value) > f.Width {
			return fmt.Errorf("const longer than its width")
		}
	case "xml":
		if f.Path == "" {
			return fmt.Errorf("xml style needs a path")
		}
		f.pathSeg = splitPath(f.Path)
		if detail {
			f.fullSeg = append(append([]string(nil), l.recordPath...), f.pathSeg...)
		}
		for _, s := range f.pathSeg {
			if !validXMLName(s) {
				return fmt.Errorf("path %q: %q is not an XML element name", f.Path, s)
			}
		}
		fallthrough
	default:
		if f.Width != 0 {
			return fmt.Errorf("width is for fixed style; use max")
		}
	}
	if l.Style != "xml" && f.Path != "" {
		return fmt.Errorf("path is for xml style")
	}
	return nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

func hasPrefix(p, prefix []string) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

func validXMLName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z':
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

type fieldID uint8

const (
	idConst fieldID = iota
	idFiller
	idSeq
	idName
	idIDNumber
	idAccount
	idAccountKind
	idAmount
	idOrigAmount
	idRemark
	idCode
	idMessage
	idBankSerial
	idBankBatchNo
	idFileSeq
	idDate
	idTime
	idMemo
	idSubsidyCode
	idSubsidyName
	idTenant
	idPeriod
	idBatchID
	idCount
	idTotal
	idPaidCount
	idPaidTotal
	idFailedCount
	idFailedTotal
	idBatchCode
	idBatchMessage
	numFieldIDs
)

const (
	inDetail   = 1
	inHeader   = 2
	onlyReturn = 4
)

type fieldMeta struct {
	name                string
	where               int
	number, money, date bool
}

var fieldInfo = [numFieldIDs]fieldMeta{
	idConst:        {name: "const", where: inDetail | inHeader},
	idFiller:       {name: "filler", where: inDetail | inHeader},
	idSeq:          {name: "seq", where: inDetail, number: true},
	idName:         {name: "name", where: inDetail},
	idIDNumber:     {name: "id_number", where: inDetail},
	idAccount:      {name: "account", where: inDetail},
	idAccountKind:  {name: "account_kind", where: inDetail},
	idAmount:       {name: "amount", where: inDetail, number: true, money: true},
	idOrigAmount:   {name: "orig_amount", where: inDetail | onlyReturn, number: true, money: true},
	idRemark:       {name: "remark", where: inDetail},
	idCode:         {name: "code", where: inDetail | onlyReturn},
	idMessage:      {name: "message", where: inDetail | onlyReturn},
	idBankSerial:   {name: "bank_serial", where: inDetail | onlyReturn},
	idBankBatchNo:  {name: "bank_batch_no", where: inDetail | inHeader},
	idFileSeq:      {name: "file_seq", where: inDetail | inHeader, number: true},
	idDate:         {name: "date", where: inDetail | inHeader, date: true},
	idTime:         {name: "time", where: inDetail | inHeader, date: true},
	idMemo:         {name: "memo", where: inDetail | inHeader},
	idSubsidyCode:  {name: "subsidy_code", where: inDetail | inHeader},
	idSubsidyName:  {name: "subsidy_name", where: inDetail | inHeader},
	idTenant:       {name: "tenant", where: inDetail | inHeader},
	idPeriod:       {name: "period", where: inDetail | inHeader},
	idBatchID:      {name: "batch_id", where: inDetail | inHeader},
	idCount:        {name: "count", where: inHeader, number: true},
	idTotal:        {name: "total", where: inHeader, number: true, money: true},
	idPaidCount:    {name: "paid_count", where: inHeader | onlyReturn, number: true},
	idPaidTotal:    {name: "paid_total", where: inHeader | onlyReturn, number: true, money: true},
	idFailedCount:  {name: "failed_count", where: inHeader | onlyReturn, number: true},
	idFailedTotal:  {name: "failed_total", where: inHeader | onlyReturn, number: true, money: true},
	idBatchCode:    {name: "batch_code", where: inHeader | onlyReturn},
	idBatchMessage: {name: "batch_message", where: inHeader | onlyReturn},
}

var (
	fieldIDs   = map[string]fieldID{}
	fieldNames [numFieldIDs]string
)

func init() {
	for i, m := range fieldInfo {
		fieldIDs[m.name] = fieldID(i)
		fieldNames[i] = m.name
	}
}

// label names a field in error messages: its name, or for xml its path.
func (f *Field) label() string {
	if f.Path != "" {
		return f.Path
	}
	return f.Name
}
