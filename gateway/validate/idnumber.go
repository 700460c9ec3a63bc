package validate

import "time"

var (
	errIDEmpty      = codeErr(CodeIDEmpty)
	errIDLength     = codeErr(CodeIDLength)
	errIDChars      = codeErr(CodeIDChars)
	errIDArea       = codeErr(CodeIDArea)
	errIDBirthDate  = codeErr(CodeIDBirthDate)
	errIDCheckDigit = codeErr(CodeIDCheckDigit)
)

// chinaZone is China Standard Time (no daylight saving): birth dates and "today"
// are Chinese calendar dates.
var chinaZone = time.FixedZone("CST", 8*60*60)

var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idCheckChars = "10X98765432"

// validProvince marks the first two digits that name a province-level division
// (GB/T 2260), plus 71/81/82 (Taiwan, Hong Kong, Macao), 83 (residence permits of
// Taiwan residents) and 91 (2023 foreigners' permanent residence ID cards).
var validProvince = func() (t [100]bool) {
	for _, p := range []int{11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
		41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91} {
		t[p] = true
	}
	return t
}()

// IDCheckChar computes the GB 11643 check character of the first 17 digits.
// first17 must hold exactly 17 ASCII digits.
func IDCheckChar(first17 string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return idCheckChars[sum%11]
}

// NormalizeIDNumber checks and normalizes a GB 11643 ID number against today's
// date. See NormalizeIDNumberAt.
func NormalizeIDNumber(s string) (string, error) { return NormalizeIDNumberAt(s, time.Now()) }

// NormalizeIDNumberAt trims s, upper-cases a final x, upgrades a 15-digit number to
// 18 (inserting "19" before the year and computing the check character), and
// checks the area code, the birth date (a real date from 1900 on, not after now's
// date in China) and the check character. The error is a *CodeError. An already
// normal 18-character input is returned without allocating.
func NormalizeIDNumberAt(s string, now time.Time) (string, error) {
	return normalizeID(s, todayYMD(now))
}

func todayYMD(now time.Time) int {
	y, m, d := now.In(chinaZone).Date()
	return y*10000 + int(m)*100 + d
}

func normalizeID(s string, today int) (string, error) {
	s = trimSpace(s)
	switch len(s) {
	case 0:
		return "", errIDEmpty
	case 18:
		for i := 0; i < 17; i++ {
			if s[i] < '0' || s[i] > '9' {
				return "", errIDChars
			}
		}
		last := s[17]
		if last == 'x' {
			last = 'X'
		} else if (last < '0' || last > '9') && last != 'X' {
			return "", errIDChars
		}
		if err := checkAreaAndBirth(s[:6], s[6:14], today); err != nil {
			return "", err
		}
		if IDCheckChar(s) != last {
			return "", errIDCheckDigit
		}
		if last != s[17] {
			return s[:17] + "X", nil
		}
		return s, nil
	case 15:
		for i := 0; i < 15; i++ {
			if s[i] < '0' || s[i] > '9' {
				return "", errIDChars
			}
		}
		var b [18]byte
		copy(b[:6], s[:6])
		b[6], b[7] = '1', '9'
		copy(b[8:17], s[6:15])
		if err := checkAreaAndBirth(string(b[:6]), string(b[6:14]), today); err != nil {
			return "", err
		}
		b[17] = IDCheckChar(string(b[:17]))
		return string(b[:]), nil
	default:
		if hasOnlyIDChars(s) {
			return "", errIDLength
		}
		return "", errIDChars
	}
}

func hasOnlyIDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == 'x' || c == 'X') {
			return false
		}
	}
	return true
}

// checkAreaAndBirth checks 6 area digits and 8 birth digits (YYYYMMDD).
func checkAreaAndBirth(area, birth string, today int) error {
	if !validProvince[int(area[0]-'0')*10+int(area[1]-'0')] {
		return errIDArea
	}
	y := atoiDigits(birth[:4])
	m := atoiDigits(birth[4:6])
	d := atoiDigits(birth[6:8])
	if y < 1900 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return errIDBirthDate
	}
	if y*10000+m*100+d > today {
		return errIDBirthDate
	}
	return nil
}

func atoiDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// trimSpace trims ASCII white space and the ideographic space U+3000 without
// allocating.
func trimSpace(s string) string {
	for {
		switch {
		case len(s) > 0 && isASCIISpace(s[0]):
			s = s[1:]
		case len(s) > 0 && isASCIISpace(s[len(s)-1]):
			s = s[:len(s)-1]
		case len(s) >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80:
			s = s[3:]
		case len(s) >= 3 && s[len(s)-3] == 0xE3 && s[len(s)-2] == 0x80 && s[len(s)-1] == 0x80:
			s = s[:len(s)-3]
		default:
			return s
		}
	}
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
