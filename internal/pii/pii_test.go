package pii

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestMasks(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{MaskID("21010219800101123X"), "2101**********123X"},
		{MaskID("123"), "***"},
		{MaskAccount("6222020200112230123"), "6222 **** 0123"},
		{MaskAccount("62220"), "*****"},
		{MaskName("张三丰"), "张**"},
		{MaskName("阿依古丽·买买提"), "阿*******"},
		{MaskName("王"), "*"},
		{MaskName(""), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q want %q", c.got, c.want)
		}
	}
}

func TestLogValuesNeverLeak(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	id, acct, name := "21010219800101123X", "6222020200112230123", "张三丰"
	log.Info("x", "id", ID(id), "account", Account(acct), "name", Name(name))
	s := buf.String() + fmt.Sprint(ID(id), Account(acct), Name(name)) + fmt.Sprintf("%v %s", ID(id), Account(acct))
	for _, secret := range []string{id, acct, "三丰", "0219800101"} {
		if strings.Contains(s, secret) {
			t.Fatalf("%q leaked in %s", secret, s)
		}
	}
}

func TestScrubDigits(t *testing.T) {
	for in, want := range map[string]string{
		`line 7: amount: not an amount in fen: "6222020200112230123"`: `line 7: amount: not an amount in fen: "6222 **** 0123"`,
		"户名与账号不符 21010219800101123X":                                  "户名与账号不符 2101 **** 123X",
		"code 123456789 is short":                                     "code 123456789 is short",
	} {
		if got := ScrubDigits(in); got != want {
			t.Errorf("ScrubDigits(%q) = %q, want %q", in, got, want)
		}
	}
}
