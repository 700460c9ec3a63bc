package crypto

import (
	"encoding"
	"encoding/binary"

	"github.com/emmansun/gmsm/sm3"
)

// SM3 of many short messages at once.
//
// Intake computes three SM3-based values a record (the HMAC-SM3 blind
// indexes of ID number and account, and the dedupe key), each of one
// 64-byte block or two: five compressions a record, about 1 CPU-s at
// 1,000,000 records on one core, and the sealer's largest cost. gmsm runs
// eight independent compressions at once with AVX2 (the multi-lane code its
// KDF uses), about 3.5 times the throughput of one after the other on this
// project's machine. It does not export that code, so sm3lanes_amd64.go
// links to it by name; the lanes are used only where gmsm itself would use
// them (AVX2 and BMI2), and every result is the one the public sm3 API
// gives (TestSM3LanesMatch, FuzzSM3Lanes). Elsewhere the same functions run
// one message at a time through the public API.

// sm3State is SM3's chaining value (the eight words, native order).
type sm3State [8]uint32

// sm3IV is SM3's initial value.
var sm3IV = sm3State{0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e}

// maxLaneMessage is the longest message that fits one padded block: the
// lanes take only those (the 0x80 byte and the 64-bit length follow it).
const maxLaneMessage = 55

// stateAfter returns the chaining value after the 64-byte block b, from the
// public API's marshalled state ("sm3\x03", then the eight words).
func stateAfter(b *[64]byte) sm3State {
	h := sm3.New()
	h.Write(b[:])
	m, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || len(m) < 36 || string(m[:4]) != "sm3\x03" {
		panic("crypto: unexpected SM3 state encoding") // gmsm's format changed: TestSM3LanesMatch says so first
	}
	var s sm3State
	for i := range s {
		s[i] = binary.BigEndian.Uint32(m[4+4*i:])
	}
	clear(m)
	return s
}

// laneBatch holds up to eight messages for one multi-lane compression: each
// lane's start state and its padded block.
type laneBatch struct {
	n      int
	states [8]sm3State
	blocks [8][64]byte
}

// add puts msg (at most maxLaneMessage bytes) into the next lane, to be
// compressed from start as if prefix bytes had already been hashed (a
// multiple of 64: 0, or 64 after an HMAC key block).
func (lb *laneBatch) add(start *sm3State, prefix int, msg ...[]byte) {
	b := &lb.blocks[lb.n]
	n := 0
	for _, m := range msg {
		n += copy(b[n:], m)
	}
	b[n] = 0x80
	clear(b[n+1 : 56])
	binary.BigEndian.PutUint64(b[56:], uint64(prefix+n)*8)
	lb.states[lb.n] = *start
	lb.n++
}

// run compresses the lanes in use and writes lane i's digest to out[i].
func (lb *laneBatch) run(out *[8][32]byte) {
	compressLanes(&lb.states, &lb.blocks)
	for i := range lb.n {
		for w, v := range lb.states[i] {
			binary.BigEndian.PutUint32(out[i][4*w:], v)
		}
	}
	clear(lb.blocks[:lb.n]) // the blocks held personal data
	lb.n = 0
}

// runLanes appends a 32-byte digest for each of n messages to dst, in
// order. fits says whether message i fits one lane's block and add puts it in
// the next lane; one appends the digest of a message that does not, or of
// every message where the CPU has no lanes, the one-at-a-time way. With
// outer set, each lane's digest is hashed once more from outer (HMAC's outer
// hash) before it is kept.
func runLanes(dst []byte, n int, fits func(i int) bool, add func(lb *laneBatch, i int), one func(dst []byte, i int) []byte, outer *sm3State) []byte {
	if !lanesOK {
		for i := range n {
			dst = one(dst, i)
		}
		return dst
	}
	var lb laneBatch
	var out [8][32]byte
	var at [8]int // where lane i's digest goes in dst
	flush := func() {
		used := lb.n
		lb.run(&out)
		if outer != nil {
			for i := range used {
				lb.add(outer, sm3.BlockSize, out[i][:])
			}
			lb.run(&out)
		}
		for i := range used {
			copy(dst[at[i]:], out[i][:])
		}
		clear(out[:]) // inner hashes of personal data
	}
	for i := range n {
		if !fits(i) {
			dst = one(dst, i)
			continue
		}
		at[lb.n] = len(dst)
		dst = append(dst, make([]byte, sm3.Size)...)
		add(&lb, i)
		if lb.n == len(lb.states) {
			flush()
		}
	}
	if lb.n > 0 {
		flush()
	}
	return dst
}

// SM3ShortsTo appends SM3(msg) for each message of msgs (32 bytes each, in
// order) to dst. Messages of up to 55 bytes go eight at a time where the CPU
// allows it; longer ones one by one. The result is always sm3.Sum's.
func SM3ShortsTo(dst []byte, msgs [][]byte) []byte {
	return runLanes(dst, len(msgs),
		func(i int) bool { return len(msgs[i]) <= maxLaneMessage },
		func(lb *laneBatch, i int) { lb.add(&sm3IV, 0, msgs[i]) },
		func(dst []byte, i int) []byte { s := sm3.Sum(msgs[i]); return append(dst, s[:]...) },
		nil)
}
