package validate

// AccountKind is the rule for one account kind: its length range in digits and
// whether its numbers are expected to pass the Luhn check.
type AccountKind struct {
	MinLen, MaxLen int
	Luhn           bool
}

// AccountKinds are the account kinds of DESIGN.md. Bank cards are typically 16-19
// digits (12 for some old issuers); social security cards' financial accounts are
// bank cards; passbook and internal account numbers vary widely by bank and never
// follow Luhn.
var AccountKinds = map[string]AccountKind{
	"card":     {MinLen: 12, MaxLen: 19, Luhn: true},
	"sscard":   {MinLen: 16, MaxLen: 19, Luhn: true},
	"passbook": {MinLen: 8, MaxLen: 32, Luhn: false},
}

// maxAccountDigits bounds the scratch buffer; no kind allows more.
const maxAccountDigits = 32

var (
	errAccountEmpty  = codeErr(CodeAccountEmpty)
	errAccountDigits = codeErr(CodeAccountDigits)
	errAccountLength = codeErr(CodeAccountLength)
	errAccountKind   = codeErr(CodeAccountKind)
)

// NormalizeAccount removes spaces (ASCII and ideographic) and dashes, maps
// full-width digits to ASCII, and checks that only digits remain and that their
// count fits kind (see AccountKinds). It does not apply Luhn; Rules.Record does,
// as the bank profile says. The error is a *CodeError. An already normal account
// is returned without allocating.
func NormalizeAccount(s string, kind string) (string, error) {
	k, ok := AccountKinds[kind]
	if !ok {
		return "", errAccountKind
	}
	return normalizeAccount(s, k)
}

// normalizeAccount is NormalizeAccount for the kind's rule k.
func normalizeAccount(s string, k AccountKind) (string, error) {
	s = trimSpace(s)
	if s == "" {
		return "", errAccountEmpty
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			clean = false
			break
		}
	}
	if !clean {
		var buf [maxAccountDigits + 1]byte
		n := 0
		for _, r := range s {
			switch {
			case r == ' ' || r == '-' || r == '\u3000' || r == '\uFF0D' || r == '\u2010' || r == '\u2011' || r == '\u2012' || r == '\u2013' || r == '\u2014' || r == '\u2212':
				continue
			case r >= '０' && r <= '９':
				r = r - '０' + '0'
			case r >= '0' && r <= '9':
			default:
				return "", errAccountDigits
			}
			if n == len(buf) {
				return "", errAccountLength
			}
			buf[n] = byte(r)
			n++
		}
		if n == 0 {
			return "", errAccountEmpty
		}
		s = string(buf[:n])
	}
	if len(s) < k.MinLen || len(s) > k.MaxLen {
		return "", errAccountLength
	}
	return s, nil
}

// Luhn reports whether digits (ASCII digits only) pass the Luhn check. An empty
// string or a non-digit fails.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
