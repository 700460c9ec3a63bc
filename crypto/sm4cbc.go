package crypto

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/emmansun/gmsm/padding"
	"github.com/emmansun/gmsm/sm4"
)

// SM4CBCEncrypt encrypts plaintext with SM4-CBC and PKCS#7 padding, the
// format of `openssl enc -sm4-cbc -K <hex> -iv <hex>` (no salt header), for
// bank APIs that want bare SM4-CBC. A nil iv draws a random one; the result
// is iv || ciphertext. A CBC ciphertext has no integrity: use it only inside
// something signed.
func SM4CBCEncrypt(key, iv, plaintext []byte) ([]byte, error) {
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypto: sm4-cbc: %w", err)
	}
	out := make([]byte, sm4.BlockSize, sm4.BlockSize+len(plaintext)+sm4.BlockSize)
	if iv == nil {
		if _, err := rand.Read(out); err != nil {
			return nil, fmt.Errorf("crypto: random: %w", err)
		}
	} else if len(iv) != sm4.BlockSize {
		return nil, fmt.Errorf("crypto: sm4-cbc: iv must be %d bytes", sm4.BlockSize)
	} else {
		copy(out, iv)
	}
	padded := padding.NewPKCS7Padding(sm4.BlockSize).Pad(plaintext)
	out = out[:sm4.BlockSize+len(padded)]
	cipher.NewCBCEncrypter(block, out[:sm4.BlockSize]).CryptBlocks(out[sm4.BlockSize:], padded)
	return out, nil
}

// SM4CBCDecrypt reverses SM4CBCEncrypt (input iv || ciphertext). A bad length
// or padding gives ErrTampered (padding checked in constant time).
func SM4CBCDecrypt(key, ivAndCiphertext []byte) ([]byte, error) {
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypto: sm4-cbc: %w", err)
	}
	n := len(ivAndCiphertext)
	if n < 2*sm4.BlockSize || n%sm4.BlockSize != 0 {
		return nil, fmt.Errorf("crypto: sm4-cbc: length %d: %w", n, ErrTampered)
	}
	iv, ct := ivAndCiphertext[:sm4.BlockSize], ivAndCiphertext[sm4.BlockSize:]
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	out, err := padding.NewPKCS7Padding(sm4.BlockSize).ConstantTimeUnpad(plain)
	if err != nil {
		return nil, fmt.Errorf("crypto: sm4-cbc: padding: %w", ErrTampered)
	}
	return out, nil
}
