package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// GB/T 32905-2016 appendix A.
func TestSM3PublishedVectors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"abc", "abc", "66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0"},
		{"64-byte", strings.Repeat("abcd", 16), "debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := sm3.Sum([]byte(tc.in))
			if !bytes.Equal(got[:], unhex(t, tc.want)) {
				t.Fatalf("SM3(%q) = %x, want %s", tc.in, got, tc.want)
			}
		})
	}
}

// GB/T 32907-2016 appendix A, examples 1 and 2, through the block path this
// package makes the default (see ct.go).
func TestSM4PublishedVectors(t *testing.T) {
	key := unhex(t, "0123456789abcdeffedcba9876543210")
	block, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Clone(key) // plaintext equals the key in the standard's example
	block.Encrypt(buf, buf)
	if want := unhex(t, "681edf34d206965e86b3e94f536e4246"); !bytes.Equal(buf, want) {
		t.Fatalf("one block: %x, want %x", buf, want)
	}
	back := make([]byte, 16)
	block.Decrypt(back, buf)
	if !bytes.Equal(back, key) {
		t.Fatalf("decrypt: %x", back)
	}
	buf = bytes.Clone(key)
	for i := 0; i < 1_000_000; i++ {
		block.Encrypt(buf, buf)
	}
	if want := unhex(t, "595298c7c6fd271f0402f804c33d3f66"); !bytes.Equal(buf, want) {
		t.Fatalf("1,000,000 iterations: %x, want %x", buf, want)
	}
}

// SM2 round trip with a non-default signer ID (the ID of the GB/T 32918
// examples): the signature verifies with that ID only.
func TestSM2RoundTripCustomSignerID(t *testing.T) {
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	uid := []byte("ALICE123@YAHOO.COM")
	msg := []byte("message digest")
	sig, err := SignDetached(key, uid, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDetached(&key.PublicKey, uid, msg, sig); err != nil {
		t.Fatalf("verify with signer id: %v", err)
	}
	if err := VerifyDetached(&key.PublicKey, nil, msg, sig); !errorsIs(err, ErrBadSignature) {
		t.Fatalf("verify with default id: %v, want ErrBadSignature", err)
	}
	if err := VerifyDetached(&key.PublicKey, uid, []byte("message digesT"), sig); !errorsIs(err, ErrBadSignature) {
		t.Fatalf("verify other message: %v, want ErrBadSignature", err)
	}
	// The streaming signer produces the same kind of signature.
	sig2, err := SignReader(key, uid, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDetached(&key.PublicKey, uid, msg, sig2); err != nil {
		t.Fatalf("SignReader signature: %v", err)
	}
	if err := VerifyReader(&key.PublicKey, uid, bytes.NewReader(msg), sig); err != nil {
		t.Fatalf("VerifyReader: %v", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
