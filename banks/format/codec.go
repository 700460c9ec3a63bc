package format

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// codec converts between UTF-8 strings and a layout's encoding without
// allocating: it appends into caller-owned buffers, with an ASCII fast path.
// The x/text GBK/GB18030 transformers are stateless, so one codec is shared.
type codec struct {
	name string
	kind int // encUTF8, encGBK, encGB18030
	enc  transform.Transformer
	dec  transform.Transformer

	bmpOnce sync.Once
	bmp     []uint16 // see bmpTable
}

// bmpTable returns the codec's two-byte code of every rune of the Basic
// Multilingual Plane that enc writes as two bytes (0 for the others: ASCII,
// unencodable runes, GB18030's four-byte sequences, the GBK euro sign). It
// is built once, from enc itself, so that a name of Han characters is
// encoded by lookups instead of the transformer: the same bytes.
func (c *codec) bmpTable() []uint16 {
	c.bmpOnce.Do(func() {
		t := make([]uint16, 0x10000)
		var src [utf8.UTFMax]byte
		var dst [8]byte
		for r := rune(utf8.RuneSelf); r < 0x10000; r++ {
			if r >= 0xD800 && r <= 0xDFFF {
				continue // surrogates: not in a valid UTF-8 string
			}
			n := utf8.EncodeRune(src[:], r)
			nDst, nSrc, err := c.enc.Transform(dst[:], src[:n], true)
			if err == nil && nSrc == n && nDst == 2 {
				t[r] = uint16(dst[0])<<8 | uint16(dst[1])
			}
		}
		c.bmp = t
	})
	return c.bmp
}

// appendBMP appends s encoded through bmpTable; ok is false (dst then holds
// some of s) when s has a rune the table lacks or invalid UTF-8: the
// transformer then decides.
func (c *codec) appendBMP(dst []byte, s string) (out []byte, ok bool) {
	t := c.bmpTable()
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			dst = append(dst, b)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r >= 0x10000 || t[r] == 0 {
			return dst, false
		}
		dst = append(dst, byte(t[r]>>8), byte(t[r]))
		i += size
	}
	return dst, true
}

const (
	encUTF8 = iota
	encGBK
	encGB18030
)

var (
	utf8Codec    = &codec{name: "UTF-8", kind: encUTF8}
	gbkCodec     = &codec{name: "GBK", kind: encGBK, enc: simplifiedchinese.GBK.NewEncoder().Transformer, dec: simplifiedchinese.GBK.NewDecoder().Transformer}
	gb18030Codec = &codec{name: "GB18030", kind: encGB18030, enc: simplifiedchinese.GB18030.NewEncoder().Transformer, dec: simplifiedchinese.GB18030.NewDecoder().Transformer}
)

func codecFor(name string) (*codec, error) {
	switch strings.ToUpper(strings.ReplaceAll(name, "-", "")) {
	case "GB18030":
		return gb18030Codec, nil
	case "GBK", "CP936":
		return gbkCodec, nil
	case "UTF8", "":
		return utf8Codec, nil
	}
	return nil, fmt.Errorf("encoding %q: want GB18030, GBK or UTF-8", name)
}

// errUnencodable carries the rune the encoding cannot represent.
type errUnencodable rune

func (e errUnencodable) Error() string {
	return fmt.Sprintf("%q (U+%04X) cannot be encoded", rune(e), rune(e))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isASCIIBytes(s []byte) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendEncode appends s (UTF-8) in the codec's encoding.
func (c *codec) appendEncode(dst []byte, s string) ([]byte, error) {
	if isASCII(s) {
		return append(dst, s...), nil
	}
	if c.kind != encUTF8 {
		if out, ok := c.appendBMP(dst, s); ok { // ok: s is valid UTF-8
			return out, nil
		}
	}
	if !utf8.ValidString(s) {
		// x/text would write U+FFFD for it: refuse instead of altering data.
		return dst, errors.New("invalid UTF-8 in the value")
	}
	if c.kind == encUTF8 {
		return append(dst, s...), nil
	}
	// The transformer only reads src; viewing the string's bytes avoids a copy.
	src := unsafe.Slice(unsafe.StringData(s), len(s))
	for {
		start := len(dst)
		if cap(dst)-start < 2*len(src)+8 {
			dst = append(dst, make([]byte, 2*len(src)+8)...)[:start]
		}
		nDst, nSrc, err := c.enc.Transform(dst[start:cap(dst)], src, true)
		dst = dst[:start+nDst]
		if err == nil {
			return dst, nil
		}
		if err == transform.ErrShortDst {
			src = src[nSrc:]
			continue
		}
		r, _ := utf8.DecodeRune(src[nSrc:])
		return dst, errUnencodable(r)
	}
}

// appendDecode appends b (in the codec's encoding) as UTF-8. Bytes that are
// not valid in the encoding are an error.
func (c *codec) appendDecode(dst, b []byte) ([]byte, error) {
	if isASCIIBytes(b) {
		return append(dst, b...), nil
	}
	if c.kind == encUTF8 {
		if !utf8.Valid(b) {
			return dst, errors.New("invalid UTF-8 bytes")
		}
		return append(dst, b...), nil
	}
	if i := c.invalidAt(b); i >= 0 {
		return dst, fmt.Errorf("invalid %s byte sequence at byte %d", c.name, i+1)
	}
	src := b
	for {
		start := len(dst)
		if cap(dst)-start < 2*len(src)+8 {
			dst = append(dst, make([]byte, 2*len(src)+8)...)[:start]
		}
		nDst, nSrc, err := c.dec.Transform(dst[start:cap(dst)], src, true)
		out := dst[start : start+nDst]
		dst = dst[:start+nDst]
		if err == transform.ErrShortDst {
			src = src[nSrc:]
			continue
		}
		if err != nil {
			return dst, fmt.Errorf("decode %s: %w", c.name, err)
		}
		// Structurally valid but unmapped sequences come out as U+FFFD.
		if strings.Contains(unsafe.String(unsafe.SliceData(out), len(out)), "\uFFFD") {
			return dst, fmt.Errorf("bytes with no character in %s", c.name)
		}
		return dst, nil
	}
}

// charLen returns the length of the character starting at b[0] in the codec's
// encoding, or 0 if the bytes there are not a valid (complete) character.
func (c *codec) charLen(b []byte) int {
	x := b[0]
	if x < 0x80 {
		return 1
	}
	switch c.kind {
	case encUTF8:
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return 0
		}
		return n
	case encGBK:
		if x == 0x80 { // CP936 euro sign
			return 1
		}
		if x == 0xFF || len(b) < 2 {
			return 0
		}
		if t := b[1]; t >= 0x40 && t <= 0xFE && t != 0x7F {
			return 2
		}
		return 0
	default: // GB18030
		if x == 0x80 || x == 0xFF || len(b) < 2 {
			return 0
		}
		t := b[1]
		if t >= 0x40 && t <= 0xFE && t != 0x7F {
			return 2
		}
		if t >= 0x30 && t <= 0x39 && len(b) >= 4 && b[2] >= 0x81 && b[2] <= 0xFE && b[3] >= 0x30 && b[3] <= 0x39 {
			return 4
		}
		return 0
	}
}

// invalidAt returns the index of the first invalid character in b, or -1.
func (c *codec) invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < 0x80 {
			i++
			continue
		}
		n := c.charLen(b[i:])
		if n == 0 {
			return i
		}
		i += n
	}
	return -1
}

// scanFixed walks b once, character by character in the codec's encoding,
// and returns the offset of the first invalid byte (or -1) and the first
// offset in cuts (ascending) that falls inside a multi-byte character (or -1).
func (c *codec) scanFixed(b []byte, cuts []int) (invalid, split int) {
	invalid, split = -1, -1
	k := 0
	for i := 0; i < len(b); {
		if b[i] < 0x80 {
			i++
			continue
		}
		n := c.charLen(b[i:])
		if n == 0 {
			if invalid < 0 {
				invalid = i
			}
			n = 1
		}
		for k < len(cuts) && cuts[k] <= i {
			k++
		}
		if split < 0 && k < len(cuts) && cuts[k] < i+n {
			split = cuts[k]
		}
		if invalid >= 0 && split >= 0 {
			return
		}
		i += n
	}
	return
}
