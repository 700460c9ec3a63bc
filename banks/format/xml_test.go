package format

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// xmlOutcome is everything a parse produced.
type xmlOutcome struct {
	Results []Result
	Records []Record
	Sum     Summary
	Err     error
}

// parseXMLWith runs the new scanner (ref false) or the encoding/xml
// reference (ref true) the way parser.run does.
func parseXMLWith(l *Layout, data []byte, ref bool) xmlOutcome {
	var o xmlOutcome
	p := newParser(l)
	if l.Kind == "return" {
		p.onResult = func(r Result) error { o.Results = append(o.Results, r); return nil }
	} else {
		p.onRecord = func(r Record) error { o.Records = append(o.Records, r); return nil }
	}
	var err error
	if ref {
		err = p.runXMLRef(bytes.NewReader(data))
	} else {
		err = p.runXML(bytes.NewReader(data))
	}
	if err == nil {
		p.checkStated()
		err = p.errs.err()
	}
	o.Sum, o.Err = p.sum, err
	return o
}

// withXMLBuf runs fn with the scanner's buffer shrunk to n bytes.
func withXMLBuf(n int, fn func()) {
	save := xmlReadBuf
	xmlReadBuf = n
	defer func() { xmlReadBuf = save }()
	fn()
}

func gb(t testing.TB, s string) []byte {
	b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// xmlMsg builds a return message for the xml profile's return layout around
// the given detail elements (totals given by the caller).
func xmlMsg(decl, totals, details string) string {
	return decl + "\n<CMS>\n <Head><TrxCode>BATPAY</TrxCode><ReqSerial>R1</ReqSerial><RetCode>AAAAAAA</RetCode></Head>\n <Body>" +
		totals + "<Details>" + details + "</Details></Body>\n</CMS>\n"
}

const (
	declUTF8 = `<?xml version="1.0" encoding="UTF-8"?>`
	declGB   = `<?xml version="1.0" encoding="GB18030"?>`
	tot1     = "<TotalNum>1</TotalNum><TotalAmt>1.00</TotalAmt><SuccNum>1</SuccNum><SuccAmt>1.00</SuccAmt>"
)

func det(inner string) string {
	return "<Detail>" + inner + "</Detail>"
}

const okRest = "<AcctNo>62</AcctNo><Amount>1.00</Amount><RetCode>AAAAAAA</RetCode>"

// TestXMLScanner: what the layouts use, each feature on its own, and the
// strictness rules, in UTF-8 and GB18030.
func TestXMLScanner(t *testing.T) {
	_, ret := loadStyle(t, styles[2])
	type want struct {
		name, msg string // of the one result
		codes     []string
		msgHas    string // a problem's message contains this
	}
	for _, tc := range []struct {
		name string
		in   string
		gb   bool // encode the message in GB18030
		want want
	}{
		{"plain", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), false, want{name: "张三"}},
		{"gb18030", xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName>𠮷田</AcctName>"+okRest+"<RetMsg>成功</RetMsg>")), true, want{name: "𠮷田", msg: "成功"}},
		{"predefined entities", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>a&amp;b</AcctName>"+okRest+"<RetMsg>&lt;&gt;&quot;&apos;</RetMsg>")), false,
			want{name: "a&b", msg: `<>"'`}},
		{"character references", xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName>&#x5F20;&#19977;</AcctName>"+okRest+"<RetMsg>成&#x20BB7;功</RetMsg>")), true,
			want{name: "张三", msg: "成𠮷功"}},
		{"cdata", xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName><![CDATA[张三]]></AcctName>"+okRest+"<RetMsg>前<![CDATA[<&>]]]]>后</RetMsg>")), true,
			want{name: "张三", msg: "前<&>]]后"}},
		{"comments and PIs inside values", xmlMsg(declGB, tot1, det("<Seq>1<!-- c --></Seq><AcctName>张<!-- 注释 -->三</AcctName>"+okRest+"<RetMsg>成<?pi x?>功</RetMsg>")), true,
			want{name: "张三", msg: "成功"}},
		{"attributes", xmlMsg(declGB, tot1, `<Detail id="1" note='a&amp;b "x"'><Seq type="n">1</Seq><AcctName lang="zh">张三</AcctName>`+okRest+`</Detail>`), true,
			want{name: "张三"}},
		{"self-closing optional", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg/><BankSerial />")), false,
			want{name: "张三"}},
		{"prefixes compare by local name", xmlMsg(declUTF8, tot1, det("<b:Seq>1</b:Seq><AcctName>张三</AcctName>"+okRest)), false, want{name: "张三"}},
		{"declaration after a comment", "<!-- a -->\n" + strings.Replace(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), "\n<CMS>", "\n<!DOCTYPE CMS [<!ENTITY e \"<x>\">]>\n<!-- b --><CMS>", 1) + "<!-- end -->\n", false,
			want{codes: []string{CodeShape}, msgHas: "declaration is not at the start"}},
		{"doctype", strings.Replace(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), "\n<CMS>", "\n<!DOCTYPE CMS [<!ENTITY e \"<x>\"> <!-- > -->]>\n<!-- b --><CMS>", 1) + "<!-- end --><?pi?>\n", false,
			want{name: "张三"}},
		{"CR and CRLF become LF", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg>a\r\nb\rc</RetMsg>")), false,
			want{name: "张三", msg: "a\nb\nc"}},
		{"GB trail byte ] before ]>", xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg>\u4e5a]></RetMsg>")), true,
			want{name: "张三", msg: "\u4e5a]>"}},
		{"non-ASCII element names are ignored", xmlMsg(declGB, tot1, det("<Seq>1</Seq><备注>无</备注><AcctName>张三</AcctName>"+okRest)), true, want{name: "张三"}},
		{"BOM", "\ufeff" + xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), false, want{name: "张三"}},
		{"no declaration is UTF-8", xmlMsg("", tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), false, want{name: "张三"}},

		{"mismatched tags", xmlMsg(declUTF8, tot1, "<Detail><Seq>1</Detail>"), false, want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "unexpected </Detail>"}},
		{"unclosed", strings.TrimSuffix(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), "</CMS>\n"), false,
			want{codes: []string{CodeTruncated}, msgHas: "message ends inside <CMS> (input line 5)"}},
		{"cut inside a tag", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest))[:150], false,
			want{codes: []string{CodeTruncated}, msgHas: "unexpected EOF"}},
		{"unknown entity", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>&nbsp;</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "invalid character entity &nbsp;"}},
		{"entity without semicolon", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>a & b</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "(no semicolon)"}},
		{"reference to a control character", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>&#1;</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "illegal character code U+0001"}},
		{"control character", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>a\x02</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "illegal character code U+0002"}},
		{"]]> in text", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>a]]>b</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "unescaped ]]>"}},
		{"text outside the root", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)) + "junk\n", false,
			want{codes: []string{CodeShape}, msgHas: "text outside the root element"}},
		{"text before the root", "x" + xmlMsg("", tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)), false,
			want{codes: []string{CodeShape}, msgHas: "text outside the root element"}},
		{"second root", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest)) + "<CMS/>", false,
			want{codes: []string{CodeShape}, msgHas: "second root element CMS"}},
		{"unsupported encoding", xmlMsg(`<?xml version="1.0" encoding="Big5"?>`, tot1, ""), false,
			want{codes: []string{CodeShape}, msgHas: `unsupported XML encoding "Big5"`}},
		{"unsupported version", xmlMsg(`<?xml version="1.1"?>`, tot1, ""), false,
			want{codes: []string{CodeShape}, msgHas: "unsupported version"}},
		{"unquoted attribute", xmlMsg(declUTF8, tot1, "<Detail id=1>"), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "unquoted or missing attribute value"}},
		{"bad name", xmlMsg(declUTF8, tot1, "<1Detail/>"), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: "invalid XML name: 1Detail"}},
		{"-- in a comment", xmlMsg(declUTF8, tot1, "<!-- a -- b -->"), false,
			want{codes: []string{CodeShape, CodeSummary, CodeSummary, CodeSummary, CodeSummary}, msgHas: `"--" not allowed`}},
		{"bad GB18030 bytes in a kept value", xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName>\x81\x20</AcctName>"+okRest)), false,
			want{codes: []string{CodeBadEncoding, CodeSummary, CodeSummary, CodeSummary, CodeSummary}}},
		{"bad GB18030 bytes in an ignored element", xmlMsg(declGB, tot1, det("<Seq>1</Seq><Other>\x81\x20</Other><AcctName>x</AcctName>"+okRest)), false,
			want{name: "x"}},
		{"bad UTF-8 in a kept value", xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>\xff</AcctName>"+okRest)), false,
			want{codes: []string{CodeBadEncoding, CodeSummary, CodeSummary, CodeSummary, CodeSummary}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			if tc.gb {
				data = gb(t, tc.in)
			}
			var got xmlOutcome
			for _, n := range []int{readBuf, 16} {
				var o xmlOutcome
				withXMLBuf(n, func() { o = parseXMLWith(ret, data, false) })
				if n != readBuf && !reflect.DeepEqual(o, got) {
					t.Fatalf("buffer %d: %+v\nbuffer %d: %+v", readBuf, got, n, o)
				}
				got = o
			}
			// The public entry point gives the same.
			sum, err := ret.Parse(bytes.NewReader(data), func(Result) error { return nil })
			if sum != got.Sum || fmt.Sprint(err) != fmt.Sprint(got.Err) {
				t.Fatalf("Parse: %+v %v, want %+v %v", sum, err, got.Sum, got.Err)
			}
			var codes []string
			var pe ParseErrors
			if got.Err != nil && !errors.As(got.Err, &pe) {
				t.Fatalf("not ParseErrors: %v", got.Err)
			}
			msgOK := tc.want.msgHas == ""
			for _, e := range pe {
				codes = append(codes, e.Code)
				if tc.want.msgHas != "" && strings.Contains(e.Message, tc.want.msgHas) {
					msgOK = true
				}
			}
			if fmt.Sprint(codes) != fmt.Sprint(tc.want.codes) || !msgOK {
				t.Fatalf("problems %v (%v), want %v with %q", codes, got.Err, tc.want.codes, tc.want.msgHas)
			}
			if tc.want.codes != nil {
				return
			}
			if len(got.Results) != 1 {
				t.Fatalf("results %+v", got.Results)
			}
			r := got.Results[0]
			if r.Name != tc.want.name || r.Message != tc.want.msg || r.AmountFen != 100 || !r.Paid || r.Seq != 1 || r.Line != 1 {
				t.Fatalf("result %+v, want name %q message %q", r, tc.want.name, tc.want.msg)
			}
		})
	}
}

// TestXMLReadError: a failing reader is an error of Parse, not a problem
// of the file.
func TestXMLReadError(t *testing.T) {
	_, ret := loadStyle(t, styles[2])
	boom := errors.New("boom")
	in := io.MultiReader(strings.NewReader(xmlMsg(declUTF8, tot1, "")[:60]), iotest.ErrReader(boom))
	_, err := ret.Parse(in, func(Result) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// bigXML renders a return message of n records for the xml profile with
// comments, entities, CDATA and attributes sprinkled in, pad bytes of
// comment first (to move the buffer's edges).
func bigXML(t testing.TB, n, pad int) []byte {
	var b strings.Builder
	b.WriteString(declGB + "\n<!--" + strings.Repeat("x", pad) + "-->\n<CMS>\n<Head><TrxCode>BATPAY</TrxCode><ReqSerial>R</ReqSerial><RetCode>AAAAAAA</RetCode></Head>\n<Body>")
	fmt.Fprintf(&b, "<TotalNum>%d</TotalNum><TotalAmt>%d.00</TotalAmt><SuccNum>%d</SuccNum><SuccAmt>%d.00</SuccAmt><Details>\n", n, n, n-n/7, n-n/7)
	for i := 1; i <= n; i++ {
		code := "AAAAAAA"
		if i%7 == 0 {
			code = "E1"
		}
		fmt.Fprintf(&b, "  <Detail no=\"%d\" a='&amp;'>\r\n    <Seq>%d</Seq>\r\n    <AcctNo>6222%08d</AcctNo><AcctName>张&#x4E09;%s</AcctName>\n", i, i, i, names[i%len(names)])
		fmt.Fprintf(&b, "    <Amount>1<!-- c -->.00</Amount><RetCode>%s</RetCode><RetMsg><![CDATA[成功]]>&lt;%d&gt;</RetMsg><BankSerial/>\n  </Detail>\n", code, i)
	}
	b.WriteString("</Details></Body></CMS>\n")
	return gb(t, b.String())
}

// TestXMLBufferEdges: every kind of token across the reader buffer's edge
// (small buffers, shifted starts) parses as the encoding/xml reference does.
func TestXMLBufferEdges(t *testing.T) {
	_, ret := loadStyle(t, styles[2])
	want := parseXMLWith(ret, bigXML(t, 50, 0), true)
	if want.Err != nil || len(want.Results) != 50 {
		t.Fatalf("reference: %d results, %v", len(want.Results), want.Err)
	}
	for pad := 0; pad < 32; pad++ {
		data := bigXML(t, 50, pad)
		for _, n := range []int{16, 31, 100} {
			var got xmlOutcome
			withXMLBuf(n, func() { got = parseXMLWith(ret, data, false) })
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("pad %d buffer %d: got %+v %v\nwant %+v %v", pad, n, got.Sum, got.Err, want.Sum, want.Err)
			}
		}
	}
	// A large message through the default buffer, read one byte at a time.
	data := bigXML(t, 1000, 5)
	want = parseXMLWith(ret, data, true)
	got := xmlOutcome{}
	sum, err := ret.Parse(iotest.OneByteReader(bytes.NewReader(data)), func(r Result) error { got.Results = append(got.Results, r); return nil })
	if err != nil || sum != want.Sum || !reflect.DeepEqual(got.Results, want.Results) {
		t.Fatalf("got %+v %v, want %+v %v", sum, err, want.Sum, want.Err)
	}
}

// xmlWellFormed reports whether data (after a BOM) is a well-formed XML
// document in the encoding it declares, in encoding/xml's strict reading:
// matching tags, one root, no text outside it, the declaration first, and
// every byte valid in the declared encoding. On such input the scanner must
// agree with the reference exactly.
func xmlWellFormed(l *Layout, data []byte) bool {
	br := bufio.NewReader(bytes.NewReader(data))
	skipBOM(br, l.codec)
	rest, _ := io.ReadAll(br)
	switched := false
	d := xml.NewDecoder(bytes.NewReader(rest))
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		c, err := xmlLabelCodec(label)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		u, err := c.appendDecode(nil, b)
		if err != nil {
			return nil, err
		}
		switched = true
		return bytes.NewReader(u), nil
	}
	depth, roots, markup := 0, 0, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.Trim(t, " \t\r\n")) > 0 {
				return false
			}
			continue
		case xml.ProcInst:
			if t.Target == "xml" && markup {
				return false
			}
		}
		markup = true
	}
	return depth == 0 && roots == 1 && (switched || utf8.Valid(rest))
}

// FuzzParseXMLDiff checks the scanner against the encoding/xml reference
// (the parser it replaced): on well-formed input both give the same results,
// summary and problems, with the return layout and the outbound one; on any
// input the scanner's answer does not depend on its buffer size.
//
//	go test ./banks/format -run '^$' -fuzz FuzzParseXMLDiff -fuzztime 60s
func FuzzParseXMLDiff(f *testing.F) {
	for _, in := range goldenInputs(f, "xml") {
		f.Add(in)
	}
	for _, in := range xmlDiffSeeds(f) {
		f.Add(in)
	}
	out, ret := loadStyle(f, styles[2])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, ret, data)
		wf := xmlWellFormed(ret, data)
		for _, l := range []*Layout{ret, out} {
			got := parseXMLWith(l, data, false)
			var small xmlOutcome
			withXMLBuf(16, func() { small = parseXMLWith(l, data, false) })
			if !reflect.DeepEqual(got, small) {
				t.Fatalf("%s: buffer size changes the outcome:\n%+v\n%+v", l.Kind, got, small)
			}
			if !wf {
				continue
			}
			want := parseXMLWith(l, data, true)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: well-formed input, scanner and encoding/xml differ:\ngot  %+v\nwant %+v", l.Kind, got, want)
			}
		}
	})
}

// xmlDiffSeeds are hand-made messages exercising every construct the
// scanner handles (also written to testdata/fuzz/FuzzParseXMLDiff).
func xmlDiffSeeds(t testing.TB) map[string][]byte {
	rec := det("<Seq>1</Seq><AcctName>张三</AcctName>" + okRest)
	return map[string][]byte{
		"entities":    []byte(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>a&amp;&#x5F20;&#19977;</AcctName>"+okRest+"<RetMsg>&lt;&gt;&quot;&apos;</RetMsg>"))),
		"cdata":       gb(t, xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName><![CDATA[张三]]></AcctName>"+okRest+"<RetMsg>前<![CDATA[<&>]]]]>后</RetMsg>"))),
		"comments_pi": gb(t, xmlMsg(declGB, tot1, det("<Seq>1<!-- c --></Seq><AcctName>张<!-- 注 -->三</AcctName>"+okRest+"<RetMsg>成<?pi x?>功</RetMsg>"))),
		"attributes":  gb(t, xmlMsg(declGB, tot1, `<Detail id="1" note='a&amp;b "x"'><Seq type="n">1</Seq><AcctName lang="zh">张三</AcctName>`+okRest+`</Detail>`)),
		"selfclosing": []byte(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg/><BankSerial />"))),
		"prefixes":    []byte(xmlMsg(declUTF8, tot1, det("<b:Seq>1</b:Seq><AcctName>张三</AcctName>"+okRest))),
		"doctype":     []byte(strings.Replace(xmlMsg(declUTF8, tot1, rec), "\n<CMS>", "\n<!DOCTYPE CMS [<!ENTITY e \"<x>\"> <!-- > -->]>\n<CMS>", 1)),
		"crlf_values": []byte(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg>a\r\nb\rc</RetMsg>"))),
		"gb_trail":    gb(t, xmlMsg(declGB, tot1, det("<Seq>1</Seq><AcctName>张三</AcctName>"+okRest+"<RetMsg>\u4e5a]></RetMsg>"))),
		"gb_names":    gb(t, xmlMsg(declGB, tot1, det("<Seq>1</Seq><备注 说明=\"是\">无</备注><AcctName>张三</AcctName>"+okRest))),
		"gbk_label":   gb(t, xmlMsg(`<?xml version="1.0" encoding="gbk"?>`, tot1, rec)),
		"missing":     []byte(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName> </AcctName><Amount>x</Amount>"))),
		"mismatched":  []byte(xmlMsg(declUTF8, tot1, "<Detail><Seq>1</Detail>")),
		"outside":     []byte(xmlMsg(declUTF8, tot1, rec) + "junk"),
		"bad_entity":  []byte(xmlMsg(declUTF8, tot1, det("<Seq>1</Seq><AcctName>&nbsp;</AcctName>"+okRest))),
	}
}

// TestWriteXMLDiffCorpus writes the seeds above (run with -writecorpus, as
// TestWriteFuzzCorpus).
func TestWriteXMLDiffCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -writecorpus to (re)write testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseXMLDiff")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, in := range xmlDiffSeeds(t) {
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", in), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestXMLWellFormed keeps FuzzParseXMLDiff honest: the predicate that
// decides when the reference must agree accepts the shipped messages and
// the well-formed seeds, and rejects the broken ones.
func TestXMLWellFormed(t *testing.T) {
	_, ret := loadStyle(t, styles[2])
	for name, in := range goldenInputs(t, "xml") {
		if got, want := xmlWellFormed(ret, in), name != "truncated"; got != want {
			t.Errorf("golden %s: well-formed %v, want %v", name, got, want)
		}
	}
	for name, in := range xmlDiffSeeds(t) {
		bad := name == "mismatched" || name == "outside" || name == "bad_entity"
		if got := xmlWellFormed(ret, in); got == bad {
			t.Errorf("seed %s: well-formed %v", name, got)
		}
	}
}
