package format

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The XML parser (Parse and ParseRecords of an xml layout) is a hand-written
// streaming scanner over the raw bytes of the message. GB18030, GBK and UTF-8
// never use the bytes of < > & " ' / = ? ! - or white space inside a
// multi-byte character, so markup is found without decoding; where a trail
// byte can look like ASCII (names, and ']' of "]]>" in text) the scanner
// steps over whole GB18030 characters. Only the text of elements the layout
// names is decoded, with the codec of the encoding the declaration names
// (UTF-8 without one). It reads through a bufio.Reader (never the whole
// message) and accepts what encoding/xml's RawToken accepted in strict mode,
// with the same messages: the declaration (after a BOM), elements with
// attributes (checked, dropped), character data with the five predefined
// entities and numeric character references, CDATA, comments, processing
// instructions and directives (skipped), self-closing elements; names are
// compared by their local part, as before. FuzzParseXMLDiff holds it to the
// old encoding/xml parser (xmlref_test.go) on well-formed input.
//
// It is stricter where the old parser was wrong: bytes invalid in the
// declared encoding in a value the layout keeps are bad_encoding (they became
// U+FFFD; GB18030's undefined single byte 0x80 included), non-blank text or
// CDATA outside the root element is bad_shape (it was ignored), an XML
// declaration anywhere but first is bad_shape (it switched the decoder
// mid-message), and a failing reader is Parse's error, not a problem of the
// file. Invalid bytes in elements the layout ignores are not looked at.

// xmlLabelCodec maps the encoding an XML declaration names to a codec. GBK,
// GB2312 and CP936 are read as GB18030 (their superset), as before.
func xmlLabelCodec(label string) (*codec, error) {
	switch strings.ToUpper(strings.ReplaceAll(label, "-", "")) {
	case "GB18030", "GBK", "GB2312", "CP936":
		return gb18030Codec, nil
	case "UTF8":
		return utf8Codec, nil
	}
	return nil, fmt.Errorf("unsupported XML encoding %q", label)
}

// xmlErr is a problem with the message's XML itself (not with a value):
// parsing stops there.
type xmlErr struct {
	msg   string // the whole message
	trunc bool   // the message ended too early
}

func (e *xmlErr) Error() string { return e.msg }

// xmlScanner hands out the bytes of a bufio.Reader's buffer without copying.
type xmlScanner struct {
	br    *bufio.Reader
	win   []byte // buffered bytes not yet discarded from br
	i     int    // bytes of win consumed
	lines int    // newlines in the bytes already discarded
	err   error  // read error other than io.EOF
	eof   bool   // the reader is exhausted (after win)
}

// fill discards what was consumed and buffers more; false at the end.
func (s *xmlScanner) fill() bool {
	if s.eof || s.err != nil {
		return false
	}
	s.lines += bytes.Count(s.win[:s.i], []byte{'\n'})
	s.br.Discard(s.i)
	s.win, s.i = nil, 0
	w, err := s.br.Peek(s.br.Size())
	s.win = w
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil && err != bufio.ErrBufferFull:
		s.err = err
	}
	return len(w) > 0
}

func (s *xmlScanner) getc() (byte, bool) {
	if s.i < len(s.win) {
		b := s.win[s.i]
		s.i++
		return b, true
	}
	return s.getcSlow()
}

func (s *xmlScanner) getcSlow() (byte, bool) {
	if !s.fill() {
		return 0, false
	}
	b := s.win[s.i]
	s.i++
	return b, true
}

// unget gives back the byte getc just returned (always still in win).
func (s *xmlScanner) unget() { s.i-- }

// line is the 1-based input line of the current position.
func (s *xmlScanner) line() int { return 1 + s.lines + bytes.Count(s.win[:s.i], []byte{'\n'}) }

type xmlParser struct {
	p   *parser
	s   xmlScanner
	dc  *codec // the declared encoding (UTF-8 until a declaration says otherwise)
	mb  bool   // dc is GB18030: a byte >= 0x80 starts a multi-byte character
	tab *[256]bool

	// the text of the current element since its last tag
	raw     []byte // in the document's encoding, not yet decoded
	dec     []byte // decoded UTF-8 (once an entity or markup interrupted the text)
	decoded bool
	decErr  string
	val     []byte // scratch: the decoded value handed to the parser

	name   []byte // scratch: the name being read
	elem   []byte // the name of the element whose start tag is being read
	path   []byte // local names of the open elements joined by '/'
	starts []int  // offset of each open element's name in path

	goodNames map[string]struct{} // non-ASCII names already found valid (raw bytes)

	sawMarkup bool // a tag, comment, PI or directive was read (the declaration must come first)
}

// Bytes that end the fast path of character data.
var xmlStopUTF8, xmlStopMB [256]bool

func init() {
	for c := 0; c < 0x20; c++ {
		if c != '\t' && c != '\n' {
			xmlStopUTF8[c] = true
		}
	}
	for _, c := range "<&]>" {
		xmlStopUTF8[c] = true
	}
	xmlStopMB = xmlStopUTF8
	for c := 0x80; c < 0x100; c++ {
		xmlStopMB[c] = true
	}
}

// xmlReadBuf is the reader's buffer size (tests shrink it to move the
// buffer's edges through every kind of token).
var xmlReadBuf = readBuf

// runXML parses an XML message. Memory is bounded by the reader's buffer,
// the element depth and one element's text; nothing is allocated per record
// but the result's one string.
func (p *parser) runXML(r io.Reader) error {
	l := p.l
	br := bufio.NewReaderSize(r, xmlReadBuf)
	skipBOM(br, l.codec)
	x := &xmlParser{p: p, dc: utf8Codec, tab: &xmlStopUTF8}
	x.s.br = br
	x.raw = make([]byte, 0, 256)
	x.val = make([]byte, 0, 256)
	err := x.run()
	var xe *xmlErr
	if errors.As(err, &xe) {
		p.seq, p.line = 0, 0
		code := CodeShape
		if xe.trunc {
			code = CodeTruncated
		}
		p.fe(nil, code, xe.msg)
		return nil
	}
	return err
}

// synErr words a problem as encoding/xml's SyntaxError did.
func (x *xmlParser) synErr(msg string) error {
	line := x.s.line()
	return &xmlErr{msg: fmt.Sprintf("xml (input line %d): XML syntax error on line %d: %s", line, line, msg)}
}

// eofErr is returned when the input ends inside markup (or a read failed).
func (x *xmlParser) eofErr() error {
	if x.s.err != nil {
		return fmt.Errorf("format: read: %w", x.s.err)
	}
	line := x.s.line()
	return &xmlErr{msg: fmt.Sprintf("xml (input line %d): XML syntax error on line %d: unexpected EOF", line, line), trunc: true}
}

func (x *xmlParser) mustgetc() (byte, error) {
	b, ok := x.s.getc()
	if !ok {
		return 0, x.eofErr()
	}
	return b, nil
}

func (x *xmlParser) run() error {
	p, l := x.p, x.p.l
	var (
		recDepth = len(l.recordPath)
		recKey   = strings.Join(l.recordPath, "/")
		inRec    bool
		rootSeen bool
		index    int // record element index
		hdrSeen  = make([]bool, len(l.Header)+len(l.Trailer))
	)
	p.line = 0

	// end closes the innermost element, whose local name is local.
	end := func(local []byte) error {
		n := len(x.starts)
		if n == 0 || !bytes.Equal(x.path[x.starts[n-1]:], local) {
			line := x.s.line()
			return &xmlErr{msg: fmt.Sprintf("xml (input line %d): unexpected </%s>", line, x.display(local))}
		}
		if inRec && n == recDepth {
			inRec = false
			p.xmlRecordEnd(index)
		} else if inRec {
			if i, ok := l.detailIdx[bytesString(x.path[x.starts[recDepth]:])]; ok {
				f := &l.Detail[i]
				if p.seen[f.id] && f.id != idConst {
					p.fe(f, CodeDuplicate, "element appears twice in one record")
				}
				if v, ok := x.value(); ok {
					p.setDetail(f, v, true)
				} else {
					p.seen[f.id] = true
					p.fe(f, CodeBadEncoding, x.decErr)
				}
			}
		} else if i, ok := l.headerIdx[bytesString(x.path)]; ok {
			hdrSeen[i] = true
			var f *Field
			if i < len(l.Header) {
				f = &l.Header[i]
			} else {
				f = &l.Trailer[i-len(l.Header)]
			}
			save := p.line
			p.line = 0
			if v, ok := x.value(); ok {
				p.setHeader(f, v, true)
			} else {
				p.fe(f, CodeBadEncoding, x.decErr)
			}
			p.line = save
		}
		x.resetText()
		st := x.starts[n-1]
		if n > 1 {
			st--
		}
		x.path = x.path[:st]
		x.starts = x.starts[:n-1]
		return nil
	}

	for p.stop == nil {
		b, ok := x.s.getc()
		if !ok {
			if x.s.err != nil {
				return fmt.Errorf("format: read: %w", x.s.err)
			}
			break
		}
		if b != '<' {
			x.s.unget()
			if err := x.charData(false); err != nil {
				return err
			}
			if len(x.starts) == 0 {
				if !x.blankText() {
					line := x.s.line()
					return &xmlErr{msg: fmt.Sprintf("xml (input line %d): text outside the root element", line)}
				}
				x.resetText() // white space between top-level markup is not kept
			}
			continue
		}
		b, err := x.mustgetc()
		if err != nil {
			return err
		}
		switch b {
		case '/':
			local, _, ok := x.fastName(0)
			if !ok {
				local, err = x.nsname("expected element name after </")
				if err != nil {
					return err
				}
				x.space()
				if b, err = x.mustgetc(); err != nil {
					return err
				}
				if b != '>' {
					return x.synErr("invalid characters between </" + x.display(local) + " and >")
				}
			}
			if err := end(local); err != nil {
				return err
			}
		case '?':
			if err := x.procInst(rootSeen); err != nil {
				return err
			}
		case '!':
			if err := x.bang(); err != nil {
				return err
			}
		default:
			x.s.unget()
			local, empty, ok := x.fastName(1)
			if !ok {
				if local, empty, err = x.startTag(); err != nil {
					return err
				}
			}
			if len(x.starts) == 0 && rootSeen {
				p.seq, p.line = 0, 0
				p.fe(nil, CodeShape, "second root element "+x.display(local))
				return nil
			}
			rootSeen = true
			if len(x.starts) > 0 {
				x.path = append(x.path, '/')
			}
			x.starts = append(x.starts, len(x.path))
			x.path = append(x.path, local...)
			x.resetText()
			if !inRec && len(x.starts) == recDepth && bytesString(x.path) == recKey {
				inRec = true
				index++
				p.line = index
				p.resetRow()
			}
			if empty {
				if err := end(local); err != nil {
					return err
				}
			}
		}
		x.sawMarkup = true
	}
	if p.stop != nil {
		return nil
	}
	p.seq, p.line = 0, 0
	if rootSeen && len(x.starts) == 0 {
		for i, seen := range hdrSeen {
			var f *Field
			if i < len(l.Header) {
				f = &l.Header[i]
			} else {
				f = &l.Trailer[i-len(l.Header)]
			}
			if !seen && !f.Optional && f.id != idFiller {
				p.fe(f, CodeMissing, "element missing")
			}
		}
	}
	if !rootSeen {
		p.fe(nil, CodeTruncated, "empty message")
	} else if len(x.starts) > 0 {
		p.fe(nil, CodeTruncated, fmt.Sprintf("message ends inside <%s> (input line %d)", x.display(x.path), x.s.line()))
	}
	return nil
}

// fastName reads, when it lies whole in the buffer, a plain ASCII name
// without prefix and the '>' (or, if tag is 1, "/>") that ends the tag: the
// common "<Seq>" and "</Seq>". Otherwise it reads nothing and the caller
// takes the general path. The name is valid until the next read.
func (x *xmlParser) fastName(tag int) (name []byte, empty, ok bool) {
	s := &x.s
	w, i := s.win, s.i
	for i < len(w) && xmlNameASCII[w[i]] {
		i++
	}
	if i == s.i || i >= len(w) {
		return nil, false, false
	}
	if c := w[s.i]; c == '.' || c == '-' || c <= '9' {
		return nil, false, false
	}
	switch {
	case w[i] == '>':
	case tag == 1 && w[i] == '/' && i+1 < len(w) && w[i+1] == '>':
		empty = true
	default:
		return nil, false, false
	}
	name = w[s.i:i]
	s.i = i + 1
	if empty {
		s.i++
	}
	return name, empty, true
}

// xmlNameASCII: ASCII name bytes but ':' (a prefix takes the general path).
var xmlNameASCII = func() (t [256]bool) {
	for c := 0; c < 0x80; c++ {
		t[c] = isNameByte(byte(c)) && c != ':'
	}
	return
}()

// display renders a raw name or path for a message.
func (x *xmlParser) display(b []byte) string {
	if isASCIIBytes(b) || x.dc.kind == encUTF8 {
		return string(b)
	}
	out, err := x.dc.appendDecode(nil, b)
	if err != nil {
		return fmt.Sprintf("%q", b)
	}
	return string(out)
}

func (x *xmlParser) resetText() {
	x.raw = x.raw[:0]
	x.decoded = false
	x.decErr = ""
}

// flushRaw decodes the pending raw text into dec: an entity's expansion (in
// UTF-8) or markup that interrupts the text must not be glued to the bytes
// of a neighbouring multi-byte character.
func (x *xmlParser) flushRaw() {
	if !x.decoded {
		x.decoded = true
		x.dec = x.dec[:0]
	}
	if len(x.raw) == 0 {
		return
	}
	var err error
	x.dec, err = x.dc.appendDecode(x.dec, x.raw)
	if err != nil && x.decErr == "" {
		x.decErr = err.Error()
	}
	x.raw = x.raw[:0]
}

// value is the current element's text in UTF-8; false if its bytes are not
// valid in the declared encoding (x.decErr says why).
func (x *xmlParser) value() ([]byte, bool) {
	if x.decoded {
		x.flushRaw()
		return x.dec, x.decErr == ""
	}
	if x.dc.kind == encUTF8 || isASCIIBytes(x.raw) {
		if x.dc.kind == encUTF8 && !utf8.Valid(x.raw) {
			x.decErr = "invalid UTF-8 bytes"
			return nil, false
		}
		return x.raw, true
	}
	var err error
	x.val, err = x.dc.appendDecode(x.val[:0], x.raw)
	if err != nil {
		x.decErr = err.Error()
		return nil, false
	}
	return x.val, true
}

// blankText reports whether the text read since the last tag is only XML
// white space.
func (x *xmlParser) blankText() bool {
	t := x.raw
	if x.decoded {
		x.flushRaw()
		t = x.dec
	}
	for _, c := range t {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// mbTail appends to dst the continuation bytes of the GB18030 character whose
// lead byte (0x81..0xFE) was just read, as far as they are there; the
// decoder judges validity later.
func (x *xmlParser) mbTail(dst []byte) []byte {
	b, ok := x.s.getc()
	if !ok {
		return dst
	}
	switch {
	case b >= 0x40 && b <= 0xFE && b != 0x7F:
		return append(dst, b)
	case b >= 0x30 && b <= 0x39:
		dst = append(dst, b)
	default:
		x.s.unget()
		return dst
	}
	if b, ok = x.s.getc(); !ok {
		return dst
	}
	if b < 0x81 || b > 0xFE {
		x.s.unget()
		return dst
	}
	dst = append(dst, b)
	if b, ok = x.s.getc(); !ok {
		return dst
	}
	if b < 0x30 || b > 0x39 {
		x.s.unget()
		return dst
	}
	return append(dst, b)
}

// charData reads character data up to the next '<' (or the end) into the
// element's text: \r and \r\n become \n, entities are expanded, "]]>" and
// control characters are errors. In a CDATA section (cdata) it reads up to
// "]]>" instead and expands nothing.
func (x *xmlParser) charData(cdata bool) error {
	s := &x.s
	brackets := 0 // consecutive ']' just read
	for {
		// Fast path: a run of ordinary bytes inside the buffer.
		w, i, tab := s.win, s.i, x.tab
		start := i
		for i < len(w) && !tab[w[i]] {
			i++
		}
		if i > start {
			x.raw = append(x.raw, w[start:i]...)
			s.i = i
			brackets = 0
		}
		b, ok := s.getc()
		if !ok {
			if s.err != nil {
				return x.eofErr()
			}
			if cdata {
				line := s.line()
				return &xmlErr{msg: fmt.Sprintf("xml (input line %d): XML syntax error on line %d: unexpected EOF in CDATA section", line, line), trunc: true}
			}
			return nil
		}
		switch {
		case b == ']':
			x.raw = append(x.raw, b)
			if brackets < 2 {
				brackets++
			}
			continue
		case b == '>':
			if brackets == 2 {
				if cdata {
					x.raw = x.raw[:len(x.raw)-2]
					return nil
				}
				return x.synErr("unescaped ]]> not in CDATA section")
			}
			x.raw = append(x.raw, b)
		case b == '<' && !cdata:
			s.unget()
			return nil
		case b == '&' && !cdata:
			if err := x.entity(true); err != nil {
				return err
			}
		case b == '\r':
			x.raw = append(x.raw, '\n')
			if b, ok = s.getc(); ok && b != '\n' {
				s.unget()
			}
		case b < 0x20 && b != '\t' && b != '\n':
			return x.synErr(fmt.Sprintf("illegal character code %U", rune(b)))
		case b >= 0x80 && x.mb:
			x.raw = append(x.raw, b)
			if b >= 0x81 && b <= 0xFE {
				x.raw = x.mbTail(x.raw)
			}
		default: // '<' or '&' inside CDATA, ordinary bytes
			x.raw = append(x.raw, b)
		}
		brackets = 0
	}
}

// entity reads an entity or character reference after '&'; keep appends
// its expansion to the element's text.
func (x *xmlParser) entity(keep bool) error {
	b, err := x.mustgetc()
	if err != nil {
		return err
	}
	var r rune
	if b == '#' {
		ref := append(x.name[:0], "&#"...)
		if b, err = x.mustgetc(); err != nil {
			return err
		}
		base := 10
		if b == 'x' {
			base = 16
			ref = append(ref, b)
			if b, err = x.mustgetc(); err != nil {
				return err
			}
		}
		digits := len(ref)
		for '0' <= b && b <= '9' || base == 16 && ('a' <= b && b <= 'f' || 'A' <= b && b <= 'F') {
			ref = append(ref, b)
			if b, err = x.mustgetc(); err != nil {
				return err
			}
		}
		x.name = ref
		if b != ';' {
			x.s.unget()
			return x.synErr("invalid character entity " + string(ref) + " (no semicolon)")
		}
		n, perr := strconv.ParseUint(string(ref[digits:]), base, 64)
		if perr != nil || n > unicode.MaxRune {
			return x.synErr("invalid character entity " + string(ref) + ";")
		}
		r = rune(n)
		if !utf8.ValidRune(r) {
			r = utf8.RuneError // what string(rune(n)) gave for a surrogate
		}
		if !isInCharacterRange(r) {
			return x.synErr(fmt.Sprintf("illegal character code %U", r))
		}
	} else {
		x.s.unget()
		name, err := x.readName(x.name[:0])
		if err != nil {
			return err
		}
		x.name = name
		if b, err = x.mustgetc(); err != nil {
			return err
		}
		if b != ';' {
			x.s.unget()
			return x.synErr("invalid character entity &" + x.display(name) + " (no semicolon)")
		}
		switch string(name) {
		case "lt":
			r = '<'
		case "gt":
			r = '>'
		case "amp":
			r = '&'
		case "apos":
			r = '\''
		case "quot":
			r = '"'
		default:
			return x.synErr("invalid character entity &" + x.display(name) + ";")
		}
	}
	if keep {
		x.flushRaw()
		x.dec = utf8.AppendRune(x.dec, r)
	}
	return nil
}

func isInCharacterRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-'
}

// readName appends to dst the bytes of a name: up to the first ASCII byte
// that cannot be in a name (multi-byte characters whole). It returns dst
// unchanged if no name starts here.
func (x *xmlParser) readName(dst []byte) ([]byte, error) {
	s := &x.s
	// Fast path: the name ends inside the buffer and is ASCII.
	w, i := s.win, s.i
	for i < len(w) && w[i] < utf8.RuneSelf && isNameByte(w[i]) {
		i++
	}
	if i < len(w) && w[i] < utf8.RuneSelf {
		dst = append(dst, w[s.i:i]...)
		s.i = i
		return dst, nil
	}
	for {
		b, err := x.mustgetc()
		if err != nil {
			return dst, err
		}
		if b < utf8.RuneSelf && !isNameByte(b) {
			s.unget()
			return dst, nil
		}
		dst = append(dst, b)
		if x.mb && b >= 0x81 && b <= 0xFE {
			dst = x.mbTail(dst)
		}
	}
}

// nameAt reads a name and checks it is an XML name; ok is false (with a nil
// error) if no name starts here.
func (x *xmlParser) nameAt() (name []byte, ok bool, err error) {
	name, err = x.readName(x.name[:0])
	x.name = name
	if err != nil || len(name) == 0 {
		return name, false, err
	}
	if !x.isName(name) {
		return name, false, x.synErr("invalid XML name: " + x.display(name))
	}
	return name, true, nil
}

// isName: ASCII names are checked here; a name with other characters is
// decoded and checked by encoding/xml itself (rare, allowed to allocate).
func (x *xmlParser) isName(name []byte) bool {
	if isASCIIBytes(name) {
		c := name[0]
		return c != '.' && c != '-' && (c < '0' || c > '9')
	}
	if _, ok := x.goodNames[bytesString(name)]; ok {
		return true
	}
	u, err := x.dc.appendDecode(nil, name)
	if err != nil || !utf8.Valid(u) || bytes.ContainsRune(u, utf8.RuneError) {
		return false
	}
	d := xml.NewDecoder(strings.NewReader("<?" + string(u) + " ?>"))
	t, err := d.RawToken()
	pi, ok := t.(xml.ProcInst)
	if !(err == nil && ok && pi.Target == string(u)) {
		return false
	}
	// Banks that name elements in Chinese repeat a few names per record.
	if x.goodNames == nil {
		x.goodNames = map[string]struct{}{}
	}
	if len(x.goodNames) < 256 {
		x.goodNames[string(name)] = struct{}{}
	}
	return true
}

// nsname reads an element or attribute name and returns its local part
// (encoding/xml's rule: "a:b" -> "b"; "a:", ":b", "a" whole; "a:b:c" fails
// with what).
func (x *xmlParser) nsname(what string) ([]byte, error) {
	name, ok, err := x.nameAt()
	if err != nil {
		return nil, err
	}
	if !ok || bytes.Count(name, []byte{':'}) > 1 {
		return nil, x.synErr(what)
	}
	if k := bytes.IndexByte(name, ':'); k > 0 && k < len(name)-1 {
		return name[k+1:], nil
	}
	return name, nil
}

func (x *xmlParser) space() {
	for {
		b, ok := x.s.getc()
		if !ok {
			return
		}
		if b != ' ' && b != '\r' && b != '\n' && b != '\t' {
			x.s.unget()
			return
		}
	}
}

// startTag reads an element's start tag after '<': its local name (valid
// until the next name is read) and whether it closes itself. Attributes are
// checked and dropped.
func (x *xmlParser) startTag() (local []byte, empty bool, err error) {
	local, err = x.nsname("expected element name after <")
	if err != nil {
		return nil, false, err
	}
	// Attribute names reuse x.name: keep the element's name apart.
	x.elem = append(x.elem[:0], local...)
	for {
		x.space()
		b, err := x.mustgetc()
		if err != nil {
			return nil, false, err
		}
		if b == '/' {
			if b, err = x.mustgetc(); err != nil {
				return nil, false, err
			}
			if b != '>' {
				return nil, false, x.synErr("expected /> in element")
			}
			empty = true
			break
		}
		if b == '>' {
			break
		}
		x.s.unget()
		if _, err := x.nsname("expected attribute name in element"); err != nil {
			return nil, false, err
		}
		x.space()
		if b, err = x.mustgetc(); err != nil {
			return nil, false, err
		}
		if b != '=' {
			return nil, false, x.synErr("attribute name without = in element")
		}
		x.space()
		if b, err = x.mustgetc(); err != nil {
			return nil, false, err
		}
		if b != '"' && b != '\'' {
			return nil, false, x.synErr("unquoted or missing attribute value in element")
		}
		if err := x.attrValue(b); err != nil {
			return nil, false, err
		}
	}
	return x.elem, empty, nil
}

// attrValue reads a quoted attribute value after its opening quote and
// drops it.
func (x *xmlParser) attrValue(quote byte) error {
	for {
		b, ok := x.s.getc()
		if !ok {
			if x.s.err != nil {
				return x.eofErr()
			}
			return nil // the caller's next read reports the end
		}
		switch {
		case b == quote:
			return nil
		case b == '<':
			return x.synErr("unescaped < inside quoted string")
		case b == '&':
			if err := x.entity(false); err != nil {
				return err
			}
		case b < 0x20 && b != '\t' && b != '\n' && b != '\r':
			return x.synErr(fmt.Sprintf("illegal character code %U", rune(b)))
		}
	}
}

// procInst reads a processing instruction after "<?"; the XML declaration
// sets the encoding.
func (x *xmlParser) procInst(rootSeen bool) error {
	target, ok, err := x.nameAt()
	if err != nil {
		return err
	}
	if !ok {
		return x.synErr("expected target name after <?")
	}
	decl := string(target) == "xml"
	x.space()
	// The content is kept only for the declaration (one short line).
	content := x.val[:0]
	var b0 byte
	for {
		b, err := x.mustgetc()
		if err != nil {
			return err
		}
		if b0 == '?' && b == '>' {
			break
		}
		if decl {
			content = append(content, b)
		}
		b0 = b
	}
	if !decl {
		return nil
	}
	if len(content) > 0 {
		content = content[:len(content)-1] // the '?'
	}
	x.val = content
	line := x.s.line()
	if x.sawMarkup || rootSeen {
		return &xmlErr{msg: fmt.Sprintf("xml (input line %d): the XML declaration is not at the start of the message", line)}
	}
	c := string(content)
	if ver := procInstParam("version", c); ver != "" && ver != "1.0" {
		return &xmlErr{msg: fmt.Sprintf("xml (input line %d): xml: unsupported version %q; only version 1.0 is supported", line, ver)}
	}
	if enc := procInstParam("encoding", c); enc != "" && !strings.EqualFold(enc, "utf-8") {
		dc, err := xmlLabelCodec(enc)
		if err != nil {
			return &xmlErr{msg: fmt.Sprintf("xml (input line %d): xml: opening charset %q: %v", line, enc, err)}
		}
		x.dc = dc
		x.mb = dc.kind != encUTF8
		if x.mb {
			x.tab = &xmlStopMB
		}
	}
	return nil
}

// procInstParam is encoding/xml's reading of a pseudo-attribute of the
// declaration (param="value" or param='value').
func procInstParam(param, s string) string {
	param += "="
	lenp := len(param)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := strings.Index(sub, param)
		if k < 0 || lenp+k >= len(sub) {
			return ""
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}

// bang reads what follows "<!": a comment, a CDATA section (its text joins
// the element's) or a directive (skipped).
func (x *xmlParser) bang() error {
	b, err := x.mustgetc()
	if err != nil {
		return err
	}
	switch b {
	case '-':
		if b, err = x.mustgetc(); err != nil {
			return err
		}
		if b != '-' {
			return x.synErr("invalid sequence <!- not part of <!--")
		}
		return x.comment()
	case '[':
		for i := 0; i < 6; i++ {
			if b, err = x.mustgetc(); err != nil {
				return err
			}
			if b != "CDATA["[i] {
				return x.synErr("invalid <![ sequence")
			}
		}
		// The section's bytes must not be glued to a neighbouring
		// multi-byte character: decode what came before.
		if len(x.raw) > 0 || x.decoded {
			x.flushRaw()
		}
		if err := x.charData(true); err != nil {
			return err
		}
		if len(x.starts) == 0 && !x.blankText() {
			line := x.s.line()
			return &xmlErr{msg: fmt.Sprintf("xml (input line %d): text outside the root element", line)}
		}
		x.flushRaw()
		return nil
	}
	// A directive (<!DOCTYPE ...>): skipped the way encoding/xml skipped it.
	inquote := byte(0)
	depth := 0
	for {
		if b, err = x.mustgetc(); err != nil {
			return err
		}
		if inquote == 0 && b == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case b == inquote:
			inquote = 0
		case inquote != 0:
		case b == '\'' || b == '"':
			inquote = b
		case b == '>':
			depth--
		case b == '<':
			const s = "!--"
			for i := 0; i < len(s); i++ {
				if b, err = x.mustgetc(); err != nil {
					return err
				}
				if b != s[i] {
					depth++
					goto handle
				}
			}
			var b0, b1 byte
			for {
				if b, err = x.mustgetc(); err != nil {
					return err
				}
				if b0 == '-' && b1 == '-' && b == '>' {
					break
				}
				b0, b1 = b1, b
			}
		}
	}
	if len(x.raw) > 0 {
		x.flushRaw()
	}
	return nil
}

// comment skips a comment after "<!--"; "--" inside is an error.
func (x *xmlParser) comment() error {
	var b0, b1 byte
	for {
		b, err := x.mustgetc()
		if err != nil {
			return err
		}
		if b0 == '-' && b1 == '-' {
			if b != '>' {
				return x.synErr(`invalid sequence "--" not allowed in comments`)
			}
			break
		}
		b0, b1 = b1, b
	}
	// Text on both sides of the comment belongs to one value, but the
	// bytes must not form a character across it.
	if len(x.raw) > 0 {
		x.flushRaw()
	}
	return nil
}

func (p *parser) xmlRecordEnd(index int) {
	l := p.l
	for i := range l.Detail {
		f := &l.Detail[i]
		if p.seen[f.id] || f.Optional || f.id == idConst {
			continue
		}
		if fieldInfo[f.id].number || requiredText(f) {
			p.fe(f, CodeMissing, "element missing or blank")
		}
	}
	p.finishRow()
	p.text = [numFieldIDs]span{}
}
