package format

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type style struct {
	name     string
	out, ret string
	paid     string
}

var styles = []style{
	{"rcc", "rcc/outbound.yaml", "rcc/return.yaml", "0000"},
	{"pipe", "pipe/outbound.yaml", "pipe/return.yaml", "S"},
	{"xml", "xml/outbound.yaml", "xml/return.yaml", "AAAAAAA"},
}

func loadStyle(t testing.TB, s style) (*Layout, *Layout) {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "banks")
	out, err := LoadLayout(filepath.Join(dir, s.out))
	if err != nil {
		t.Fatal(err)
	}
	ret, err := LoadLayout(filepath.Join(dir, s.ret))
	if err != nil {
		t.Fatal(err)
	}
	ret.SetPaidCodes([]string{s.paid})
	return out, ret
}

func testBatch(n int) Batch {
	return Batch{BankBatchNo: "B20261128000009", FileSeq: 1, Date: time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC),
		Count: n, Memo: "耕地补贴", SubsidyCode: "GDDL", Tenant: "210102", Period: "2026-11", BatchID: "X-1"}
}

var names = []string{"张三", "李四", "阿依古丽·买买提", "欧阳娜娜", "王小明", "𠮷田"}

// genRecords yields n distinct records (seq 1..n); gbkSafe avoids 𠮷.
func genRecords(n int, gbkSafe bool) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		var acct [19]byte
		for i := 1; i <= n; i++ {
			name := names[i%len(names)]
			if gbkSafe && strings.Contains(name, "𠮷") {
				name = "吉田"
			}
			copy(acct[:], "6222020000000000000")
			v := i
			for k := 18; v > 0; k-- {
				acct[k] = byte('0' + v%10)
				v /= 10
			}
			if !yield(Record{Seq: i, Name: name, IDNumber: "11010519491231002X", Account: string(acct[:]),
				AccountKind: "card", AmountFen: int64(100 + i%997), Remark: "补贴"}, nil) {
				return
			}
		}
	}
}

func sumRecords(recs iter.Seq2[Record, error]) (n int, total int64) {
	for r := range recs {
		n++
		total += r.AmountFen
	}
	return
}

// TestRoundTrip renders a batch, reads the file back as records, answers it
// with a return file (every third record failed) and parses that: every
// record comes back with its amount.
func TestRoundTrip(t *testing.T) {
	for _, s := range styles {
		t.Run(s.name, func(t *testing.T) {
			out, ret := loadStyle(t, s)
			const n = 500
			gbkSafe := out.Encoding() == "GBK"
			b := testBatch(n)
			_, b.TotalFen = sumRecords(genRecords(n, gbkSafe))
			var file bytes.Buffer
			if err := out.Render(&file, b, genRecords(n, gbkSafe)); err != nil {
				t.Fatal(err)
			}
			var back []Record
			sum, err := out.ParseRecords(bytes.NewReader(file.Bytes()), func(r Record) error { back = append(back, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if sum.Count != n || sum.TotalFen != b.TotalFen || len(back) != n {
				t.Fatalf("read back %d records %d fen, want %d / %d", sum.Count, sum.TotalFen, n, b.TotalFen)
			}
			i := 0
			for want := range genRecords(n, gbkSafe) {
				got := back[i]
				i++
				want.AccountKind = "" // not in these layouts
				if s.name == "rcc" {  // the layout writes every dot variant as U+00B7
					want.Name = strings.ReplaceAll(want.Name, "．", "·")
				}
				if got != want {
					t.Fatalf("record %d: got %+v want %+v", i, got, want)
				}
			}
			// The bank's answer.
			var rs Summary
			results := func(yield func(Result, error) bool) {
				for _, r := range back {
					res := Result{Seq: r.Seq, Name: r.Name, Account: r.Account, AmountFen: r.AmountFen, OrigFen: r.AmountFen,
						Code: s.paid, Message: "成功", BankSerial: fmt.Sprintf("SN%d", r.Seq)}
					if r.Seq%3 == 0 {
						res.Code, res.Message, res.BankSerial = "E1", "户名与账号不符", ""
					}
					if !yield(res, nil) {
						return
					}
				}
			}
			for r := range results {
				rs.Count++
				rs.TotalFen += r.AmountFen
				if r.Code == s.paid {
					rs.PaidCount++
					rs.PaidFen += r.AmountFen
				} else {
					rs.FailedCount++
					rs.FailedFen += r.AmountFen
				}
			}
			rs.BatchCode = "AAAAAAA"
			var retFile bytes.Buffer
			if err := ret.RenderResults(&retFile, b, rs, results); err != nil {
				t.Fatal(err)
			}
			got := map[int]Result{}
			k := 0
			psum, err := ret.Parse(bytes.NewReader(retFile.Bytes()), func(r Result) error {
				k++
				if r.Seq == 0 { // pipe matches by account+name+amount: find the record
					r.Seq = back[k-1].Seq
				}
				got[r.Seq] = r
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if psum.Count != n || psum.TotalFen != b.TotalFen || psum.PaidCount != rs.PaidCount || psum.FailedCount != rs.FailedCount {
				t.Fatalf("summary %+v, want %+v", psum, rs)
			}
			for _, r := range back {
				g, ok := got[r.Seq]
				if !ok || g.AmountFen != r.AmountFen || g.Account != r.Account || g.Name != r.Name {
					t.Fatalf("record %d: result %+v", r.Seq, g)
				}
				if g.Paid != (r.Seq%3 != 0) {
					t.Fatalf("record %d: paid=%v", r.Seq, g.Paid)
				}
			}
		})
	}
}

func TestRenderRecordMismatch(t *testing.T) {
	out, _ := loadStyle(t, styles[1])
	b := testBatch(3)
	b.TotalFen = 1
	err := out.Render(&bytes.Buffer{}, b, genRecords(3, false))
	var fe FieldError
	if !errors.As(err, &fe) || fe.Code != CodeRecordMismatch {
		t.Fatalf("got %v, want record_mismatch", err)
	}
}

func TestCheckRecord(t *testing.T) {
	rcc, _ := loadStyle(t, styles[0])
	pipe, _ := loadStyle(t, styles[1])
	xml, _ := loadStyle(t, styles[2])
	ok := Record{Seq: 7, Name: "张三", IDNumber: "11010519491231002X", Account: "6222021234567890128", AmountFen: 100}
	with := func(f func(r *Record)) Record { r := ok; f(&r); return r }
	for _, tc := range []struct {
		name  string
		l     *Layout
		r     Record
		memo  string
		codes []string // want these codes, in order
	}{
		{"fine gbk", rcc, ok, "耕地补贴", nil},
		{"fine gb18030 non-BMP", pipe, with(func(r *Record) { r.Name = "𠮷田" }), "", nil},
		{"gbk non-BMP", rcc, with(func(r *Record) { r.Name = "𠮷田" }), "", []string{CodeUnencodable}},
		{"gbk bullet dot is normalized", rcc, with(func(r *Record) { r.Name = "阿依古丽•买买提" }), "", nil},
		{"gb18030 keeps bullet", pipe, with(func(r *Record) { r.Name = "阿依古丽•买买提" }), "", nil},
		{"name 60 bytes fits", rcc, with(func(r *Record) { r.Name = strings.Repeat("张", 30) }), "", nil},
		{"name 62 bytes", rcc, with(func(r *Record) { r.Name = strings.Repeat("张", 31) }), "", []string{CodeTooLong}},
		{"memo 14 bytes", rcc, ok, "耕地地力补贴款", []string{CodeTooLong}},
		{"separator", pipe, with(func(r *Record) { r.Remark = "a|b" }), "", []string{CodeSeparator}},
		{"newline", pipe, with(func(r *Record) { r.Remark = "a\nb" }), "", []string{CodeControlChar}},
		{"xml escapes fine", xml, with(func(r *Record) { r.Remark = "a<b>&" }), "", nil},
		{"xml control", xml, with(func(r *Record) { r.Name = "a\x01" }), "", []string{CodeControlChar}},
		{"several", rcc, with(func(r *Record) { r.Name = "𠮷"; r.Remark = strings.Repeat("x", 41); r.AmountFen = 0 }), "",
			[]string{CodeUnencodable, CodeTooLong, CodeInvalid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.l.CheckRecord(tc.r, tc.memo)
			var got []string
			for _, e := range errs {
				got = append(got, e.Code)
				if e.Seq != tc.r.Seq {
					t.Errorf("error %v does not name record %d", e, tc.r.Seq)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.codes, ",") {
				t.Fatalf("got %v (%v), want %v", got, errs, tc.codes)
			}
		})
	}
}

const fixedGBK = `
kind: return
style: fixed
encoding: GBK
detail:
  - {name: seq, width: 4}
  - {name: name, width: 5}
  - {name: amount, width: 6}
  - {name: code, width: 2}
`

func gbk(s string) string {
	b, err := gbkCodec.appendEncode(nil, s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseFixedProblems(t *testing.T) {
	l, err := ParseLayout([]byte(fixedGBK))
	if err != nil {
		t.Fatal(err)
	}
	l.SetPaidCodes([]string{"00"})
	for _, tc := range []struct {
		name, in string
		codes    []string
		lines    []int
	}{
		{"ok", "0001" + gbk("张三") + " 00010000\n", nil, nil},
		{"ok without final newline", "0001" + gbk("张三") + " 00010000", nil, nil},
		{"split char", "0001" + gbk("张三王") + "0001000\n", []string{CodeSplitChar}, []int{1}},
		{"bad amount", "0001" + gbk("张三") + " 00x10000\n", []string{CodeInvalid}, []int{1}},
		{"short line cuts code", "0001" + gbk("张三") + " 0001000\n", []string{CodeShape}, []int{1}},
		{"long line", "0001" + gbk("张三") + " 00010000XX\n", []string{CodeShape}, []int{1}},
		{"trailing spaces ok", "0001" + gbk("张三") + " 00010000   \r\n", nil, nil},
		{"invalid gbk", "0001\x81\x20xxx00010000\n", []string{CodeBadEncoding}, []int{1}},
		{"blank in middle", "0001" + gbk("张三") + " 00010000\n\n0002" + gbk("李四") + " 00010000\n", []string{CodeBlankLine}, []int{2}},
		{"all problems, numbered", "0001" + gbk("张三") + " 00010000\nxxxx" + gbk("李四") + " 00010000\n0001" + gbk("张三") + " 00010000\n0003    " + gbk("张") + "0010000\n",
			[]string{CodeInvalid, CodeDuplicate, CodeSplitChar}, []int{2, 3, 4}},
		{"missing code", "0001" + gbk("张三") + " 000100  \n", []string{CodeMissing}, []int{1}},
		{"empty", "", []string{CodeTruncated}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Parse(strings.NewReader(tc.in), func(Result) error { return nil })
			var pe ParseErrors
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("not ParseErrors: %v", err)
			}
			var codes []string
			var lines []int
			for _, e := range pe {
				codes = append(codes, e.Code)
				lines = append(lines, e.Line)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tc.codes) || fmt.Sprint(lines) != fmt.Sprint(tc.lines) {
				t.Fatalf("got %v at %v (%v), want %v at %v", codes, lines, err, tc.codes, tc.lines)
			}
		})
	}
}

func TestParseDelimitedQuoting(t *testing.T) {
	l, err := ParseLayout([]byte(`
kind: return
style: delimited
encoding: UTF-8
delimiter: ","
quote: '"'
detail:
  - {name: seq}
  - {name: name}
  - {name: amount, unit: yuan}
  - {name: code}
  - {name: message, optional: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []Result
	_, err = l.Parse(strings.NewReader("1,\"张,三\",1.5,OK,\"say \"\"hi\"\"\"\n2,李四,2,OK,\n"), func(r Result) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "张,三" || got[0].AmountFen != 150 || got[0].Message != `say "hi"` || got[1].AmountFen != 200 {
		t.Fatalf("got %+v", got)
	}
	// and render quotes what needs it
	rl, err := ParseLayout([]byte(`
kind: outbound
style: delimited
encoding: UTF-8
delimiter: ","
quote: '"'
detail: [{name: seq}, {name: account}, {name: name}, {name: amount}, {name: remark}]
`))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = rl.Render(&buf, Batch{Count: 1, TotalFen: 5}, func(yield func(Record, error) bool) {
		yield(Record{Seq: 1, Account: "62", Name: "a,b", AmountFen: 5, Remark: `q"`}, nil)
	})
	if err != nil || buf.String() != "1,62,\"a,b\",5,\"q\"\"\"\r\n" {
		t.Fatalf("render %q, %v", buf.String(), err)
	}
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		in   string
		yuan bool
		fen  int64
		ok   bool
	}{
		{"12345", false, 12345, true}, {"000100", false, 100, true}, {"1.5", false, 0, false},
		{"123.45", true, 12345, true}, {"0.01", true, 1, true}, {"12", true, 1200, true}, {"12.3", true, 1230, true},
		{"12.345", true, 0, false}, {"-1.00", true, 0, false}, {".50", true, 0, false}, {"1.", true, 0, false}, {"", true, 0, false},
		{"1e3", true, 0, false}, {"99999999999999999999", false, 0, false},
	} {
		fen, ok := parseMoney([]byte(tc.in), tc.yuan)
		if fen != tc.fen || ok != tc.ok {
			t.Errorf("parseMoney(%q, %v) = %d, %v; want %d, %v", tc.in, tc.yuan, fen, ok, tc.fen, tc.ok)
		}
	}
	for fen, want := range map[int64]string{0: "0.00", 1: "0.01", 10: "0.10", 12345: "123.45", 100: "1.00"} {
		if got := string(appendMoney(nil, fen, true)); got != want {
			t.Errorf("appendMoney(%d) = %q, want %q", fen, got, want)
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "kind: outbound\nstyle: fixed\ndetail: [{name: nope, width: 1}]", "unknown field name"},
		{"no width", "kind: outbound\nstyle: fixed\ndetail: [{name: seq}]", "needs a width"},
		{"bad encoding", "kind: outbound\nstyle: fixed\nencoding: BIG5\ndetail: [{name: seq, width: 1}]", "encoding"},
		{"outbound needs amount", "kind: outbound\nstyle: delimited\ndelimiter: '|'\ndetail: [{name: seq}]", "needs a amount"},
		{"return needs code", "kind: return\nstyle: delimited\ndelimiter: '|'\ndetail: [{name: seq}, {name: amount}]", "code field"},
		{"code only in return", "kind: outbound\nstyle: delimited\ndelimiter: '|'\ndetail: [{name: code}]", "only in return"},
		{"count not in detail", "kind: outbound\nstyle: delimited\ndelimiter: '|'\ndetail: [{name: count}]", "not allowed in a detail"},
		{"xml needs record", "kind: outbound\nstyle: xml\ndetail: [{name: seq, path: S}]", "xml.record"},
		{"yaml typo", "kind: outbound\nstyle: fixed\ndetial: []", "detial"},
		{"bad match", "kind: return\nstyle: delimited\ndelimiter: '|'\nmatch: [name]\ndetail: [{name: name}, {name: amount}, {name: code}]", "match"},
		{"pad", "kind: outbound\nstyle: fixed\ndetail: [{name: seq, width: 2, pad: '中'}]", "pad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLayout([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCallbackErrorStops(t *testing.T) {
	_, ret := loadStyle(t, styles[1])
	in := "H|B1|2|2.00|2|2.00|\n62|张三|1.00|S|成功||\n63|李四|1.00|S|成功||\n"
	stop := errors.New("stop")
	n := 0
	_, err := ret.Parse(strings.NewReader(in), func(Result) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("got %v after %d results", err, n)
	}
}

func TestTooManyErrorsCapped(t *testing.T) {
	_, ret := loadStyle(t, styles[1])
	var b strings.Builder
	b.WriteString("H|B1|0|0.00|0|0.00|\n")
	for i := 0; i < MaxErrors+10; i++ {
		b.WriteString("bad\n")
	}
	_, err := ret.Parse(strings.NewReader(b.String()), func(Result) error { return nil })
	var pe ParseErrors
	if !errors.As(err, &pe) || len(pe) != MaxErrors+1 || pe[MaxErrors].Code != CodeTooManyErrors {
		t.Fatalf("got %d errors", len(pe))
	}
}

func TestParseXMLProblems(t *testing.T) {
	_, ret := loadStyle(t, styles[2])
	head := `<?xml version="1.0" encoding="UTF-8"?><CMS><Head><TrxCode>BATPAY</TrxCode><ReqSerial>X1</ReqSerial><RetCode>AAAAAAA</RetCode></Head><Body>`
	rec := func(seq, amt, code string) string {
		return "<Detail><Seq>" + seq + "</Seq><AcctNo>62</AcctNo><AcctName>张三</AcctName><Amount>" + amt + "</Amount><RetCode>" + code + "</RetCode></Detail>"
	}
	for _, tc := range []struct {
		name, in string
		codes    []string
	}{
		{"ok", head + "<TotalNum>1</TotalNum><TotalAmt>1.00</TotalAmt><SuccNum>1</SuccNum><SuccAmt>1.00</SuccAmt><Details>" + rec("1", "1.00", "AAAAAAA") + "</Details></Body></CMS>", nil},
		{"missing totals", head + "<Details>" + rec("1", "1.00", "AAAAAAA") + "</Details></Body></CMS>",
			[]string{CodeMissing, CodeMissing, CodeMissing, CodeMissing}},
		{"bad amount and missing code", head + "<TotalNum>2</TotalNum><TotalAmt>1.00</TotalAmt><SuccNum>0</SuccNum><SuccAmt>0.00</SuccAmt><Details>" +
			rec("1", "1.001", "E1") + "<Detail><Seq>2</Seq><AcctNo>62</AcctNo><AcctName>李四</AcctName><Amount>1.00</Amount></Detail></Details></Body></CMS>",
			[]string{CodeInvalid, CodeMissing, CodeSummary, CodeSummary}},
		{"mismatched tags", head + "<Details></Detail></Body></CMS>", []string{CodeShape}},
		{"wrong const", strings.Replace(head, "BATPAY", "OTHER", 1) + "<TotalNum>0</TotalNum><TotalAmt>0</TotalAmt><SuccNum>0</SuccNum><SuccAmt>0</SuccAmt></Body></CMS>", []string{CodeConst}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ret.Parse(strings.NewReader(tc.in), func(Result) error { return nil })
			var pe ParseErrors
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("not ParseErrors: %v", err)
			}
			var codes []string
			for _, e := range pe {
				codes = append(codes, e.Code)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tc.codes) {
				t.Fatalf("got %v (%v), want %v", codes, err, tc.codes)
			}
		})
	}
}
