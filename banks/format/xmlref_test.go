package format

// This file keeps the encoding/xml parser as a test-only reference.

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// charsetReader decodes the encodings bank XML declares. GBK and GB2312 are
// subsets of GB18030, so one decoder reads all three.
func refCharsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToUpper(strings.ReplaceAll(label, "-", "")) {
	case "GB18030", "GBK", "GB2312", "CP936":
		return transform.NewReader(in, simplifiedchinese.GB18030.NewDecoder()), nil
	case "UTF8":
		return in, nil
	}
	return nil, fmt.Errorf("unsupported XML encoding %q", label)
}

// runXMLRef is the encoding/xml implementation that runXML replaced, kept as
// the reference of the differential fuzz target FuzzParseXMLDiff. It reads an XML message with encoding/xml's streaming token API. Memory
// is bounded by the element depth and one record's values; the element stack
// and the text buffer are reused.
func (p *parser) runXMLRef(r io.Reader) error {
	l := p.l
	br := bufio.NewReaderSize(r, readBuf)
	skipBOM(br, l.codec)
	dec := xml.NewDecoder(br)
	dec.CharsetReader = refCharsetReader
	var (
		stack    []string
		inRec    bool
		recDepth = len(l.recordPath)
		text     []byte
		key      []byte
		rootSeen bool
		index    int // record element index
		hdrSeen  = make([]bool, len(l.Header)+len(l.Trailer))
	)
	p.line = 0
	for p.stop == nil {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			line, _ := dec.InputPos()
			p.seq, p.line = 0, 0
			code := CodeShape
			if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF") {
				code = CodeTruncated
			}
			p.fe(nil, code, fmt.Sprintf("xml (input line %d): %v", line, err))
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && rootSeen {
				p.seq, p.line = 0, 0
				p.fe(nil, CodeShape, "second root element "+t.Name.Local)
				return nil
			}
			rootSeen = true
			stack = append(stack, t.Name.Local)
			text = text[:0]
			if !inRec && len(stack) == recDepth && equalPath(stack, l.recordPath) {
				inRec = true
				index++
				p.line = index
				p.resetRow()
			}
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			n := len(stack)
			if n == 0 || stack[n-1] != t.Name.Local {
				line, _ := dec.InputPos()
				p.seq, p.line = 0, 0
				p.fe(nil, CodeShape, fmt.Sprintf("xml (input line %d): unexpected </%s>", line, t.Name.Local))
				return nil
			}
			if inRec && n == recDepth {
				inRec = false
				p.xmlRecordEnd(index)
			} else if inRec {
				key = appendJoined(key[:0], stack[recDepth:])
				if i, ok := l.detailIdx[bytesString(key)]; ok {
					f := &l.Detail[i]
					if p.seen[f.id] && f.id != idConst {
						p.fe(f, CodeDuplicate, "element appears twice in one record")
					}
					p.setDetail(f, text, true)
				}
			} else {
				key = appendJoined(key[:0], stack)
				if i, ok := l.headerIdx[bytesString(key)]; ok {
					hdrSeen[i] = true
					var f *Field
					if i < len(l.Header) {
						f = &l.Header[i]
					} else {
						f = &l.Trailer[i-len(l.Header)]
					}
					save := p.line
					p.line = 0
					p.setHeader(f, text, true)
					p.line = save
				}
			}
			text = text[:0]
			stack = stack[:n-1]
		}
	}
	if p.stop != nil {
		return nil
	}
	p.seq, p.line = 0, 0
	if rootSeen && len(stack) == 0 {
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
	} else if len(stack) > 0 {
		line, _ := dec.InputPos()
		p.fe(nil, CodeTruncated, fmt.Sprintf("message ends inside <%s> (input line %d)", strings.Join(stack, "/"), line))
	}
	return nil
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func appendJoined(dst []byte, parts []string) []byte {
	for i, s := range parts {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = append(dst, s...)
	}
	return dst
}
