package format

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/transform"
)

// refEncode is appendEncode as it was: the transformer for every non-ASCII
// value.
func refEncode(c *codec, s string) ([]byte, error) {
	out, _, err := transform.Bytes(c.enc, []byte(s))
	return out, err
}

// The lookup table (appendBMP) writes what the transformer writes, for every
// rune of the Basic Multilingual Plane and for runes between ASCII.
func TestAppendEncodeMatchesTransformer(t *testing.T) {
	for _, c := range []*codec{gbkCodec, gb18030Codec} {
		var got []byte
		checked := 0
		for r := rune(utf8.RuneSelf); r < 0x10000; r++ {
			if r >= 0xD800 && r <= 0xDFFF {
				continue
			}
			s := "a" + string(r) + "1" + string(r)
			want, werr := refEncode(c, s)
			var err error
			got, err = c.appendEncode(got[:0], s)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%s U+%04X: err %v, transformer %v", c.name, r, err, werr)
			}
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%s U+%04X: % X, transformer % X", c.name, r, got, want)
			}
			checked++
		}
		if n := c.bmpCount(); n < 20000 {
			t.Fatalf("%s: only %d runes in the table", c.name, n)
		}
		t.Logf("%s: %d runes checked, %d in the table", c.name, checked, c.bmpCount())
	}
	// Outside the plane and invalid UTF-8 go to the transformer (and its checks).
	for _, s := range []string{"王𠀀", "吉\xff田", "\uFFFD"} {
		_, err := gb18030Codec.appendEncode(nil, s)
		_, werr := refEncode(gb18030Codec, s)
		if s == "吉\xff田" {
			if err == nil {
				t.Errorf("%q: invalid UTF-8 encoded", s)
			}
			continue
		}
		if (err == nil) != (werr == nil) {
			t.Errorf("%q: err %v, transformer %v", s, err, werr)
		}
	}
}

func (c *codec) bmpCount() int {
	n := 0
	for _, v := range c.bmpTable() {
		if v != 0 {
			n++
		}
	}
	return n
}
