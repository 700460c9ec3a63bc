package validate

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameRunes bounds a name in characters. Bank layouts' byte limits in their
// encoding are checked later, against the layout.
const MaxNameRunes = 50

// MiddleDot is the one middle dot names are stored with (U+00B7).
const MiddleDot = '·'

var (
	errNameEmpty       = codeErr(CodeNameEmpty)
	errNameDigits      = codeErr(CodeNameDigits)
	errNameInvalidChar = codeErr(CodeNameInvalidChar)
	errNameMiddleDot   = codeErr(CodeNameMiddleDot)
	errNameTooLong     = codeErr(CodeNameTooLong)
)

// hanFirst..hanLast is the block of CJK Unified Ideographs, all of it Han.
const hanFirst, hanLast = 0x4E00, 0x9FFF

// isDotVariant reports the characters people and systems type for the middle dot
// of minority names (买买提·艾力).
func isDotVariant(r rune) bool {
	switch r {
	case '·', // U+00B7 middle dot (canonical)
		'.',      // full stop
		'\u0387', // Greek ano teleia
		'\u2022', // bullet •
		'\u2024', // one dot leader ․
		'\u2027', // hyphenation point ‧
		'\u2219', // bullet operator ∙
		'\u22C5', // dot operator ⋅
		'\u2E31', // word separator middle dot ⸱
		'\u30FB', // katakana middle dot ・
		'\uFE52', // small full stop ﹒
		'\uFF0E', // fullwidth full stop ．
		'\uFF65': // halfwidth katakana middle dot ･
		return true
	}
	return false
}

// NormalizeName trims a name, maps full-width ASCII and the ideographic space to
// their narrow forms, maps every middle-dot variant to U+00B7, folds runs of
// spaces to one, applies NFKC where compatibility ideographs occur, and checks it:
// not empty, no digits, no control or other non-name characters, no leading,
// trailing or doubled dot, at most MaxNameRunes characters. Han characters outside
// the basic plane (rare characters) are accepted. The error is a *CodeError. An
// already normal name is returned without allocating.
func NormalizeName(s string) (string, error) { return normalizeName(s, true) }

func normalizeName(s string, nfkc bool) (string, error) {
	s = trimSpace(s)
	if s == "" {
		return "", errNameEmpty
	}
	// Pass 1: check, and find out whether anything must change.
	clean, compat := true, false
	n := 0
	lastDot, prevSpace := false, false // lastDot: the last non-space rune was a dot
	for i, r := range s {
		n++
		if r >= hanFirst && r <= hanLast {
			// Most names are these: Han, not a digit, nothing to map or
			// fold, no compatibility ideograph (TestHanBlock).
			lastDot, prevSpace = false, false
			continue
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return "", errNameInvalidChar
			}
		}
		r2 := mapNameRune(r)
		if r2 != r {
			clean = false
		}
		switch {
		case r2 == ' ':
			if prevSpace || lastDot {
				clean = false // runs of spaces fold; a space next to a dot is dropped
			}
			prevSpace = true
			continue
		case r2 == MiddleDot:
			if n == 1 || lastDot {
				return "", errNameMiddleDot
			}
			if prevSpace {
				clean = false
			}
			lastDot, prevSpace = true, false
			continue
		case r2 >= '0' && r2 <= '9' || unicode.IsDigit(r2):
			return "", errNameDigits
		case r2 < 0x80:
			if !(r2 >= 'A' && r2 <= 'Z' || r2 >= 'a' && r2 <= 'z') {
				return "", errNameInvalidChar
			}
		case unicode.Is(unicode.Han, r2):
			if nfkc && (r2 >= 0xF900 && r2 <= 0xFAFF || r2 >= 0x2F800 && r2 <= 0x2FA1F) &&
				!norm.NFKC.IsNormalString(string(r2)) {
				compat, clean = true, false
			}
		case unicode.IsLetter(r2) || unicode.Is(unicode.Mn, r2):
			// other scripts' letters (Mongolian, Tibetan, Uyghur, Latin with accents)
		default:
			return "", errNameInvalidChar
		}
		lastDot, prevSpace = false, false
	}
	if lastDot {
		return "", errNameMiddleDot
	}
	if clean {
		if n > MaxNameRunes {
			return "", errNameTooLong
		}
		return s, nil
	}
	// Pass 2: rebuild.
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	lastDot = false
	for _, r := range s {
		r = mapNameRune(r)
		if r == ' ' {
			pendingSpace = !lastDot
			continue
		}
		if r == MiddleDot {
			pendingSpace = false
			lastDot = true
			b.WriteRune(r)
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		lastDot = false
		b.WriteRune(r)
	}
	out := b.String()
	if compat {
		// NFKC may change more than the ideograph (a presentation form can become a
		// space and a mark): check its output from the start, once.
		return normalizeName(norm.NFKC.String(out), false)
	}
	if utf8.RuneCountInString(out) > MaxNameRunes {
		return "", errNameTooLong
	}
	return out, nil
}

// mapNameRune maps width variants and dot variants; other runes are unchanged.
func mapNameRune(r rune) rune {
	switch {
	case r == '\u3000' || r == '\t':
		return ' '
	case isDotVariant(r):
		return MiddleDot
	case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
		return r - 0xFF01 + '!'
	}
	return r
}
