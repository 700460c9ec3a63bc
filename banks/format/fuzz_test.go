package format

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets for every parser. Seeds: the golden return files of the
// shipped profiles plus testdata/fuzz/<target>/ (written by
// `go test ./banks/format -run TestWriteFuzzCorpus -writecorpus`). Run e.g.
//
//	go test ./banks/format -run '^$' -fuzz FuzzParseFixed -fuzztime 30s

var writeCorpus = flag.Bool("writecorpus", false, "write the fuzz seed corpus into testdata/fuzz")

var fuzzTargets = map[string]string{ // target -> profile whose golden inputs seed it
	"FuzzParseFixed":     "rcc",
	"FuzzParseDelimited": "pipe",
	"FuzzParseXML":       "xml",
}

func goldenInputs(t testing.TB, profile string) map[string][]byte {
	out := map[string][]byte{}
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "banks", profile, "*", "input"))
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(filepath.Dir(p))] = b
	}
	return out
}

func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -writecorpus to (re)write testdata/fuzz")
	}
	write := func(target, name string, vals ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			default:
				fmt.Fprintf(&b, "%T(%v)\n", v, v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for target, prof := range fuzzTargets {
		for name, in := range goldenInputs(t, prof) {
			write(target, name, in)
		}
	}
	write("FuzzParseQuoted", "basic", []byte("1,\"a,\"\"b\",1.50,OK,x\n"))
	for _, s := range styles {
		out, _ := loadStyle(t, s)
		var buf bytes.Buffer
		b := testBatch(3)
		_, b.TotalFen = sumRecords(genRecords(3, true))
		if err := out.Render(&buf, b, genRecords(3, true)); err != nil {
			t.Fatal(err)
		}
		write("FuzzParseRecords", s.name, uint8(len(s.name)%3), buf.Bytes())
	}
	write("FuzzRenderParse", "basic", "张三", "6222021234567890128", "11010519491231002X", "备注", int64(12345))
	write("FuzzRenderParse", "dots", "阿依古丽•买买提", "62", "x", "a|b", int64(1))
	data, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "banks", "rcc", "return.yaml"))
	write("FuzzParseLayout", "rcc", data)
	data, _ = os.ReadFile(filepath.Join("..", "..", "testdata", "banks", "xml", "outbound.yaml"))
	write("FuzzParseLayout", "xml", data)
	data, _ = os.ReadFile(filepath.Join("..", "..", "testdata", "banks", "pipe", "render_all", "batch.json"))
	write("FuzzReadBatchJSON", "pipe", data)
}

// checkParse runs a return layout over arbitrary bytes and checks what must
// hold whatever the input: no panic; on success the summary adds up to the
// results; on failure every problem has a code and a plausible line.
func checkParse(t *testing.T, l *Layout, data []byte) {
	var n int
	var total, paid int64
	sum, err := l.Parse(bytes.NewReader(data), func(r Result) error {
		n++
		total += r.AmountFen
		if r.Paid {
			paid += r.AmountFen
		}
		if r.AmountFen < 0 || r.Line <= 0 {
			t.Fatalf("result %+v", r)
		}
		return nil
	})
	if err == nil {
		if sum.Count != n || sum.TotalFen != total || sum.PaidFen != paid || sum.PaidCount+sum.FailedCount != n {
			t.Fatalf("summary %+v vs %d results %d fen", sum, n, total)
		}
		return
	}
	var pe ParseErrors
	if !errors.As(err, &pe) || len(pe) == 0 {
		t.Fatalf("error is not ParseErrors: %v", err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, e := range pe {
		if e.Code == "" || e.Line < 0 || (l.Style != "xml" && e.Line > lines+1) {
			t.Fatalf("bad problem %+v (file has %d lines)", e, lines)
		}
	}
}

func fuzzParse(f *testing.F, target string, s style) {
	for _, in := range goldenInputs(f, fuzzTargets[target]) {
		f.Add(in)
	}
	_, ret := loadStyle(f, s)
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, ret, data) })
}

func FuzzParseFixed(f *testing.F)     { fuzzParse(f, "FuzzParseFixed", styles[0]) }
func FuzzParseDelimited(f *testing.F) { fuzzParse(f, "FuzzParseDelimited", styles[1]) }
func FuzzParseXML(f *testing.F)       { fuzzParse(f, "FuzzParseXML", styles[2]) }

func FuzzParseQuoted(f *testing.F) {
	l, err := ParseLayout([]byte(`
kind: return
style: delimited
encoding: GB18030
delimiter: ","
quote: '"'
detail: [{name: seq}, {name: name}, {name: amount, unit: yuan}, {name: code}, {name: message, optional: true}]
`))
	if err != nil {
		f.Fatal(err)
	}
	l.SetPaidCodes([]string{"OK"})
	f.Add([]byte("1,\"a,\"\"b\",1.50,OK,x\n"))
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, l, data) })
}

func FuzzParseRecords(f *testing.F) {
	var outs []*Layout
	for _, s := range styles {
		out, _ := loadStyle(f, s)
		outs = append(outs, out)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		l := outs[int(which)%len(outs)]
		n := 0
		var total int64
		sum, err := l.ParseRecords(bytes.NewReader(data), func(r Record) error {
			n++
			total += r.AmountFen
			return nil
		})
		if err == nil && (sum.Count != n || sum.TotalFen != total) {
			t.Fatalf("summary %+v vs %d records", sum, n)
		}
	})
}

// FuzzRenderParse: whatever CheckRecord accepts, Render writes and
// ParseRecords reads back unchanged (modulo surrounding blanks, which layouts
// do not keep, and the rcc layout's middle-dot normalization).
func FuzzRenderParse(f *testing.F) {
	var outs []*Layout
	for _, s := range styles {
		out, _ := loadStyle(f, s)
		outs = append(outs, out)
	}
	f.Fuzz(func(t *testing.T, name, account, id, remark string, amount int64) {
		for i, l := range outs {
			r := Record{Seq: 1, Name: name, Account: account, IDNumber: id, Remark: remark, AmountFen: amount}
			if errs := l.CheckRecord(r, "补贴"); len(errs) > 0 {
				continue
			}
			b := testBatch(1)
			b.TotalFen = amount
			var buf bytes.Buffer
			if err := l.Render(&buf, b, func(yield func(Record, error) bool) { yield(r, nil) }); err != nil {
				t.Fatalf("%s: CheckRecord passed, Render failed: %v", styles[i].name, err)
			}
			var got []Record
			_, err := l.ParseRecords(bytes.NewReader(buf.Bytes()), func(r Record) error { got = append(got, r); return nil })
			if err != nil {
				t.Fatalf("%s: rendered file does not parse: %v\n%q", styles[i].name, err, buf.Bytes())
			}
			want := r
			norm := func(s string) string { return string(trimField(&Field{padByte: ' '}, []byte(s), true)) }
			want.Name, want.Account, want.IDNumber, want.Remark = norm(want.Name), norm(want.Account), norm(want.IDNumber), norm(want.Remark)
			if styles[i].name == "rcc" {
				for _, d := range dotVariants {
					want.Name = strings.ReplaceAll(want.Name, string(d), "·")
				}
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("%s: got %+v, want %+v", styles[i].name, got, want)
			}
		}
	})
}

func FuzzParseLayout(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLayout(data)
		if err != nil {
			return
		}
		// A layout that compiles must render and parse without panicking.
		var buf bytes.Buffer
		if l.Kind == "outbound" {
			_ = l.Render(&buf, testBatch(1), genRecords(1, true))
			_, _ = l.ParseRecords(bytes.NewReader(buf.Bytes()), func(Record) error { return nil })
		} else {
			_, _ = l.Parse(strings.NewReader("1|2|3\n"), func(Result) error { return nil })
		}
	})
}

func FuzzReadBatchJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		_, recs, err := ReadBatchJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, err := range recs {
			if err != nil {
				return
			}
		}
	})
}

// FuzzPlainField: the plain-ASCII fast path of field (plainField) writes the
// bytes, and reports the errors, that the general path does: the same layout
// with an empty plain table takes the general path for every value.
func FuzzPlainField(f *testing.F) {
	f.Add("张三", "6222020000000000001", "11010519491231002X", "", int64(100))
	f.Add("John Smith", "6222 0200-0000", "x|y", "a\"b<c>&'d", int64(1))
	f.Add("王\t", "123456789012345678901234567890123", "1", "补贴", int64(-5))
	f.Add("a|b", "1\x7f", "A", "r", int64(99))
	var outs, slow []*Layout
	for _, s := range styles {
		out, _ := loadStyle(f, s)
		general := *out
		general.plain = [256]bool{}
		outs, slow = append(outs, out), append(slow, &general)
	}
	f.Fuzz(func(t *testing.T, name, account, id, remark string, amount int64) {
		r := Record{Seq: 7, Name: name, Account: account, IDNumber: id, Remark: remark, AmountFen: amount}
		for i := range outs {
			got, want := outs[i].CheckRecord(r, "补贴"), slow[i].CheckRecord(r, "补贴")
			if !slices.Equal(got, want) {
				t.Fatalf("%s: CheckRecord %v, general path %v", styles[i].name, got, want)
			}
			var gb, wb bytes.Buffer
			b := testBatch(1)
			b.TotalFen = amount
			one := func(yield func(Record, error) bool) { yield(r, nil) }
			gerr, werr := outs[i].Render(&gb, b, one), slow[i].Render(&wb, b, one)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !bytes.Equal(gb.Bytes(), wb.Bytes()) {
				t.Fatalf("%s: %v %q, general path %v %q", styles[i].name, gerr, gb.Bytes(), werr, wb.Bytes())
			}
		}
	})
}

// TestTooLongMessage pins the too-long error of each style, from the plain
// path (an ASCII remark) and from the general one (the same length in Han).
func TestTooLongMessage(t *testing.T) {
	for _, s := range styles {
		out, _ := loadStyle(t, s)
		var f *Field
		for i := range out.Detail {
			if out.Detail[i].Name == "remark" {
				f = &out.Detail[i]
			}
		}
		if f == nil {
			t.Fatalf("%s: no remark field", s.name)
		}
		limit, n := f.Max, f.Max
		word := "max"
		if out.Style == "fixed" {
			limit, n, word = f.Width, f.Width, "width"
		}
		if limit == 0 {
			continue // no limit: nothing is too long
		}
		for _, remark := range []string{strings.Repeat("a", n+2), strings.Repeat("补", n/2+1)} {
			r := Record{Seq: 7, Name: "张三", Account: "6222020000000000001", IDNumber: "11010519491231002X", Remark: remark, AmountFen: 100}
			errs := out.CheckRecord(r, "")
			want := fmt.Sprintf("%d bytes in %s, %s %d", encodedLen(t, out, remark), out.codec.name, word, limit)
			found := false
			for _, fe := range errs {
				if fe.Code == CodeTooLong && fe.Field == "remark" {
					found = true
					if fe.Message != want {
						t.Errorf("%s: %q, want %q", s.name, fe.Message, want)
					}
				}
			}
			if !found {
				t.Errorf("%s: remark of %d bytes not refused as too long: %v", s.name, len(remark), errs)
			}
		}
	}
}

func encodedLen(t *testing.T, l *Layout, s string) int {
	t.Helper()
	b, err := l.codec.appendEncode(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestDotVariantSwitch: isDotVariant's switch is dotVariants, rune for rune.
func TestDotVariantSwitch(t *testing.T) {
	for r := rune(0); r < 0x10000; r++ {
		if isDotVariant(r) != strings.ContainsRune(dotVariants, r) {
			t.Errorf("U+%04X: switch %v, dotVariants %v", r, isDotVariant(r), strings.ContainsRune(dotVariants, r))
		}
	}
}
