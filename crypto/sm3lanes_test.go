package crypto

import (
	"bytes"
	"crypto/hmac"
	"fmt"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm3"
)

// withLanes runs fn with the eight-lane path on and off (where the CPU has
// it), so that both are held to the public API's results.
func withLanes(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	saved := lanesOK
	defer func() { lanesOK = saved }()
	for _, on := range []bool{true, false} {
		if on && !saved {
			t.Log("no SM3 lanes on this CPU: only the one-at-a-time path is tested")
			continue
		}
		lanesOK = on
		t.Run(fmt.Sprint("lanes=", on), fn)
	}
}

// messages of every length around the one-block limit, in batches that
// leave lanes unused and mix short and long ones.
func laneMessages() [][]byte {
	var msgs [][]byte
	for n := 0; n <= 130; n++ {
		msgs = append(msgs, bytes.Repeat([]byte{byte('a' + n%26)}, n))
	}
	for i := range 21 { // ID-number-like values
		msgs = append(msgs, []byte(fmt.Sprintf("%017dX", i*7919)))
	}
	return msgs
}

func TestSM3LanesMatch(t *testing.T) {
	withLanes(t, func(t *testing.T) {
		msgs := laneMessages()
		for _, cut := range []int{0, 1, 7, 8, 9, 16, 17, len(msgs)} {
			got := SM3ShortsTo([]byte("prefix"), msgs[:cut])
			if !bytes.HasPrefix(got, []byte("prefix")) || len(got) != len("prefix")+32*cut {
				t.Fatalf("%d messages: %d bytes back", cut, len(got))
			}
			for i, m := range msgs[:cut] {
				if want := sm3.Sum(m); !bytes.Equal(got[len("prefix")+32*i:][:32], want[:]) {
					t.Fatalf("%d messages: message %d (%d bytes): %x, want %x", cut, i, len(m), got[len("prefix")+32*i:][:32], want)
				}
			}
		}
	})
}

func TestBlindIndexesMatch(t *testing.T) {
	k, _ := newKeyring(t)
	withLanes(t, func(t *testing.T) {
		var values []string
		for _, m := range laneMessages() {
			values = append(values, string(m))
		}
		for _, domain := range []string{"id_number", "account", ""} {
			for _, cut := range []int{0, 3, 8, 24, len(values)} {
				got := k.BlindIndexesTo(nil, domain, values[:cut])
				if len(got) != BlindIndexSize*cut {
					t.Fatalf("%d values: %d bytes back", cut, len(got))
				}
				for i, v := range values[:cut] {
					if want := k.BlindIndex(domain, v); !bytes.Equal(got[BlindIndexSize*i:][:BlindIndexSize], want) {
						t.Fatalf("domain %q, value %d (%d bytes): %x, want %x", domain, i, len(v), got[BlindIndexSize*i:][:BlindIndexSize], want)
					}
				}
			}
		}
	})
}

// HMAC-SM3 through crypto/hmac with keys shorter than, as long as and longer
// than a block: the lanes' ipad and opad states agree with it.
func TestHMACStates(t *testing.T) {
	withLanes(t, func(t *testing.T) {
		for _, n := range []int{1, 32, 64, 65, 100} {
			key := bytes.Repeat([]byte{0xa7}, n)
			inner, outer := hmacStates(key)
			k := &DataKeyring{inner: inner, outer: outer}
			k.hmacPool.New = func() any { return hmac.New(sm3.New, key) }
			msg := "some value"
			m := hmac.New(sm3.New, key)
			m.Write([]byte("d\x00" + msg))
			if got := k.BlindIndexesTo(nil, "d", []string{msg}); !bytes.Equal(got, m.Sum(nil)) {
				t.Fatalf("key of %d bytes: %x, want %x", n, got, m.Sum(nil))
			}
		}
	})
}

func FuzzSM3Lanes(f *testing.F) {
	f.Add([]byte("id_number"), "110101199003077777", 3)
	f.Add([]byte(strings.Repeat("x", 60)), "6222020200112233445", 9)
	k, _ := newKeyring(f)
	f.Fuzz(func(t *testing.T, a []byte, v string, n int) {
		n = (n%20+20)%20 + 1
		msgs := make([][]byte, n)
		values := make([]string, n)
		for i := range n {
			msgs[i] = append(append([]byte(nil), a...), byte(i))
			values[i] = v + string(rune('a'+i))
		}
		got := SM3ShortsTo(nil, msgs)
		idx := k.BlindIndexesTo(nil, string(a), values)
		for i := range n {
			if want := sm3.Sum(msgs[i]); !bytes.Equal(got[32*i:][:32], want[:]) {
				t.Fatalf("SM3 of message %d: %x, want %x", i, got[32*i:][:32], want)
			}
			if want := k.BlindIndex(string(a), values[i]); !bytes.Equal(idx[32*i:][:32], want) {
				t.Fatalf("blind index %d: %x, want %x", i, idx[32*i:][:32], want)
			}
		}
	})
}

func BenchmarkBlindIndexes(b *testing.B) {
	k, _ := newKeyring(b)
	values := make([]string, 1000)
	for i := range values {
		values[i] = fmt.Sprintf("%017dX", i*7919)
	}
	var dst []byte
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			dst = dst[:0]
			for _, v := range values {
				dst = k.BlindIndexTo(dst, "id_number", v)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(values)), "ns/index")
	})
	b.Run("lanes", func(b *testing.B) {
		for b.Loop() {
			dst = k.BlindIndexesTo(dst[:0], "id_number", values)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(values)), "ns/index")
	})
}
