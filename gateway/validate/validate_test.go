package validate

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

var fixedNow = time.Date(2026, 11, 28, 10, 0, 0, 0, chinaZone)

func codeOf(err error) string {
	var ce *CodeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	if err != nil {
		return "not a *CodeError: " + err.Error()
	}
	return ""
}

// withCheck completes 17 digits with their check character.
func withCheck(first17 string) string { return first17 + string(IDCheckChar(first17)) }

func TestNormalizeIDNumber(t *testing.T) {
	cases := []struct {
		name, in, want, code string
	}{
		{"public example", "11010519491231002X", "11010519491231002X", ""},
		{"lower-case x", "11010519491231002x", "11010519491231002X", ""},
		{"spaces trimmed", "  11010519491231002X\t", "11010519491231002X", ""},
		{"ideographic spaces trimmed", "\u300011010519491231002X\u3000", "11010519491231002X", ""},
		{"digit check", withCheck("21010219800101123"), withCheck("21010219800101123"), ""},
		{"15-digit upgrade", "110105491231002", "11010519491231002X", ""},
		{"leap day", withCheck("44030020000229001"), withCheck("44030020000229001"), ""},
		{"born today", withCheck("11010520261128001"), withCheck("11010520261128001"), ""},
		{"HK area 81", withCheck("81000019900101001"), withCheck("81000019900101001"), ""},
		{"empty", "   ", "", CodeIDEmpty},
		{"17 digits", "11010519491231002", "", CodeIDLength},
		{"19 digits", "110105194912310021X", "", CodeIDLength},
		{"letter inside", "1101051949123A002X", "", CodeIDChars},
		{"X not last", "X10105194912310021", "", CodeIDChars},
		{"full-width digit", "１1010519491231002X", "", CodeIDChars},
		{"15 with X", "11010549123100X", "", CodeIDChars},
		{"check digit", "110105194912310021", "", CodeIDCheckDigit},
		{"X where digit due", withCheck("21010219800101123")[:17] + "X", "", CodeIDCheckDigit},
		{"area 00", withCheck("00010519491231002"), "", CodeIDArea},
		{"area 99", withCheck("99010519491231002"), "", CodeIDArea},
		{"month 13", withCheck("11010519491331002"), "", CodeIDBirthDate},
		{"day 00", withCheck("11010519490100002"), "", CodeIDBirthDate},
		{"feb 30", withCheck("11010519490230002"), "", CodeIDBirthDate},
		{"feb 29 non-leap 1900", withCheck("11010519000229002"), "", CodeIDBirthDate},
		{"before 1900", withCheck("11010518991231002"), "", CodeIDBirthDate},
		{"tomorrow", withCheck("11010520261129001"), "", CodeIDBirthDate},
		{"15-digit bad date", "110105491331002", "", CodeIDBirthDate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeIDNumberAt(tc.in, fixedNow)
			if codeOf(err) != tc.code || got != tc.want {
				t.Fatalf("NormalizeIDNumberAt(%q) = %q, %v; want %q, code %q", tc.in, got, err, tc.want, tc.code)
			}
		})
	}
}

func TestNormalizeIDNumberNowInChina(t *testing.T) {
	id := withCheck("11010520261129001")
	// 2026-11-28 16:30 UTC is already 2026-11-29 in China: born "today" is fine.
	if _, err := NormalizeIDNumberAt(id, time.Date(2026, 11, 28, 16, 30, 0, 0, time.UTC)); err != nil {
		t.Fatalf("China date: %v", err)
	}
	if _, err := NormalizeIDNumberAt(id, time.Date(2026, 11, 28, 15, 30, 0, 0, time.UTC)); codeOf(err) != CodeIDBirthDate {
		t.Fatalf("still 11-28 in China: %v", err)
	}
	if _, err := NormalizeIDNumber("11010519491231002X"); err != nil {
		t.Fatalf("NormalizeIDNumber with the real clock: %v", err)
	}
}

func TestNormalizeName(t *testing.T) {
	cases := []struct {
		name, in, want, code string
	}{
		{"han", "张三", "张三", ""},
		{"trim", " \u3000张三\t", "张三", ""},
		{"rare outside BMP", "王𠀀", "王𠀀", ""},
		{"rare ext B in middle", "𡘙小明", "𡘙小明", ""},
		{"canonical dot", "买买提·艾力", "买买提·艾力", ""},
		{"bullet", "买买提•艾力", "买买提·艾力", ""},
		{"fullwidth full stop", "买买提．艾力", "买买提·艾力", ""},
		{"ascii dot", "买买提.艾力", "买买提·艾力", ""},
		{"katakana dot", "买买提・艾力", "买买提·艾力", ""},
		{"hyphenation point", "买买提‧艾力", "买买提·艾力", ""},
		{"halfwidth katakana dot", "买买提･艾力", "买买提·艾力", ""},
		{"dot operator", "买买提⋅艾力", "买买提·艾力", ""},
		{"spaces around dot dropped", "买买提 · 艾力", "买买提·艾力", ""},
		{"two dots", "阿卜杜·热合曼·买买提", "阿卜杜·热合曼·买买提", ""},
		{"fullwidth latin", "ＪＯＨＮ　ＳＭＩＴＨ", "JOHN SMITH", ""},
		{"space run folded", "JOHN   SMITH", "JOHN SMITH", ""},
		{"compat ideograph NFKC", "金\uF900", "金豈", ""},
		{"ling zero han", "王〇", "王〇", ""},
		{"empty", "", "", CodeNameEmpty},
		{"blank", " \u3000 ", "", CodeNameEmpty},
		{"ascii digit", "张3", "", CodeNameDigits},
		{"fullwidth digit", "张３", "", CodeNameDigits},
		{"control", "张\x01三", "", CodeNameInvalidChar},
		{"newline inside", "张\n三", "", CodeNameInvalidChar},
		{"zero width space", "张\u200b三", "", CodeNameInvalidChar},
		{"punctuation", "张三!", "", CodeNameInvalidChar},
		{"comma", "张三，李四", "", CodeNameInvalidChar},
		{"invalid utf8", "张\xff三", "", CodeNameInvalidChar},
		{"leading dot", "·艾力", "", CodeNameMiddleDot},
		{"trailing dot", "艾力·", "", CodeNameMiddleDot},
		{"double dot", "买买提··艾力", "", CodeNameMiddleDot},
		{"double dot across space", "买买提· ·艾力", "", CodeNameMiddleDot},
		{"too long", strings.Repeat("张", MaxNameRunes+1), "", CodeNameTooLong},
		{"longest", strings.Repeat("张", MaxNameRunes), strings.Repeat("张", MaxNameRunes), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeName(tc.in)
			if codeOf(err) != tc.code || got != tc.want {
				t.Fatalf("NormalizeName(%q) = %q, %v; want %q, code %q", tc.in, got, err, tc.want, tc.code)
			}
		})
	}
}

func TestNormalizeAccount(t *testing.T) {
	cases := []struct {
		name, in, kind, want, code string
	}{
		{"card 16", "6222020200112233", "card", "6222020200112233", ""},
		{"card spaces", "6222 0202 0011 2233", "card", "6222020200112233", ""},
		{"card dashes", "6222-0202-0011-2233", "card", "6222020200112233", ""},
		{"fullwidth digits", "６２２２０２０２００１１２２３３", "card", "6222020200112233", ""},
		{"card 12", "123456789012", "card", "123456789012", ""},
		{"card 19", "6217000010001234567", "card", "6217000010001234567", ""},
		{"card 11", "12345678901", "card", "", CodeAccountLength},
		{"card 20", "62170000100012345678", "card", "", CodeAccountLength},
		{"sscard 15", "621700001000123", "sscard", "", CodeAccountLength},
		{"sscard 19", "6217000010001234567", "sscard", "6217000010001234567", ""},
		{"passbook 8", "12345678", "passbook", "12345678", ""},
		{"passbook 32", strings.Repeat("1", 32), "passbook", strings.Repeat("1", 32), ""},
		{"passbook 33", strings.Repeat("1", 33), "passbook", "", CodeAccountLength},
		{"passbook 33 with spaces", strings.Repeat("1 ", 33), "passbook", "", CodeAccountLength},
		{"letter", "6222O20200112233", "card", "", CodeAccountDigits},
		{"dot", "6222.0202.0011.2233", "card", "", CodeAccountDigits},
		{"empty", "  ", "card", "", CodeAccountEmpty},
		{"only dashes", "---", "card", "", CodeAccountEmpty},
		{"unknown kind", "6222020200112233", "wallet", "", CodeAccountKind},
		{"empty kind", "6222020200112233", "", "", CodeAccountKind},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAccount(tc.in, tc.kind)
			if codeOf(err) != tc.code || got != tc.want {
				t.Fatalf("NormalizeAccount(%q, %q) = %q, %v; want %q, code %q", tc.in, tc.kind, got, err, tc.want, tc.code)
			}
		})
	}
}

func TestLuhn(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"79927398713", true},
		{"79927398710", false},
		{"4111111111111111", true},
		{"4111111111111112", false},
		{"0", true},
		{"", false},
		{"4111 1111 1111 1111", false},
	}
	for _, tc := range cases {
		if got := Luhn(tc.in); got != tc.want {
			t.Errorf("Luhn(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIssuesCap(t *testing.T) {
	s := Issues{Max: 3}
	for i := 1; i <= 10; i++ {
		s.Add(Issue{Seq: i, Field: "name", Code: CodeNameEmpty})
		s.Add(Issue{Seq: i, Field: "account", Code: CodeAccountLuhn, Severity: Warning})
	}
	if len(s.List) != 6 || s.Dropped != 7 || s.DroppedWarnings != 7 {
		t.Fatalf("list %d dropped %d/%d", len(s.List), s.Dropped, s.DroppedWarnings)
	}
	if !s.HasErrors() || s.ErrorCount() != 10 || s.WarningCount() != 10 {
		t.Fatalf("counts: %v %d %d", s.HasErrors(), s.ErrorCount(), s.WarningCount())
	}
	if e := s.Errors(); len(e) != 3 || e[2].Seq != 3 || e[0].Message != Message(CodeNameEmpty) {
		t.Fatalf("errors = %+v", e)
	}
	if w := s.Warnings(); len(w) != 3 || w[0].Code != CodeAccountLuhn {
		t.Fatalf("warnings = %+v", w)
	}
	// Only warnings: no errors.
	var w Issues
	w.Add(Issue{Code: CodeAccountLuhn, Severity: Warning})
	if w.HasErrors() {
		t.Fatal("a warning counted as an error")
	}
	// Zero Max means DefaultMaxIssues, never unbounded.
	var d Issues
	for i := 0; i < DefaultMaxIssues+5; i++ {
		d.Add(Issue{Code: CodeNameEmpty})
	}
	if len(d.List) != DefaultMaxIssues || d.Dropped != 5 {
		t.Fatalf("default cap: %d listed, %d dropped", len(d.List), d.Dropped)
	}
}

func TestIssueJSON(t *testing.T) {
	b, err := json.Marshal(Issue{Seq: 7, Field: "id_number", Code: CodeIDCheckDigit, Message: "m", Severity: Warning})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"seq":7,"field":"id_number","code":"id_number.check_digit","message":"m"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
}

func TestEveryCodeHasMessage(t *testing.T) {
	for code, msg := range Codes() {
		if msg == "" || !strings.Contains(msg, "(") {
			t.Errorf("%s: message %q lacks Chinese+English form", code, msg)
		}
	}
}

func rules() *Rules {
	return &Rules{CapFen: map[string]int64{"GDZL": 5000000}, Now: func() time.Time { return fixedNow }}
}

func goodRecord(seq int) Record {
	return Record{Seq: seq, Name: "张三", IDNumber: "11010519491231002X", Account: "4111111111111111",
		AccountKind: "card", AmountFen: 12345, Remark: "2026年耕地地力补贴"}
}

func TestRecord(t *testing.T) {
	type want struct {
		field, code string
		sev         Severity
	}
	cases := []struct {
		name   string
		luhn   string
		mutate func(*Record)
		want   []want
	}{
		{"good", "", func(r *Record) {}, nil},
		{"amount zero (rule 1/amount > 0)", "", func(r *Record) { r.AmountFen = 0 }, []want{{"amount_fen", CodeAmountNonPositive, Error}}},
		{"amount negative", "", func(r *Record) { r.AmountFen = -1 }, []want{{"amount_fen", CodeAmountNonPositive, Error}}},
		{"amount at cap", "", func(r *Record) { r.AmountFen = 5000000 }, nil},
		{"amount over cap", "", func(r *Record) { r.AmountFen = 5000001 }, []want{{"amount_fen", CodeAmountOverCap, Error}}},
		{"luhn warn default", "", func(r *Record) { r.Account = "4111111111111112" }, []want{{"account", CodeAccountLuhn, Warning}}},
		{"luhn error", LuhnError, func(r *Record) { r.Account = "4111111111111112" }, []want{{"account", CodeAccountLuhn, Error}}},
		{"luhn off", LuhnOff, func(r *Record) { r.Account = "4111111111111112" }, nil},
		{"passbook never luhn", LuhnError, func(r *Record) { r.Account, r.AccountKind = "4111111111111112", "passbook" }, nil},
		{"bad kind", "", func(r *Record) { r.AccountKind = "x" }, []want{{"account_kind", CodeAccountKind, Error}}},
		{"remark control", "", func(r *Record) { r.Remark = "a\x00b" }, []want{{"remark", CodeRemarkInvalidChar, Error}}},
		{"remark too long", "", func(r *Record) { r.Remark = strings.Repeat("补", MaxRemarkRunes+1) }, []want{{"remark", CodeRemarkTooLong, Error}}},
		{"everything wrong at once", "", func(r *Record) {
			r.Name, r.IDNumber, r.Account, r.AmountFen = "", "110105194912310021", "12", 0
		}, []want{
			{"name", CodeNameEmpty, Error}, {"id_number", CodeIDCheckDigit, Error},
			{"account", CodeAccountLength, Error}, {"amount_fen", CodeAmountNonPositive, Error},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rules()
			r.Luhn = tc.luhn
			rec := goodRecord(9)
			tc.mutate(&rec)
			var out Issues
			r.Record("GDZL", &rec, &out)
			if len(out.List) != len(tc.want) {
				t.Fatalf("issues = %+v, want %+v", out.List, tc.want)
			}
			for i, w := range tc.want {
				got := out.List[i]
				if got.Seq != 9 || got.Field != w.field || got.Code != w.code || got.Severity != w.sev || got.Message == "" {
					t.Errorf("issue %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestRecordNormalizesInPlace(t *testing.T) {
	rec := Record{Seq: 1, Name: " 买买提．艾力 ", IDNumber: "110105491231002", Account: "4111 1111 1111 1111",
		AccountKind: "card", AmountFen: 1, Remark: "  补贴 "}
	var out Issues
	rules().Record("GDZL", &rec, &out)
	if len(out.List) != 0 {
		t.Fatalf("issues: %+v", out.List)
	}
	want := Record{Seq: 1, Name: "买买提·艾力", IDNumber: "11010519491231002X", Account: "4111111111111111",
		AccountKind: "card", AmountFen: 1, Remark: "补贴"}
	if rec != want {
		t.Fatalf("record = %+v, want %+v", rec, want)
	}
}

func TestRecordUnknownSubsidy(t *testing.T) {
	r := rules()
	var out Issues
	if r.Subsidy("NOPE", &out) || len(out.List) != 1 || out.List[0].Code != CodeSubsidyUnknown || out.List[0].Seq != 0 {
		t.Fatalf("Subsidy: %+v", out.List)
	}
	if !r.Subsidy("GDZL", &out) {
		t.Fatal("known subsidy refused")
	}
	// Without a cap no amount passes: a missing cap must never mean "no limit".
	out = Issues{}
	rec := goodRecord(1)
	r.Record("NOPE", &rec, &out)
	if len(out.List) != 1 || out.List[0].Code != CodeAmountNoCap {
		t.Fatalf("Record with unknown subsidy: %+v", out.List)
	}
}

func TestIssuesNeverCarryValues(t *testing.T) {
	rec := Record{Seq: 1, Name: "张3", IDNumber: "110105194912310021", Account: "6222O20200112233",
		AccountKind: "card", AmountFen: 1}
	var out Issues
	rules().Record("GDZL", &rec, &out)
	b, _ := json.Marshal(out.List)
	for _, secret := range []string{"110105194912310021", "6222O20200112233", "张3"} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("issue JSON leaks %q: %s", secret, b)
		}
	}
	if len(out.List) != 3 {
		t.Fatalf("issues = %+v", out.List)
	}
}

func TestSeqTracker(t *testing.T) {
	var out Issues
	st := NewSeqTracker(130)
	for seq := 1; seq <= 130; seq++ {
		if seq == 64 || seq == 65 || seq == 130 {
			continue
		}
		if !st.Add(seq, &out) {
			t.Fatalf("seq %d refused: %+v", seq, out.List)
		}
	}
	if st.Add(0, &out) || st.Add(131, &out) || st.Add(-5, &out) || st.Add(7, &out) {
		t.Fatal("bad seq accepted")
	}
	if st.Finish(&out) {
		t.Fatal("Finish true with missing seqs")
	}
	got := []string{}
	for _, i := range out.List {
		got = append(got, strconv.Itoa(i.Seq)+":"+i.Code)
	}
	want := "0:seq.range 131:seq.range -5:seq.range 7:seq.duplicate 64:seq.missing 65:seq.missing 130:seq.missing"
	if strings.Join(got, " ") != want {
		t.Fatalf("issues = %s\nwant     %s", strings.Join(got, " "), want)
	}
	full := NewSeqTracker(3)
	var ok Issues
	for _, s := range []int{3, 1, 2} {
		full.Add(s, &ok)
	}
	if !full.Finish(&ok) || len(ok.List) != 0 || full.Seen() != 3 {
		t.Fatalf("complete 1..3 refused: %+v", ok.List)
	}
	if NewSeqTracker(0).Add(1, &ok) {
		t.Fatal("n=0 accepted seq 1")
	}
}

// Money rule 2: total_count and total_fen must match the records, or the batch is
// refused.
func TestTotalsMoneyRule2(t *testing.T) {
	amounts := []int64{100, 250, 1}
	cases := []struct {
		name         string
		count, total int64
		ok           bool
		codes        []string
	}{
		{"match", 3, 351, true, nil},
		{"count off", 4, 351, false, []string{CodeControlCount}},
		{"total off by one fen", 3, 350, false, []string{CodeControlTotalFen}},
		{"both off", 2, 1, false, []string{CodeControlCount, CodeControlTotalFen}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tot Totals
			for _, a := range amounts {
				tot.Add(a)
			}
			var out Issues
			if got := tot.Check(tc.count, tc.total, &out); got != tc.ok {
				t.Fatalf("Check = %v, want %v", got, tc.ok)
			}
			if len(out.List) != len(tc.codes) {
				t.Fatalf("issues = %+v", out.List)
			}
			for i, c := range tc.codes {
				if out.List[i].Code != c || out.List[i].Seq != 0 || !out.HasErrors() {
					t.Errorf("issue %d = %+v, want %s", i, out.List[i], c)
				}
			}
		})
	}
}

func TestTotalsOverflow(t *testing.T) {
	var tot Totals
	tot.Add(math.MaxInt64)
	tot.Add(1)
	tot.Add(-1) // must not bring a wrapped sum back into range
	var out Issues
	// A wrapped sum would equal MinInt64 (+ -1); any claimed total must be refused.
	for _, claimed := range []int64{math.MaxInt64, math.MinInt64, math.MaxInt64 - 1} {
		if tot.Check(3, claimed, &out) {
			t.Fatalf("overflowed totals accepted against %d", claimed)
		}
	}
	if out.List[0].Code != CodeControlOverflow {
		t.Fatalf("issues = %+v", out.List)
	}
	var neg Totals
	neg.Add(math.MinInt64)
	neg.Add(-1)
	if !neg.Overflow {
		t.Fatal("negative overflow not detected")
	}
}

// Money rule 1: amounts are int64 fen; a float or string amount is refused.
func TestDecodeAmountFen(t *testing.T) {
	cases := []struct {
		raw  string
		want int64
		code string
	}{
		{"100", 100, ""},
		{"0", 0, ""},
		{"-5", -5, ""},
		{" 42\n", 42, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"-9223372036854775808", math.MinInt64, ""},
		{"9223372036854775808", 0, CodeAmountRange},
		{"18446744073709551616", 0, CodeAmountRange},
		{"99999999999999999999999999", 0, CodeAmountRange},
		{"1.0", 0, CodeAmountNotInteger},
		{"100.50", 0, CodeAmountNotInteger},
		{"0.5", 0, CodeAmountNotInteger},
		{"1e2", 0, CodeAmountNotInteger},
		{"1E2", 0, CodeAmountNotInteger},
		{"-1.5", 0, CodeAmountNotInteger},
		{`"100"`, 0, CodeAmountType},
		{"null", 0, CodeAmountType},
		{"true", 0, CodeAmountType},
		{"{}", 0, CodeAmountType},
		{"[1]", 0, CodeAmountType},
		{"+1", 0, CodeAmountFormat},
		{"01", 0, CodeAmountFormat},
		{"007", 0, CodeAmountFormat},
		{"-01", 0, CodeAmountFormat},
		{"-", 0, CodeAmountNotInteger},
		{"", 0, CodeAmountMissing},
		{"  ", 0, CodeAmountMissing},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := DecodeAmountFen(json.RawMessage(tc.raw))
			if codeOf(err) != tc.code || got != tc.want {
				t.Fatalf("DecodeAmountFen(%q) = %d, %v; want %d, code %q", tc.raw, got, err, tc.want, tc.code)
			}
		})
	}
}

// The amount of a real JSON record, decoded through encoding/json as the intake
// will: a float in the body never becomes money.
func TestDecodeAmountFenInJSON(t *testing.T) {
	var rec struct {
		AmountFen json.RawMessage `json:"amount_fen"`
	}
	for body, code := range map[string]string{
		`{"amount_fen": 12345}`:   "",
		`{"amount_fen": 123.45}`:  CodeAmountNotInteger,
		`{"amount_fen": "12345"}`: CodeAmountType,
		`{}`:                      CodeAmountMissing,
	} {
		rec.AmountFen = nil
		if err := json.Unmarshal([]byte(body), &rec); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeAmountFen(rec.AmountFen); codeOf(err) != code {
			t.Errorf("%s: err %v, want %q", body, err, code)
		}
	}
}

func TestAcceptingPathDoesNotAllocate(t *testing.T) {
	r := rules()
	base := goodRecord(1)
	var out Issues
	allocs := testing.AllocsPerRun(200, func() {
		rec := base
		r.Record("GDZL", &rec, &out)
	})
	if allocs != 0 || len(out.List) != 0 {
		t.Fatalf("Record on a normal record: %.1f allocs, issues %+v", allocs, out.List)
	}
}

func BenchmarkRecord(b *testing.B) {
	r := rules()
	recs := []Record{
		goodRecord(1),
		{Seq: 2, Name: "买买提．艾力", IDNumber: "11010519491231002x", Account: "4111 1111 1111 1111", AccountKind: "card", AmountFen: 500, Remark: "补贴"},
		{Seq: 3, Name: "李四", IDNumber: withCheck("44030020000229001"), Account: "12345678901234", AccountKind: "passbook", AmountFen: 99, Remark: ""},
		{Seq: 4, Name: "王𠀀", IDNumber: "110105194912310021", Account: "4111111111111112", AccountKind: "card", AmountFen: 0, Remark: "x"},
	}
	out := Issues{Max: 1000}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec := recs[i&3]
		r.Record("GDZL", &rec, &out)
	}
}

func BenchmarkRecordClean(b *testing.B) {
	r := rules()
	base := goodRecord(1)
	var out Issues
	b.ReportAllocs()
	for b.Loop() {
		rec := base
		r.Record("GDZL", &rec, &out)
	}
}

// normalizeName takes the runes hanFirst..hanLast without looking at them;
// that is right only while every one of them is what the general path sees
// as a plain Han character: Han, not a digit, not mapped (width or dot
// variant), not a compatibility ideograph. A name of them normalizes to
// itself.
func TestHanBlock(t *testing.T) {
	for r := rune(hanFirst); r <= hanLast; r++ {
		if !unicode.Is(unicode.Han, r) || unicode.IsDigit(r) || mapNameRune(r) != r || isDotVariant(r) ||
			r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F {
			t.Fatalf("U+%04X is not a plain Han character", r)
		}
		if s := string([]rune{'王', r}); !norm.NFKC.IsNormalString(s) {
			t.Fatalf("U+%04X is not NFKC", r)
		}
	}
}
