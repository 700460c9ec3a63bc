//go:build amd64 && !purego

package crypto

import (
	"unsafe"

	_ "github.com/emmansun/gmsm/sm3" // links github.com/emmansun/gmsm/internal/sm3, whose code blockMultBy8 is
	"golang.org/x/sys/cpu"
)

// blockMultBy8 is gmsm's eight-lane SM3 compression (internal/sm3,
// sm3blocks_avx2_amd64.s, v0.44.1; its KDF calls it): dig points at eight
// chaining values, updated in place; p at eight inputs of blocks 64-byte
// blocks each; buffer is scratch of at least 2,432 bytes.
//
//go:linkname blockMultBy8 github.com/emmansun/gmsm/internal/sm3.blockMultBy8
//go:noescape
func blockMultBy8(dig **[8]uint32, p **byte, buffer *byte, blocks int)

// lanesOK is gmsm's own condition for its eight-lane code.
var lanesOK = cpu.X86.HasAVX2 && cpu.X86.HasBMI2

// compressLanes runs one compression in each of the eight lanes (laneBatch
// uses the first ones; the rest compute throw-away values from whatever they
// hold).
func compressLanes(states *[8]sm3State, blocks *[8][64]byte) {
	var digs [8]*[8]uint32
	var ptrs [8]*byte
	for i := range 8 {
		digs[i] = (*[8]uint32)(unsafe.Pointer(&states[i]))
		ptrs[i] = &blocks[i][0]
	}
	var scratch [2560]byte
	blockMultBy8(&digs[0], &ptrs[0], &scratch[0], 1)
	clear(scratch[:]) // the message words of personal data
}
