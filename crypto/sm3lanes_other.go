//go:build !amd64 || purego

package crypto

// lanesOK is false: without gmsm's eight-lane code the functions of
// sm3lanes.go hash one message at a time through the public API.
var lanesOK = false

func compressLanes(*[8]sm3State, *[8][64]byte) { panic("crypto: no SM3 lanes on this platform") }
