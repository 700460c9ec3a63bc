package validate

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzNormalizeIDNumber(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "11010519491231002x", "110105491231002", " 110105194912310021 ", "", "X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeIDNumberAt(s, fixedNow)
		if err != nil {
			if codeOf(err) == "" || strings.HasPrefix(codeOf(err), "not a") {
				t.Fatalf("error %v is not a *CodeError", err)
			}
			if out != "" {
				t.Fatalf("error with output %q", out)
			}
			return
		}
		if len(out) != 18 {
			t.Fatalf("accepted %q as %q: not 18 characters", s, out)
		}
		if IDCheckChar(out) != out[17] {
			t.Fatalf("accepted %q as %q: check character wrong", s, out)
		}
		again, err := NormalizeIDNumberAt(out, fixedNow)
		if err != nil || again != out {
			t.Fatalf("output %q does not re-validate: %q, %v", out, again, err)
		}
	})
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"张三", "买买提．艾力", "王𠀀", "ＪＯＨＮ　ＳＭＩＴＨ", "·a", "a··b", "金\uF900", "a \u00b7 b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeName(s)
		if err != nil {
			if _, ok := err.(*CodeError); !ok {
				t.Fatalf("error %v is not a *CodeError", err)
			}
			return
		}
		if out == "" || !utf8.ValidString(out) || utf8.RuneCountInString(out) > MaxNameRunes {
			t.Fatalf("accepted %q as %q", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.IsDigit(r) || r != MiddleDot && isDotVariant(r) {
				t.Fatalf("accepted %q as %q containing %U", s, out, r)
			}
		}
		again, err := NormalizeName(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, out, again, err)
		}
	})
}

func FuzzNormalizeAccount(f *testing.F) {
	for _, s := range []string{"6222 0202 0011 2233", "６２２２０２０２００１１２２３３", "12345678", "a", "---"} {
		f.Add(s, "card")
		f.Add(s, "passbook")
	}
	f.Add("6217000010001234567", "sscard")
	f.Fuzz(func(t *testing.T, s, kind string) {
		out, err := NormalizeAccount(s, kind)
		if err != nil {
			if _, ok := err.(*CodeError); !ok {
				t.Fatalf("error %v is not a *CodeError", err)
			}
			return
		}
		k := AccountKinds[kind]
		if len(out) < k.MinLen || len(out) > k.MaxLen {
			t.Fatalf("accepted %q (%s) as %q: bad length", s, kind, out)
		}
		for i := 0; i < len(out); i++ {
			if out[i] < '0' || out[i] > '9' {
				t.Fatalf("accepted %q as %q: not digits", s, out)
			}
		}
		if again, err := NormalizeAccount(out, kind); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, out, again, err)
		}
		_ = Luhn(out)
	})
}

func FuzzDecodeAmountFen(f *testing.F) {
	for _, s := range []string{"100", "0", "-5", "1.0", "1e2", `"100"`, "+1", "01", "9223372036854775808", "-9223372036854775808", " 7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := DecodeAmountFen(json.RawMessage(s))
		if err != nil {
			if _, ok := err.(*CodeError); !ok {
				t.Fatalf("error %v is not a *CodeError", err)
			}
			return
		}
		// Accepted: it is a canonical JSON integer that encoding/json agrees on.
		trimmed := strings.Trim(s, " \t\r\n")
		if trimmed != strconv.FormatInt(v, 10) && trimmed != "-0" {
			t.Fatalf("accepted %q as %d: not the canonical integer", s, v)
		}
		var j int64
		if err := json.Unmarshal([]byte(s), &j); err != nil || j != v {
			t.Fatalf("accepted %q as %d; encoding/json says %d, %v", s, v, j, err)
		}
	})
}
