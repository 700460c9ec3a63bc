package format

import (
	"bytes"
	"fmt"
	"io"
)

// A body is the detail lines of an outbound file, rendered ahead of the file
// itself: intake renders each planned file's records once, while it still
// holds them in plaintext, and the dispatcher later writes the file as header,
// body and trailer (RenderWithBody) without reading the records again. The
// result is byte for byte what Render writes for the same records.
//
// Only a layout whose detail lines depend on nothing but the record and the
// batch (BodyPortable) can be rendered that way: a detail field holding the
// bank batch number, the file sequence, the date or time, or a file total is
// known only when the file is made.

// BodyPortable reports whether the layout's detail lines can be rendered
// before the file is planned (see the comment on bodies above).
func (l *Layout) BodyPortable() bool {
	if l.Kind != "outbound" {
		return false
	}
	for i := range l.Detail {
		switch l.Detail[i].id {
		case idBankBatchNo, idFileSeq, idDate, idTime, idCount, idTotal,
			idPaidCount, idPaidTotal, idFailedCount, idFailedTotal, idBatchCode, idBatchMessage:
			return false
		}
	}
	if l.Style == "xml" {
		rp := l.recordPath
		if len(rp) < 2 {
			return false
		}
		// A header element inside the record element would make the first
		// record's opening tags depend on the header.
		for i := range l.Header {
			if hasPrefix(l.Header[i].pathSeg, rp) {
				return false
			}
		}
	}
	return true
}

// BodyWriter renders the detail lines of a body. b needs only the
// batch-level fields (memo, subsidy, tenant, period, batch id): a portable
// layout uses nothing else.
type BodyWriter struct {
	rr  *renderer
	b   Batch
	src source
	cur Record
	n   int
	sum int64
}

// NewBodyWriter starts a body for a portable layout.
func (l *Layout) NewBodyWriter(w io.Writer, b Batch) (*BodyWriter, error) {
	if !l.BodyPortable() {
		return nil, fmt.Errorf("format: the layout's detail lines depend on the file (bank batch number, file sequence, date or totals)")
	}
	bw := &BodyWriter{rr: newRenderer(l, w), b: b}
	bw.src = source{b: &bw.b, s: &Summary{}}
	if l.Style == "xml" {
		// Records of a file are written with the record's parent open.
		bw.rr.xw.stack = append(bw.rr.xw.stack, l.recordPath[:len(l.recordPath)-1]...)
	} else {
		bw.rr.started = true // every detail line follows a line: its line ending goes first
	}
	return bw, nil
}

// Add renders one record. An error is a FieldError naming the record
// (intake's CheckRecord should have refused it already).
func (bw *BodyWriter) Add(r Record) error {
	bw.cur = r
	bw.src.r = &bw.cur
	if err := bw.rr.detail(&bw.src, r.Seq); err != nil {
		return err
	}
	bw.n++
	bw.sum += r.AmountFen
	return nil
}

// Flush writes what is buffered; call it before using the body.
func (bw *BodyWriter) Flush() error {
	if err := bw.rr.w.Flush(); err != nil {
		return fmt.Errorf("format: write: %w", err)
	}
	return nil
}

// Totals returns the number of records added and their sum in fen.
func (bw *BodyWriter) Totals() (int, int64) { return bw.n, bw.sum }

// Reset starts the next body on w with the same batch.
func (bw *BodyWriter) Reset(w io.Writer) {
	bw.rr.w.Reset(w)
	bw.n, bw.sum = 0, 0
}

// RenderWithBody writes the outbound file for b as Render would for the
// records a BodyWriter rendered into body: b's header, the body, b's trailer.
// The caller vouches that the body holds b.Count records adding up to
// b.TotalFen (a body carries its totals; see the gateway).
func (l *Layout) RenderWithBody(w io.Writer, b Batch, body []byte) error {
	if !l.BodyPortable() {
		return fmt.Errorf("format: RenderWithBody needs a portable outbound layout")
	}
	if len(body) == 0 || b.Count < 1 {
		return FieldError{Code: CodeRecordMismatch, Message: "a file needs at least one record"}
	}
	rr := newRenderer(l, w)
	s := Summary{Count: b.Count, TotalFen: b.TotalFen, BankBatchNo: b.BankBatchNo}
	src := source{b: &b, s: &s}
	if err := rr.begin(&src); err != nil {
		return err
	}
	if l.Style == "xml" {
		// Render's first record opens the record's parent after the header;
		// the body's records were rendered with it open.
		rr.xw.moveTo(l.recordPath[:len(l.recordPath)-1])
		if err := rr.xw.flush(); err != nil {
			return err
		}
	} else if !rr.started {
		// No header: the first detail line is the file's first line, without
		// the line ending the body put before it.
		if !bytes.HasPrefix(body, l.eol) {
			return fmt.Errorf("format: body does not start with the layout's line ending")
		}
		body = body[len(l.eol):]
	}
	if _, err := rr.w.Write(body); err != nil {
		return fmt.Errorf("format: write: %w", err)
	}
	if l.Style != "xml" {
		rr.started = true // a line was written (XML ends on its own terms)
	}
	return rr.end(&src)
}
