package crypto

import (
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm4"
	"github.com/emmansun/gmsm/smx509"
)

// writeEnvelope writes the same GB/T 35275 EnvelopedData that gmsm's
// pkcs7.EncryptSM (or, with cfcaProfile, cfca.EnvelopeMessage) produces, but
// streams the ciphertext to dst instead of marshalling it into two more
// copies: for a 10 MB file that is 20 MB less to allocate, clear and copy.
// TestEnvelopeMatchesGmsm checks that gmsm opens what this writes.
//
// The content is encrypted in place (its backing array is overwritten; for
// SM4-CBC it needs 16 bytes of spare capacity to avoid a copy).
func writeEnvelope(dst io.Writer, cipherName string, content []byte, to []*smx509.Certificate, cfcaProfile bool) error {
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("crypto: random: %w", err)
	}
	defer clear(key)
	version := 1
	if cfcaProfile {
		version = 2
	}
	recips := make([]envRecipient, 0, len(to))
	for _, c := range to {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || !sm2.IsSM2PublicKey(pub) {
			return fmt.Errorf("crypto: seal: recipient %q: %w", c.Subject.CommonName, errNotSM2Cert)
		}
		wrapped, err := sm2.EncryptASN1(rand.Reader, pub, key)
		if err != nil {
			return fmt.Errorf("crypto: seal: wrap key for %q: %w", c.Subject.CommonName, err)
		}
		var rid asn1.RawValue
		if cfcaProfile {
			rid = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: c.SubjectKeyId}
		} else {
			b, err := asn1.Marshal(struct {
				Issuer asn1.RawValue
				Serial *big.Int
			}{asn1.RawValue{FullBytes: c.RawIssuer}, c.SerialNumber})
			if err != nil {
				return fmt.Errorf("crypto: seal: recipient %q: %w", c.Subject.CommonName, err)
			}
			rid = asn1.RawValue{FullBytes: b}
		}
		recips = append(recips, envRecipient{
			Version:                version,
			RID:                    rid,
			KeyEncryptionAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oidSM2Enc, Parameters: asn1.NullRawValue},
			EncryptedKey:           wrapped,
		})
	}
	alg, ciphertext, err := encryptInPlace(cipherName, key, content)
	if err != nil {
		return fmt.Errorf("crypto: seal: encrypt: %w", err)
	}
	// Everything but the ciphertext is small: marshal it with a placeholder
	// and splice the real ciphertext in while writing.
	ed := envData{
		Version:        version,
		RecipientInfos: recips,
		EncryptedContentInfo: envEncrypted{
			ContentType:                pkcs7.SM2OIDData,
			ContentEncryptionAlgorithm: *alg,
		},
	}
	prefix, err := envelopePrefix(&ed, len(ciphertext))
	if err != nil {
		return fmt.Errorf("crypto: seal: %w", err)
	}
	if _, err := dst.Write(prefix); err != nil {
		return fmt.Errorf("crypto: write sealed: %w", err)
	}
	if _, err := dst.Write(ciphertext); err != nil {
		return fmt.Errorf("crypto: write sealed: %w", err)
	}
	return nil
}

// encryptInPlace encrypts content with SM4-GCM (12-byte random nonce,
// 16-byte tag) or SM4-CBC (random IV, PKCS#7 padding) reusing its storage,
// and returns the algorithm identifier exactly as gmsm's pkcs package
// encodes it (GCMParameters; or the IV as an OCTET STRING).
func encryptInPlace(cipherName string, key, content []byte) (*pkix.AlgorithmIdentifier, []byte, error) {
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	switch cipherName {
	case "", CipherSM4GCM:
		nonce := make([]byte, gcmNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return nil, nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, nil, err
		}
		params, err := asn1.Marshal(struct {
			Nonce  []byte
			ICVLen int
		}{nonce, aead.Overhead()})
		if err != nil {
			return nil, nil, err
		}
		ct := aead.Seal(content[:0], nonce, content, nil)
		return &pkix.AlgorithmIdentifier{Algorithm: oidSM4GCM, Parameters: asn1.RawValue{FullBytes: params}}, ct, nil
	case CipherSM4CBC:
		iv := make([]byte, sm4.BlockSize)
		if _, err := rand.Read(iv); err != nil {
			return nil, nil, err
		}
		n := sm4.BlockSize - len(content)%sm4.BlockSize
		for i := 0; i < n; i++ {
			content = append(content, byte(n))
		}
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(content, content)
		params, err := asn1.Marshal(iv)
		if err != nil {
			return nil, nil, err
		}
		return &pkix.AlgorithmIdentifier{Algorithm: oidSM4CBC, Parameters: asn1.RawValue{FullBytes: params}}, content, nil
	}
	return nil, nil, fmt.Errorf("unknown cipher %q", cipherName)
}

// envelopePrefix returns the DER of a ContentInfo holding ed, up to and
// including the header of the [0] ciphertext element of ctLen bytes (which
// must be the last thing in the encoding). ed.EncryptedContent is ignored.
// The writer emits prefix || ciphertext; the parser compares its input's
// prefix with this, which proves the input is exactly our DER without
// copying the ciphertext.
func envelopePrefix(ed *envData, ctLen int) ([]byte, error) {
	e := *ed
	e.EncryptedContentInfo.EncryptedContent = asn1.RawValue{}
	head, err := asn1.Marshal(e) // EncryptedContent is optional: absent here
	if err != nil {
		return nil, err
	}
	var outer, v, rs, eci asn1.RawValue
	if _, err := asn1.Unmarshal(head, &outer); err != nil {
		return nil, err
	}
	rest, err := asn1.Unmarshal(outer.Bytes, &v)
	if err != nil {
		return nil, err
	}
	if rest, err = asn1.Unmarshal(rest, &rs); err != nil {
		return nil, err
	}
	if _, err := asn1.Unmarshal(rest, &eci); err != nil {
		return nil, err
	}
	ctHeader := derHeader(0x80, ctLen) // [0] IMPLICIT OCTET STRING, primitive
	eciLen := len(eci.Bytes) + len(ctHeader) + ctLen
	eciHeader := derHeader(0x30, eciLen)
	edLen := len(v.FullBytes) + len(rs.FullBytes) + len(eciHeader) + eciLen
	edHeader := derHeader(0x30, edLen)
	oid, err := asn1.Marshal(pkcs7.SM2OIDEnvelopedData)
	if err != nil {
		return nil, err
	}
	explicitLen := len(edHeader) + edLen
	explicitHeader := derHeader(0xa0, explicitLen)
	ciHeader := derHeader(0x30, len(oid)+len(explicitHeader)+explicitLen)
	var out []byte
	for _, part := range [][]byte{ciHeader, oid, explicitHeader, edHeader, v.FullBytes, rs.FullBytes, eciHeader, eci.Bytes, ctHeader} {
		out = append(out, part...)
	}
	return out, nil
}

// derHeader returns a DER identifier octet and definite length.
func derHeader(tag byte, n int) []byte {
	if n < 0x80 {
		return []byte{tag, byte(n)}
	}
	var l []byte
	for x := n; x > 0; x >>= 8 {
		l = append([]byte{byte(x)}, l...)
	}
	return append([]byte{tag, 0x80 | byte(len(l))}, l...)
}
