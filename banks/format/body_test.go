package format

import (
	"bytes"
	"strings"
	"testing"
)

// renderViaBodies renders recs as bodies of per records each (as intake does)
// and assembles the file with RenderWithBody from the bodies of [first, last].
func renderViaBodies(t *testing.T, l *Layout, b Batch, n int) []byte {
	t.Helper()
	var body bytes.Buffer
	bw, err := l.NewBodyWriter(&body, Batch{Memo: b.Memo, SubsidyCode: b.SubsidyCode, SubsidyName: b.SubsidyName,
		Tenant: b.Tenant, Period: b.Period, BatchID: b.BatchID})
	if err != nil {
		t.Fatal(err)
	}
	for r := range genRecords(n, l.codec.name != "UTF-8" && l.codec.name != "GB18030") {
		if err := bw.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if c, _ := bw.Totals(); c != n {
		t.Fatalf("body holds %d records, want %d", c, n)
	}
	var out bytes.Buffer
	if err := l.RenderWithBody(&out, b, body.Bytes()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRenderWithBodyIsRender: header + body + trailer is byte for byte what
// Render writes, for every style, with and without a header or an XML indent.
func TestRenderWithBodyIsRender(t *testing.T) {
	type variant struct {
		name string
		edit func(l *Layout)
	}
	variants := []variant{
		{"as is", func(*Layout) {}},
		{"no header", func(l *Layout) { l.Header = nil }},
		{"no trailer", func(l *Layout) { l.Trailer = nil }},
		{"neither", func(l *Layout) { l.Header, l.Trailer = nil, nil }},
		{"no final newline", func(l *Layout) { f := false; l.FinalNewline = &f }},
		{"crlf", func(l *Layout) { l.LineEnding = "CRLF" }},
	}
	for _, s := range styles {
		for _, v := range variants {
			t.Run(s.name+"/"+v.name, func(t *testing.T) {
				l, _ := loadStyle(t, s)
				v.edit(l)
				if l.XML != nil && v.name == "crlf" {
					l.XML.Indent = !l.XML.Indent
				}
				if err := l.Compile(); err != nil {
					t.Skipf("variant does not compile for %s: %v", s.name, err)
				}
				if !l.BodyPortable() {
					t.Fatalf("%s detail lines should be portable", s.name)
				}
				for _, n := range []int{1, 2, 7, 1000} {
					b := testBatch(n)
					_, b.TotalFen = sumRecords(genRecords(n, l.codec.name != "UTF-8" && l.codec.name != "GB18030"))
					var want bytes.Buffer
					if err := l.Render(&want, b, genRecords(n, l.codec.name != "UTF-8" && l.codec.name != "GB18030")); err != nil {
						t.Fatal(err)
					}
					got := renderViaBodies(t, l, b, n)
					if !bytes.Equal(got, want.Bytes()) {
						t.Fatalf("n=%d: RenderWithBody differs from Render\n got: %q\nwant: %q", n, head(got), head(want.Bytes()))
					}
				}
			})
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 600 {
		return b[:600]
	}
	return b
}

// TestBodyPortable: a detail field known only when the file is made (bank
// batch number, file sequence, date, time) makes the layout not portable,
// and NewBodyWriter refuses it.
func TestBodyPortable(t *testing.T) {
	for _, f := range []string{"bank_batch_no", "file_seq", "date", "time"} {
		l, _ := loadStyle(t, styles[1])
		extra := Field{Name: f, Max: 20}
		if f == "date" || f == "time" {
			extra.Format = "YYYYMMDD"
		}
		l.Detail = append(l.Detail, extra)
		if err := l.Compile(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if l.BodyPortable() {
			t.Errorf("detail with %s reported portable", f)
		}
		if _, err := l.NewBodyWriter(&bytes.Buffer{}, Batch{}); err == nil || !strings.Contains(err.Error(), "depend on the file") {
			t.Errorf("detail with %s: NewBodyWriter err = %v", f, err)
		}
	}
	_, ret := loadStyle(t, styles[0])
	if ret.BodyPortable() {
		t.Error("a return layout reported portable")
	}
}
