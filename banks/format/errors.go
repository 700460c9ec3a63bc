package format

import (
	"strconv"
	"strings"
)

// Problem codes used in FieldError.Code.
const (
	CodeTooLong        = "too_long"         // value longer than the field's byte width/max in the layout's encoding
	CodeUnencodable    = "unencodable"      // a character the layout's encoding cannot represent (e.g. 𠮷 in GBK)
	CodeSeparator      = "separator"        // the delimiter inside a value of an unquoted delimited layout
	CodeControlChar    = "control_char"     // CR, LF or another control character inside a value
	CodeInvalid        = "invalid"          // a value that does not parse (number, amount, date)
	CodeMissing        = "missing"          // a required value is blank or absent
	CodeDuplicate      = "duplicate"        // a second line with the same match key
	CodeSummary        = "summary_mismatch" // a header/trailer total disagrees with the lines
	CodeSplitChar      = "split_char"       // a fixed-width boundary falls inside a multi-byte character
	CodeBadEncoding    = "bad_encoding"     // bytes that are not valid in the layout's encoding
	CodeConst          = "const_mismatch"   // a constant field (record type marker etc.) has another value
	CodeShape          = "bad_shape"        // wrong line length / field count / XML structure
	CodeBlankLine      = "blank_line"       // an empty line before the end of the file
	CodeLineTooLong    = "line_too_long"    // a line longer than the reader's buffer
	CodeTruncated      = "truncated"        // the file ends before its summary/closing element
	CodeTooManyErrors  = "too_many_errors"  // more problems than MaxErrors; the rest are counted only
	CodeRecordMismatch = "record_mismatch"  // rendered records disagree with the batch header
)

// MaxErrors bounds how many problems Parse keeps; beyond it they are counted
// in one last CodeTooManyErrors entry.
const MaxErrors = 1000

// FieldError is one problem with one record or line. Seq is the record's
// sequence number when known (0 otherwise), Line the 1-based line number of a
// text file or the 1-based record element index of an XML message (0 for a
// problem with the whole file). Field names the layout field ("name",
// "memo", ...); in Parse errors of an XML layout it is the element path.
type FieldError struct {
	Seq     int    `json:"seq,omitempty"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Seq > 0 {
		b.WriteString("record ")
		b.WriteString(strconv.Itoa(e.Seq))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// ParseErrors is every problem found in one file, in file order.
type ParseErrors []FieldError

func (pe ParseErrors) Error() string {
	if len(pe) == 0 {
		return "format: no problems"
	}
	var b strings.Builder
	b.WriteString("format: ")
	b.WriteString(strconv.Itoa(len(pe)))
	b.WriteString(" problem(s) in file:")
	for _, e := range pe {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// errList collects problems up to MaxErrors.
type errList struct {
	list    ParseErrors
	dropped int
}

func (l *errList) add(e FieldError) {
	if len(l.list) >= MaxErrors {
		l.dropped++
		return
	}
	l.list = append(l.list, e)
}

func (l *errList) err() error {
	if len(l.list) == 0 {
		return nil
	}
	out := l.list
	if l.dropped > 0 {
		out = append(out, FieldError{Code: CodeTooManyErrors, Message: strconv.Itoa(l.dropped) + " more problem(s) not listed"})
	}
	return out
}
