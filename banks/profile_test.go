package banks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/banks/format"
)

func TestLoadShippedProfiles(t *testing.T) {
	for _, tc := range []struct {
		dir, code, channel, enc string
		max                     int
	}{
		{"rcc", "RCC", "sftp", "GBK", 50000},
		{"pipe", "PIPE", "sftp", "GB18030", 20000},
		{"xml", "XMLB", "https", "GB18030", 5000},
		{"demo", "DEMO", "sftp", "GB18030", 50000},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			p, err := LoadProfile(filepath.Join("..", "testdata", "banks", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			if p.Code != tc.code || p.Channel.Type != tc.channel || p.MaxRecordsPerFile != tc.max ||
				p.Outbound.Encoding() != tc.enc || p.FeedbackDeadline <= 0 || p.SignerID == "" {
				t.Fatalf("loaded %+v", p)
			}
			if p.Outbound.Kind != "outbound" || p.Return.Kind != "return" || !p.Return.IsPaid(p.PaidCodes[0]) {
				t.Fatalf("layouts not wired: %v %v %v", p.Outbound.Kind, p.Return.Kind, p.PaidCodes)
			}
		})
	}
	p, err := LoadProfile("../testdata/banks/demo/profile.yaml")
	if err != nil || p.FeedbackDeadline != 10*time.Minute || p.Channel.Options["port"] != "2222" || p.Envelope.Cipher != "sm4-gcm" {
		t.Fatalf("demo: %+v, %v", p, err)
	}
}

func TestProfileValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := `
code: bad code
name: ""
channel: {type: ftp, options: {nested: {a: 1}}}
outbound: missing.yaml
return:
  kind: outbound
  style: delimited
  delimiter: "|"
  detail: [{name: seq}, {name: account}, {name: name}, {name: amount}]
luhn: maybe
max_records_per_file: 0
send_windows: ["not cron"]
feedback_deadline: soon
envelope: {cipher: aes}
file_name: "PAY_{date}/{nope}.txt"
feedback_pattern: "[unclosed"
codes:
  map: {"E1": NOT_A_REASON, "E2": PAID}
  messages: [{pattern: "(", reason: OTHER}]
`
	path := filepath.Join(dir, "profile.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(path)
	if p == nil || err == nil {
		t.Fatalf("got %v, %v", p, err)
	}
	msg := err.Error()
	for _, want := range []string{"channel.options.nested", "feedback_deadline", "outbound:", "missing.yaml", "send_windows[0]",
		"NOT_A_REASON", "codes.messages[0]: pattern", "code \"bad code\"", "name: required", "channel.type \"ftp\"",
		"return: layout kind", "luhn \"maybe\"", "max_records_per_file 0", "envelope.cipher", "file_name:",
		"feedback_pattern", "codes.paid", "codes.map[E2]: PAID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems do not mention %q:\n%s", want, msg)
		}
	}
	if n := len(strings.Split(msg, "\n")); n < 18 {
		t.Errorf("only %d problems reported:\n%s", n, msg)
	}
}

func TestClassify(t *testing.T) {
	p, err := LoadProfile("../testdata/banks/rcc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code, msg string
		want      Reason
	}{
		{"0000", "交易成功", ReasonPaid},
		{" 0000 ", "", ReasonPaid},
		{"1001", "", ReasonNameMismatch},
		{"1004", "whatever", ReasonAccountClosed},
		{"9999", "", ReasonBankRetryable},
		{"1999", "户名与账户名称不符", ReasonNameMismatch}, // profile pattern
		{"1999", "卡或帐号已销户", ReasonAccountClosed},
		{"1999", "卡或帐号不存在", ReasonAccountNotFound},
		{"1999", "卡或帐号已挂失", ReasonAccountLost},
		{"1999", "卡或帐号未激活", ReasonAccountInactive},
		{"1999", "账户冻结", ReasonAccountFrozen},
		{"1999", "全冻户", ReasonAccountFrozen},
		{"1999", "只收不付", ReasonAccountRestricted},
		{"1999", "只收不贷", ReasonAccountRestricted},
		{"1999", "久悬户", ReasonAccountDormant},
		{"1999", "睡眠户", ReasonAccountDormant},
		{"1999", "银行原因，请重新发送", ReasonBankRetryable},
		{"1999", "证件号码不符", ReasonIDMismatch},
		{"1999", "超过单日限额", ReasonAmountLimit},
		{"7777", "未知错误", ReasonOther},
		{"", "", ReasonOther},
	} {
		if got := p.Classify(tc.code, tc.msg); got != tc.want {
			t.Errorf("Classify(%q, %q) = %s, want %s", tc.code, tc.msg, got, tc.want)
		}
	}
	p.DefaultMessages = false
	if got := p.Classify("1999", "卡或帐号已销户"); got != ReasonOther {
		t.Errorf("default patterns applied although disabled: %s", got)
	}
}

func TestReasons(t *testing.T) {
	want := map[Reason]ReasonClass{
		ReasonPaid: ReasonClassNone, ReasonNameMismatch: ReasonClassFixData, ReasonIDMismatch: ReasonClassFixData,
		ReasonAccountNotFound: ReasonClassFixData, ReasonAccountClosed: ReasonClassNewAccount,
		ReasonAccountFrozen: ReasonClassNewAccount, ReasonAccountLost: ReasonClassNewAccount,
		ReasonAccountDormant: ReasonClassNewAccount, ReasonAccountInactive: ReasonClassNewAccount,
		ReasonAccountRestricted: ReasonClassNewAccount, ReasonAmountLimit: ReasonClassNewAccount,
		ReasonBankRetryable: ReasonClassRetry, ReasonOther: ReasonClassFixData,
	}
	all := AllReasons()
	if len(all) != len(want) {
		t.Fatalf("AllReasons has %d, want %d", len(all), len(want))
	}
	labels := map[string]bool{}
	for _, r := range all {
		if r.Class() != want[r] {
			t.Errorf("%s: class %s, want %s", r, r.Class(), want[r])
		}
		l := r.LabelZH()
		if l == "" || labels[l] {
			t.Errorf("%s: label %q empty or shared", r, l)
		}
		labels[l] = true
		if got, err := ParseReason(string(r)); err != nil || got != r {
			t.Errorf("ParseReason(%s) = %s, %v", r, got, err)
		}
	}
	if _, err := ParseReason("paid"); err == nil {
		t.Error("ParseReason accepts lower case")
	}
	if Reason("NOPE").Class() != ReasonClassFixData {
		t.Error("an unknown reason must never be retried blindly")
	}
}

func TestOutboundFileName(t *testing.T) {
	p, err := LoadProfile("../testdata/banks/pipe")
	if err != nil {
		t.Fatal(err)
	}
	b := format.Batch{BankBatchNo: "P2026/../x", FileSeq: 7, Date: time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)}
	// 20:00 UTC is the 29th in Beijing; '/' and '.' runs cannot escape the directory.
	if got, want := p.OutboundFileName(b), "PIPE_20261129_P2026_.._x_007.dat.p7"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSendWindows(t *testing.T) {
	p, err := LoadProfile("../testdata/banks/pipe") // "30-59 8 * * 1-5", "* 9-17 * * 1-5"
	if err != nil {
		t.Fatal(err)
	}
	cst := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2026, 11, 27, 8, 29, 59, 0, cst), false}, // Friday
		{time.Date(2026, 11, 27, 8, 30, 0, 0, cst), true},
		{time.Date(2026, 11, 27, 17, 59, 30, 0, cst), true},
		{time.Date(2026, 11, 27, 18, 0, 0, 0, cst), false},
		{time.Date(2026, 11, 28, 10, 0, 0, 0, cst), false},      // Saturday
		{time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), true},   // 10:00 in Beijing
		{time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), false}, // 20:00 in Beijing
	} {
		if got := p.InSendWindow(tc.t); got != tc.want {
			t.Errorf("InSendWindow(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
	next := p.NextSendTime(time.Date(2026, 11, 28, 10, 0, 0, 0, cst))
	if want := time.Date(2026, 11, 30, 8, 30, 0, 0, cst); !next.Equal(want) {
		t.Errorf("NextSendTime = %v, want %v", next, want)
	}
	demo, err := LoadProfile("../testdata/banks/demo")
	if err != nil {
		t.Fatal(err)
	}
	if !demo.InSendWindow(time.Date(2026, 11, 28, 3, 0, 0, 0, cst)) {
		t.Error("no windows must mean any time")
	}
}

func TestLuhnValid(t *testing.T) {
	for in, want := range map[string]bool{
		"6222021234567890128": true, "79927398713": true, "79927398710": false, "": false, "1": false, "6222-0212": false,
	} {
		if got := LuhnValid(in); got != want {
			t.Errorf("LuhnValid(%q) = %v", in, got)
		}
	}
}

func TestLoadProfileErrors(t *testing.T) {
	if _, err := LoadProfile("../testdata/banks/nope"); err == nil {
		t.Fatal("missing profile loaded")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "profile.yaml")
	os.WriteFile(path, []byte("code: X\nunknown_key: 1\n"), 0o644)
	if _, err := LoadProfile(path); err == nil || !strings.Contains(err.Error(), "unknown_key") {
		t.Fatalf("unknown key: %v", err)
	}
	var target interface{ Unwrap() []error }
	os.WriteFile(path, []byte("code: X\n"), 0o644)
	_, err := LoadProfile(path)
	if !errors.As(err, &target) {
		t.Fatalf("want errors.Join of every problem, got %T", err)
	}
}
