// Package pii masks personal data (names, ID numbers, account numbers) for logs,
// errors and reports. Every log line and error that mentions such a value goes
// through it; it never returns more than the masks of DESIGN.md reveal.
package pii

import (
	"log/slog"
	"strings"
	"unicode/utf8"
)

// MaskID keeps the 4-digit area prefix and the last 4 characters of an ID
// number: 2101**********123X. Short or malformed input is masked whole.
func MaskID(s string) string {
	if len(s) < 10 || !isASCII(s) {
		return stars(utf8.RuneCountInString(s))
	}
	return s[:4] + strings.Repeat("*", len(s)-8) + s[len(s)-4:]
}

// MaskAccount keeps the first and last 4 digits: 6222 **** 0123.
func MaskAccount(s string) string {
	if len(s) < 10 || !isASCII(s) {
		return stars(utf8.RuneCountInString(s))
	}
	return s[:4] + " **** " + s[len(s)-4:]
}

// MaskName keeps the first character: 张**. A one-character name is starred.
func MaskName(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 1 {
		return stars(n)
	}
	_, size := utf8.DecodeRuneInString(s)
	return s[:size] + stars(n-1)
}

func stars(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("*", n)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// ID is an ID number that masks itself in slog output and %v.
type ID string

func (v ID) LogValue() slog.Value { return slog.StringValue(MaskID(string(v))) }
func (v ID) String() string       { return MaskID(string(v)) }

// Account is an account number that masks itself in slog output and %v.
type Account string

func (v Account) LogValue() slog.Value { return slog.StringValue(MaskAccount(string(v))) }
func (v Account) String() string       { return MaskAccount(string(v)) }

// Name is a person's name that masks itself in slog output and %v.
type Name string

func (v Name) LogValue() slog.Value { return slog.StringValue(MaskName(string(v))) }
func (v Name) String() string       { return MaskName(string(v)) }

// ScrubDigits masks, in free text (a bank's message, a parse error quoting a
// field), every run of 10 or more digits, or 17 digits and a final X: banks
// and misaligned files sometimes carry an account or ID number there.
func ScrubDigits(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i == 17 && j < len(s) && (s[j] == 'X' || s[j] == 'x') {
			j++
		}
		switch {
		case j-i >= 10:
			b.WriteString(MaskAccount(s[i:j]))
			i = j
		case j > i:
			b.WriteString(s[i:j])
			i = j
		default:
			b.WriteByte(s[i]) // UTF-8 bytes pass through one by one
			i++
		}
	}
	return b.String()
}
