package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"
	"unicode/utf8"

	"yktgw/internal/gen"
)

// walkRecordsRef is how NDJSON records were read before walkRecords: one
// json.Decoder over the whole body. walkRecords must give the same.
func walkRecordsRef(dec *json.Decoder, each func(rj *recordJSON, err error) error) error {
	for {
		if !dec.More() {
			if _, err := dec.Token(); err != io.EOF {
				return fmt.Errorf("%w: stray data", errSyntax)
			}
			return nil
		}
		var rj recordJSON
		err := dec.Decode(&rj)
		if err := each(&rj, err); err != nil {
			return err
		}
		if err != nil {
			return err
		}
	}
}

// walkOutcome is what a walk saw: each record (copied) with its error, and
// how the walk ended.
type walkOutcome struct {
	recs []recordJSON
	errs []string
	end  string
}

func errString(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF" // the same class, whatever the wrapping
	}
	return err.Error()
}

func copyRecord(rj *recordJSON) recordJSON {
	c := *rj
	if rj.Seq != nil {
		c.Seq = append(json.RawMessage{}, rj.Seq...)
	}
	if rj.AmountFen != nil {
		c.AmountFen = append(json.RawMessage{}, rj.AmountFen...)
	}
	return c
}

// walk reads body as an NDJSON body with the header already read (none):
// size 0 is the reference, other sizes walkRecords with that first buffer.
func walk(body []byte, size, max int, r func(io.Reader) io.Reader) walkOutcome {
	var o walkOutcome
	each := func(rj *recordJSON, err error) error {
		o.recs = append(o.recs, copyRecord(rj))
		o.errs = append(o.errs, errString(err))
		return nil
	}
	src := r(bytes.NewReader(body))
	dec := json.NewDecoder(src)
	dec.DisallowUnknownFields()
	var err error
	if size == 0 {
		err = walkRecordsRef(dec, each)
	} else {
		err = walkRecordsSized(dec, src, size, max, each)
	}
	o.end = errString(err)
	return o
}

func sameRecord(a, b recordJSON) bool {
	return bytes.Equal(a.Seq, b.Seq) && (a.Seq == nil) == (b.Seq == nil) &&
		bytes.Equal(a.AmountFen, b.AmountFen) && (a.AmountFen == nil) == (b.AmountFen == nil) &&
		a.Name == b.Name && a.IDNumber == b.IDNumber && a.Account == b.Account &&
		a.AccountKind == b.AccountKind && a.Remark == b.Remark
}

func diffOutcome(want, got walkOutcome) string {
	if len(want.recs) != len(got.recs) {
		return fmt.Sprintf("%d records, want %d (%q vs %q, end %q vs %q)", len(got.recs), len(want.recs), got.errs, want.errs, got.end, want.end)
	}
	for i := range want.recs {
		if !sameRecord(want.recs[i], got.recs[i]) || want.errs[i] != got.errs[i] {
			return fmt.Sprintf("record %d: %+v %q, want %+v %q", i+1, got.recs[i], got.errs[i], want.recs[i], want.errs[i])
		}
	}
	if want.end != got.end {
		return fmt.Sprintf("end %q, want %q", got.end, want.end)
	}
	return ""
}

func plain(r io.Reader) io.Reader { return r }

// checkWalk compares walkRecords with the reference on body, with buffers
// from tiny (every record crosses a refill) to the real size, whole reads
// and one byte at a time.
func checkWalk(t testing.TB, body []byte) {
	t.Helper()
	want := walk(body, 0, 0, plain)
	for _, size := range []int{1, 7, 64, recordBufSize} {
		for _, r := range []func(io.Reader) io.Reader{plain, iotest.OneByteReader, iotest.DataErrReader} {
			if d := diffOutcome(want, walk(body, size, 1<<20, r)); d != "" {
				t.Fatalf("buffer %d: %s\nbody %q", size, d, body)
			}
		}
	}
}

func genLines(t testing.TB, n int) []byte {
	var b bytes.Buffer
	if err := gen.WriteNDJSON(&b, gen.Spec{BatchID: "RJ-1", N: n}); err != nil {
		t.Fatal(err)
	}
	_, recs, _ := bytes.Cut(b.Bytes(), []byte("\n"))
	return recs
}

var recordCases = []string{
	``,
	"\n\n \t\r\n",
	`{}`,
	`{ }`,
	`{"seq":1,"name":"张三","id_number":"11010519491231002X","account":"6222020200112230126","account_kind":"card","amount_fen":12345}`,
	`{"seq":1,"name":"张三","remark":"r"}{"seq":2}` + "\n" + `{"seq":3}`,
	"{\"seq\":\n1,\n\"name\"\t:\r\"x\" }\n\n{\"seq\":2}",
	`{"seq":1,"name":"\u00e9\ud83d\ude00\ud800x"}`,
	`{"seq":1,"name":"a\"b\\c\/d\n"}`,
	`{"SEQ":1,"Name":"x"}`,
	`{"seq":1,"SEQ":2}`,
	`{"name":"a","name":"b"}`,
	`{"seq":1,"seq":2}`,
	`{"seq":1,"other":2}`,
	`{"seq":1,"name":"` + "\xff\xfe" + `"}`,
	`{"seq":1,"name":"` + "\xed\xa0\x80" + `"}`,
	`{"seq":1,"name":"a` + "\x01" + `b"}`,
	`{"seq":1,"name":"a` + "\x7f" + `b"}`,
	`{"seq":-0,"amount_fen":1.5e+3}`,
	`{"seq":01}`,
	`{"seq":1.}`,
	`{"seq":-}`,
	`{"seq":1e}`,
	`{"seq":"1","amount_fen":"2"}`,
	`{"seq":null,"name":null}`,
	`{"seq":true,"amount_fen":false}`,
	`{"seq":[1],"amount_fen":{"a":1}}`,
	`{"name":1}`,
	`{"seq":1,}`,
	`{"seq":1 "name":"x"}`,
	`{"seq" 1}`,
	`{seq:1}`,
	`{"seq":1]`,
	`{"seq":[1}]`,
	`{"seq":1}}`,
	`{"seq":1}]`,
	`{"seq":1}x`,
	`{"seq":1}null{"seq":2}`,
	`null`,
	`nul`,
	`nullx`,
	`{"seq":1} 123`,
	`{"seq":1} "s"`,
	`{"seq":1} [1,2]`,
	`{"seq":1} true`,
	`]`,
	`}`,
	`{"seq":1`,
	`{"seq":1,"name":"abc`,
	`{"seq":1,"name":"abc\`,
	`{"seq":1,"name":"a}b{c]","amount_fen":2}`,
	`{"seq":1,"name":"a\"}"}`,
	`{"seq":1}` + "\xef\xbb\xbf" + `{"seq":2}`,
	`{"seq":1}` + "\x00",
	`{"seq":99999999999999999999999,"amount_fen":-12345678901234567890.5e-7}`,
	`{"remark":""}`,
	`{"name":"","id_number":"x"}`,
}

func TestWalkRecordsSameAsEncodingJSON(t *testing.T) {
	for _, c := range recordCases {
		checkWalk(t, []byte(c))
	}
	recs := genLines(t, 300)
	checkWalk(t, recs)
	// Every cut of a few records: a cut-off body reads as it did.
	small := genLines(t, 3)
	for i := range small {
		checkWalk(t, small[:i])
	}
}

// The fast path does take the generated records (a fallback for everything
// would pass the differential tests, and be slow).
func TestDecodeRecordFastTakesGenerated(t *testing.T) {
	recs := genLines(t, 500)
	var scratch []byte
	for line := range bytes.Lines(recs) {
		line = bytes.TrimSpace(line)
		var rj, want recordJSON
		if decodeRecordFast(line, &rj, &scratch) != len(line) {
			t.Fatalf("declined %s", line)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil || !sameRecord(rj, want) {
			t.Fatalf("%s: %+v, want %+v (%v)", line, rj, want, err)
		}
	}
}

// asciiJSON writes every non-ASCII rune of NDJSON lines as \uXXXX (with
// surrogate pairs beyond the BMP), as Python's json.dumps does by default.
func asciiJSON(b []byte) []byte {
	var out []byte
	for _, r := range string(b) {
		switch {
		case r < utf8.RuneSelf:
			out = append(out, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04X`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

func TestDecodeRecordFastTakesEscapes(t *testing.T) {
	var scratch []byte
	for _, c := range []struct{ in, name string }{
		{`{"name":"\u5f20\u4E09"}`, "张三"},
		{`{"name":"\ud840\udc00\u00b7"}`, "\U00020000·"},
		{`{"name":"\ud840x\udc00\ud840\u0041"}`, "\ufffdx\ufffd\ufffdA"},
		{`{"name":"\"\\\/\b\f\n\r\t\u0000"}`, "\"\\/\b\f\n\r\t\x00"},
		{"{\"name\":\"a\xffb\xe4\xb8\"}", "a\ufffdb\ufffd\ufffd"},
	} {
		var rj recordJSON
		var want recordJSON
		err := json.Unmarshal([]byte(c.in), &want)
		if n := decodeRecordFast([]byte(c.in), &rj, &scratch); n != len(c.in) || rj.Name != c.name || want.Name != c.name || err != nil {
			t.Fatalf("%s: %d %q, want %q (encoding/json %q %v)", c.in, n, rj.Name, c.name, want.Name, err)
		}
	}
	esc := asciiJSON(genLines(t, 100))
	checkWalk(t, esc)
	for line := range bytes.Lines(esc) {
		line = bytes.TrimSpace(line)
		var rj recordJSON
		if decodeRecordFast(line, &rj, &scratch) != len(line) {
			t.Fatalf("declined %s", line)
		}
	}
}

func TestWalkRecordsTooLarge(t *testing.T) {
	big := `{"seq":1,"remark":"` + strings.Repeat("x", 300) + `"}`
	o := walk([]byte(`{"seq":1}`+"\n"+big+"\n"), 16, 256, plain)
	if len(o.errs) != 2 || o.errs[0] != "" || !strings.Contains(o.errs[1], "longer than") || o.end != o.errs[1] {
		t.Fatalf("%+v", o)
	}
	// Just under the limit is read.
	o = walk([]byte(big), 16, len(big)+1, plain)
	if len(o.recs) != 1 || o.errs[0] != "" || o.end != "" || len(o.recs[0].Remark) != 300 {
		t.Fatalf("%+v", o)
	}
}

// Read errors mid-record and between records surface as the reader's error.
func TestWalkRecordsReadError(t *testing.T) {
	body := genLines(t, 50)
	boom := errors.New("boom")
	for _, cut := range []int{0, 10, len(body) / 2, len(body)} {
		r := io.MultiReader(bytes.NewReader(body[:cut]), iotest.ErrReader(boom))
		dec := json.NewDecoder(r)
		err := walkRecordsSized(dec, r, 64, 1<<20, func(rj *recordJSON, err error) error { return nil })
		if err == nil {
			t.Fatalf("cut %d: no error", cut)
		}
	}
}

// The buffer is cleared when the walk ends: it held personal data.
func TestRecordStreamCleared(t *testing.T) {
	body := genLines(t, 5)
	s := newRecordStream(bytes.NewReader(body), 1024, 1<<20)
	var rj recordJSON
	for {
		rj = recordJSON{}
		if ok, err := s.next(&rj); !ok || err != nil {
			break
		}
	}
	s.clear()
	if bytes.ContainsFunc(s.buf, func(r rune) bool { return r != 0 }) || bytes.ContainsFunc(s.scratch, func(r rune) bool { return r != 0 }) {
		t.Fatal("buffer not cleared")
	}
}

func BenchmarkDecodeRecords(b *testing.B) {
	const n = 10000
	plain := genLines(b, n)
	escaped := asciiJSON(plain)
	for _, c := range []struct {
		name string
		size int
		body []byte
	}{{"fast", recordBufSize, plain}, {"encoding_json", 0, plain},
		{"escaped/fast", recordBufSize, escaped}, {"escaped/encoding_json", 0, escaped}} {
		body := c.body
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				count := 0
				each := func(rj *recordJSON, err error) error {
					if err != nil {
						return err
					}
					count++
					return nil
				}
				r := bytes.NewReader(body)
				dec := json.NewDecoder(r)
				dec.DisallowUnknownFields()
				var err error
				if c.size == 0 {
					err = walkRecordsRef(dec, each)
				} else {
					err = walkRecordsSized(dec, r, c.size, maxRecordBytes, each)
				}
				if err != nil || count != n {
					b.Fatal(count, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}
