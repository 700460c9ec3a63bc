package report

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzYuan: rendering fen as yuan is exact: the text parses back (integer
// arithmetic only) to the same fen, always with two decimals.
func FuzzYuan(f *testing.F) {
	for _, n := range []int64{0, 1, -1, 99, 100, 12345, -12345, 1<<63 - 1, -(1<<63 - 1)} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n == -1<<63 {
			return // no positive counterpart; amounts are > 0 anyway
		}
		s := Fen(n).Yuan()
		whole, frac, ok := strings.Cut(s, ".")
		if !ok || len(frac) != 2 {
			t.Fatalf("%d -> %q", n, s)
		}
		neg := strings.HasPrefix(whole, "-")
		w, err := strconv.ParseInt(strings.TrimPrefix(whole, "-"), 10, 64)
		if err != nil {
			t.Fatalf("%d -> %q: %v", n, s, err)
		}
		fr, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			t.Fatalf("%d -> %q: %v", n, s, err)
		}
		back := w*100 + fr
		if neg {
			back = -back
		}
		if back != n {
			t.Fatalf("%d -> %q -> %d", n, s, back)
		}
	})
}

// FuzzCSVRow: any text written to a CSV row reads back with encoding/csv as
// one field equal to the text, except that text a spreadsheet would run as
// a formula comes back with a quote mark in front.
func FuzzCSVRow(f *testing.F) {
	for _, s := range []string{"", "张三", "=HYPERLINK(\"x\")", "+86 138", "-1", "@SUM(A1)", "a,b", "line\nbreak", "\"quoted\"", "\tTab", "\r\n"} {
		f.Add(s, int64(12345))
	}
	f.Fuzz(func(t *testing.T, s string, fen int64) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, '\r') {
			return // text from the spool is UTF-8; encoding/csv turns \r\n into \n on reading
		}
		var buf bytes.Buffer
		tb, err := NewTable(&buf, CSV, "x", []Column{{"a", 1}, {"b", 1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Row([]any{s, Fen(fen)}); err != nil {
			t.Fatal(err)
		}
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		body, ok := bytes.CutPrefix(buf.Bytes(), []byte("\ufeff"))
		if !ok {
			t.Fatal("no BOM")
		}
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if len(recs) != 2 || len(recs[1]) != 2 {
			t.Fatalf("%q -> %q", s, recs)
		}
		want := s
		if s != "" && strings.ContainsRune("=+-@\t", rune(s[0])) {
			want = "'" + s
		}
		if recs[1][0] != want || (fen != -1<<63 && recs[1][1] != Fen(fen).Yuan()) {
			t.Fatalf("%q -> %q, want %q", s, recs[1], want)
		}
	})
}
