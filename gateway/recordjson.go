package gateway

// The NDJSON record path without encoding/json for the common shape of a
// record. encoding/json stays the reference: a record the fast decoder is not
// certain about is decoded by encoding/json, and from the first value that is
// not an object on, the rest of the body is read exactly as before. The
// differential tests (recordjson_test.go) hold the two to the same results.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	// recordBufSize is the read buffer of the record stream.
	recordBufSize = 256 << 10
	// maxRecordBytes bounds one record value: a longer one is refused as
	// malformed instead of being buffered (intake.max_body_bytes bounds the body).
	maxRecordBytes = 1 << 20
)

var errRecordTooLarge = fmt.Errorf("%w: a record longer than 1 MiB", errSyntax)

// walkRecords reads the records of an NDJSON body that follow the header dec
// has just decoded from body: JSON values separated by any JSON whitespace,
// until the end of the body. It calls each once per record value with the
// value decoded into rj and its decoding error (the walk then ends with that
// error), exactly as dec.Decode(rj) would have given them with
// DisallowUnknownFields; a closing bracket where a record should start is
// stray data. A record object longer than 1 MiB is refused
// (errRecordTooLarge) rather than buffered. rj and the RawMessages in it are
// only valid during the call (Seq and AmountFen may point into the read
// buffer): each must not keep them. The read buffer, which held personal
// data, is cleared before walkRecords returns.
func walkRecords(dec *json.Decoder, body io.Reader, each func(rj *recordJSON, err error) error) error {
	return walkRecordsSized(dec, body, recordBufSize, maxRecordBytes, each)
}

// walkRecordsSized is walkRecords with a first buffer size and a record limit
// of its own (tests take small ones).
func walkRecordsSized(dec *json.Decoder, body io.Reader, size, max int, each func(rj *recordJSON, err error) error) error {
	s := newRecordStream(io.MultiReader(dec.Buffered(), body), size, max)
	defer s.clear()
	var rj recordJSON
	for {
		rj = recordJSON{} // the fallback appends to Seq and AmountFen: never into the buffer
		ok, err := s.next(&rj)
		if !ok {
			break
		}
		if err := each(&rj, err); err != nil {
			return err
		}
		if err != nil {
			return err
		}
	}
	// The end of the body, a read error, or a value that is not an object:
	// encoding/json reads the rest, as it read the whole body before.
	dec = json.NewDecoder(s.rest())
	dec.DisallowUnknownFields()
	for {
		if !dec.More() {
			if _, err := dec.Token(); err != io.EOF {
				return fmt.Errorf("%w: stray data", errSyntax)
			}
			return nil
		}
		rj = recordJSON{}
		err := dec.Decode(&rj)
		if err := each(&rj, err); err != nil {
			return err
		}
		if err != nil {
			return err
		}
	}
}

// recordStream cuts record objects out of a body: buf[pos:end] is read and
// not yet consumed, err is the reader's error (io.EOF at the end) once seen.
type recordStream struct {
	r       io.Reader
	buf     []byte
	pos     int
	end     int
	err     error
	max     int
	scratch []byte // the string fields of one record, copied out at once
}

func newRecordStream(r io.Reader, size, max int) *recordStream {
	return &recordStream{r: r, buf: make([]byte, size), max: max}
}

// clear wipes the buffers: they held names, ID and account numbers.
func (s *recordStream) clear() {
	clear(s.buf)
	clear(s.scratch[:cap(s.scratch)])
}

// fill reads more of the body, keeping buf[pos:end] (moved to the front, the
// buffer grown when that is all of it). False when the reader has nothing more.
func (s *recordStream) fill() bool {
	if s.err != nil {
		return false
	}
	if s.pos > 0 {
		s.end = copy(s.buf, s.buf[s.pos:s.end])
		s.pos = 0
	}
	if s.end == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf)
		clear(s.buf)
		s.buf = nb
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// next decodes the next record object into rj (which must be zero). ok is
// false, with nothing consumed, when what comes next (after whitespace) is
// not a complete object: the end of the body, a read error, a value of
// another kind, an object cut off. Otherwise err is the decoding error of
// the record, as encoding/json gives it, or errRecordTooLarge.
func (s *recordStream) next(rj *recordJSON) (ok bool, err error) {
	for {
		for s.pos < s.end && isSpace(s.buf[s.pos]) {
			s.pos++
		}
		if s.pos < s.end {
			break
		}
		if !s.fill() {
			return false, nil
		}
	}
	if s.buf[s.pos] != '{' {
		return false, nil
	}
	for {
		n := decodeRecordFast(s.buf[s.pos:s.end], rj, &s.scratch)
		if n > 0 {
			s.pos += n
			return true, nil
		}
		*rj = recordJSON{}
		if n != fastMore || s.end-s.pos >= s.max || !s.fill() {
			break
		}
	}
	// Not the plain shape: find the closing brace: count brackets outside strings. For valid JSON
	// that is the end of the object; for anything else encoding/json reports
	// the error inside these bytes, as it did reading the stream.
	depth, inStr, esc := 0, false, false
	i := s.pos
	for {
		buf := s.buf[:s.end]
		for ; i < len(buf); i++ {
			c := buf[i]
			if inStr {
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					v := buf[s.pos : i+1]
					s.pos = i + 1
					dec := json.NewDecoder(bytes.NewReader(v))
					dec.DisallowUnknownFields()
					return true, dec.Decode(rj)
				}
			}
		}
		if i-s.pos >= s.max {
			return true, errRecordTooLarge
		}
		rel := i - s.pos
		if !s.fill() {
			return false, nil
		}
		i = s.pos + rel
	}
}

// rest reads what the stream has not consumed, then the rest of the body.
func (s *recordStream) rest() io.Reader { return restReader{s} }

type restReader struct{ s *recordStream }

func (r restReader) Read(p []byte) (int, error) {
	s := r.s
	if s.pos < s.end {
		n := copy(p, s.buf[s.pos:s.end])
		s.pos += n
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// Fields of recordJSON, as bits of the set seen so far.
const (
	fSeq = iota
	fName
	fIDNumber
	fAccount
	fAccountKind
	fAmountFen
	fRemark
)

// recordKey is the field of an exact, lower-case key; -1 for any other
// (encoding/json matches keys case-insensitively: those go to it).
func recordKey(k []byte) int {
	switch string(k) {
	case "seq":
		return fSeq
	case "name":
		return fName
	case "id_number":
		return fIDNumber
	case "account":
		return fAccount
	case "account_kind":
		return fAccountKind
	case "amount_fen":
		return fAmountFen
	case "remark":
		return fRemark
	}
	return -1
}

// decodeRecordFast decodes the object at the start of v (v[0] is '{') into
// rj when it has the plain shape of a record: a flat object, each key one of
// recordJSON's in its exact spelling and at most once, seq and amount_fen
// JSON numbers, the other values JSON strings. Then the result is what
// encoding/json gives (the RawMessages point into v) and n is the length of
// the object. n is fastMore when v ends before the object does (read more
// and call again), fastDecline for anything else; rj is then in any state:
// the caller resets it and asks encoding/json. The string fields share one
// allocation; scratch is reused between records.
func decodeRecordFast(v []byte, rj *recordJSON, scratch *[]byte) (n int) {
	var spans [fRemark + 1][2]int // string fields: start, end in b
	b := (*scratch)[:0]
	defer func() { *scratch = b }()
	seen := 0
	if len(v) < 1 || v[0] != '{' {
		return fastDecline
	}
	i := skipSpace(v, 1)
	if i >= len(v) {
		return fastMore
	}
	if v[i] == '}' {
		return i + 1
	}
	for {
		// "key"
		if i >= len(v) {
			return fastMore
		}
		if v[i] != '"' {
			return fastDecline
		}
		j := i + 1
		for j < len(v) && v[j] != '"' && v[j] != '\\' {
			j++
		}
		if j >= len(v) {
			return fastMore
		}
		if v[j] != '"' {
			return fastDecline
		}
		f := recordKey(v[i+1 : j])
		if f < 0 || seen&(1<<f) != 0 {
			return fastDecline
		}
		seen |= 1 << f
		i = skipSpace(v, j+1)
		if i >= len(v) {
			return fastMore
		}
		if v[i] != ':' {
			return fastDecline
		}
		i = skipSpace(v, i+1)
		if i >= len(v) {
			return fastMore
		}
		if f == fSeq || f == fAmountFen {
			j = scanNumber(v, i)
			if j < 0 {
				return fastDecline // or cut off inside the number: the slow path reads on
			}
			if f == fSeq {
				rj.Seq = v[i:j:j]
			} else {
				rj.AmountFen = v[i:j:j]
			}
		} else {
			if v[i] != '"' {
				return fastDecline
			}
			start := len(b)
			if b, j = appendString(b, v, i); j <= 0 {
				return j
			}
			spans[f] = [2]int{start, len(b)}
		}
		i = skipSpace(v, j)
		if i >= len(v) {
			return fastMore
		}
		if v[i] == '}' {
			n = i + 1
			break
		}
		if v[i] != ',' {
			return fastDecline
		}
		i = skipSpace(v, i+1)
	}
	if len(b) == 0 {
		return n
	}
	all := string(b)
	dst := [fRemark + 1]*string{fName: &rj.Name, fIDNumber: &rj.IDNumber, fAccount: &rj.Account,
		fAccountKind: &rj.AccountKind, fRemark: &rj.Remark}
	for f, sp := range spans {
		if sp[1] > sp[0] {
			*dst[f] = all[sp[0]:sp[1]]
		}
	}
	return n
}

// appendString appends the JSON string at v[i] (its opening quote) to b as
// encoding/json decodes it: escapes resolved (a \u surrogate without its
// pair, and every byte of invalid UTF-8, become U+FFFD). It returns the
// index after the closing quote, fastMore when v ends first, fastDecline
// when the string is not valid JSON (control characters, bad escapes).
func appendString(b, v []byte, i int) ([]byte, int) {
	j := i + 1
	for {
		// A run of plain characters is copied at once: ASCII other than
		// quote, backslash and control characters, and valid UTF-8
		// (AppendRune of the rune writes the same bytes).
		k := j
		for k < len(v) {
			if c := v[k]; c < utf8.RuneSelf {
				if c < 0x20 || c == '"' || c == '\\' {
					break
				}
				k++
				continue
			}
			if r, size := utf8.DecodeRune(v[k:]); r != utf8.RuneError || size > 1 {
				k += size
				continue
			}
			break
		}
		b = append(b, v[j:k]...)
		j = k
		if j >= len(v) {
			return b, fastMore
		}
		switch c := v[j]; {
		case c == '"':
			return b, j + 1
		case c < 0x20:
			return b, fastDecline
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(v[j:])
			if r == utf8.RuneError && size == 1 && !utf8.FullRune(v[j:]) {
				return b, fastMore
			}
			b = utf8.AppendRune(b, r)
			j += size
		default: // backslash
			if j+1 >= len(v) {
				return b, fastMore
			}
			switch v[j+1] {
			case '"', '\\', '/':
				b = append(b, v[j+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				if j+6 > len(v) {
					return b, fastMore
				}
				r := hex4(v[j+2 : j+6])
				if r < 0 {
					return b, fastDecline
				}
				j += 6
				if utf16.IsSurrogate(r) {
					// encoding/json takes a \uXXXX right after as the pair's
					// other half, if it is one.
					if j+6 > len(v) {
						return b, fastMore
					}
					r2 := rune(-1)
					if v[j] == '\\' && v[j+1] == 'u' {
						r2 = hex4(v[j+2 : j+6])
					}
					if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
						r = d
						j += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return b, fastDecline
			}
			j += 2
		}
	}
}

// hex4 is the value of four hex digits, -1 when they are not.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// Results of decodeRecordFast besides a length.
const (
	fastDecline = 0
	fastMore    = -1
)

func skipSpace(v []byte, i int) int {
	for i < len(v) && isSpace(v[i]) {
		i++
	}
	return i
}

// scanNumber returns the end of the JSON number at v[i:], or -1 when there is
// none: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(v []byte, i int) int {
	n := len(v)
	if i < n && v[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return -1
	case v[i] == '0':
		i++
	case v[i] >= '1' && v[i] <= '9':
		i = skipDigits(v, i)
	default:
		return -1
	}
	if i < n && v[i] == '.' {
		d := i + 1
		if i = skipDigits(v, d); i == d {
			return -1
		}
	}
	if i < n && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < n && (v[i] == '+' || v[i] == '-') {
			i++
		}
		d := i
		if i = skipDigits(v, d); i == d {
			return -1
		}
	}
	return i
}

// skipDigits returns the end of the run of digits at v[i:].
func skipDigits(v []byte, i int) int {
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	return i
}
