package format

import "fmt"

// xmlWriter is a hand-written streaming XML writer: it keeps only the stack
// of open element names (slices of the compiled paths, no copies) and writes
// one record at a time through the renderer's line buffer. It is several
// times faster than encoding/xml.Encoder and allocates nothing per record.
type xmlWriter struct {
	r     *renderer
	stack []string
}

func (x *xmlWriter) prolog() {
	x.r.line = append(x.r.line[:0], `<?xml version="1.0" encoding="`...)
	x.r.line = append(x.r.line, x.r.l.codec.name...)
	x.r.line = append(x.r.line, `"?>`...)
}

func (x *xmlWriter) indent(depth int) {
	if x.r.l.XML.Indent {
		x.r.line = append(x.r.line, x.r.l.eol...)
		for i := 0; i < depth; i++ {
			x.r.line = append(x.r.line, ' ', ' ')
		}
	}
}

// moveTo closes open elements until the stack is a prefix of p, then opens
// the rest of p.
func (x *xmlWriter) moveTo(p []string) {
	common := 0
	for common < len(x.stack) && common < len(p) && x.stack[common] == p[common] {
		common++
	}
	for len(x.stack) > common {
		n := len(x.stack) - 1
		x.indent(n)
		x.r.line = append(x.r.line, "</"...)
		x.r.line = append(x.r.line, x.stack[n]...)
		x.r.line = append(x.r.line, '>')
		x.stack = x.stack[:n]
	}
	for _, name := range p[common:] {
		x.indent(len(x.stack))
		x.r.line = append(x.r.line, '<')
		x.r.line = append(x.r.line, name...)
		x.r.line = append(x.r.line, '>')
		x.stack = append(x.stack, name)
	}
}

// leaf writes one element with the field's value at path full.
func (x *xmlWriter) leaf(f *Field, full []string, src *source, seq int) error {
	n := len(full) - 1
	x.moveTo(full[:n])
	x.indent(n)
	x.r.line = append(x.r.line, '<')
	x.r.line = append(x.r.line, full[n]...)
	x.r.line = append(x.r.line, '>')
	if err := x.r.field(f, src, seq, 0); err != nil {
		return err
	}
	x.r.line = append(x.r.line, "</"...)
	x.r.line = append(x.r.line, full[n]...)
	x.r.line = append(x.r.line, '>')
	return nil
}

func (x *xmlWriter) record(src *source, seq int) error {
	l := x.r.l
	rp := l.recordPath
	x.moveTo(rp)
	for i := range l.Detail {
		if err := x.leaf(&l.Detail[i], l.Detail[i].fullSeg, src, seq); err != nil {
			return err
		}
	}
	x.moveTo(rp[:len(rp)-1])
	return x.flush()
}

func (x *xmlWriter) flush() error {
	if _, err := x.r.w.Write(x.r.line); err != nil {
		return fmt.Errorf("format: write: %w", err)
	}
	x.r.line = x.r.line[:0]
	return nil
}

func (x *xmlWriter) close() error {
	x.moveTo(nil)
	x.r.line = append(x.r.line, x.r.l.eol...)
	return x.flush()
}
