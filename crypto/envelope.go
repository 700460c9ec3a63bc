package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"

	"github.com/emmansun/gmsm/padding"
	"github.com/emmansun/gmsm/pkcs"
	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
	"github.com/emmansun/gmsm/smx509"
)

// Cipher names for SealOptions.Cipher.
const (
	CipherSM4GCM = "sm4-gcm"
	CipherSM4CBC = "sm4-cbc"
)

// DefaultMaxBytes bounds the payload SignAndSeal and OpenAndVerify hold in
// memory (one buffer of about the payload's size, encrypted or decrypted in
// place); a bank profile's max_records_per_file must keep a rendered file
// under this bound.
const DefaultMaxBytes = 64 << 20

// sealSlack is what an envelope adds to its payload at most (certificate,
// signature, recipient infos, ASN.1 headers), for the input bound of OpenAndVerify.
const sealSlack = 1 << 20

// Party is our side of an exchange: our private key, our certificate (the
// private key's), and the SM2 signer ID we sign with (empty: DefaultSignerID).
type Party struct {
	Key      *sm2.PrivateKey
	Cert     *smx509.Certificate
	SignerID []byte
}

// SealOptions tunes an envelope, normally from a bank profile.
type SealOptions struct {
	// Cipher is "sm4-gcm" (default) or "sm4-cbc". OpenAndVerify accepts
	// either when empty and insists on the named one otherwise.
	Cipher string
	// CFCA selects the CFCA profile: recipients identified by
	// SubjectKeyIdentifier (every recipient certificate must carry one).
	CFCA bool
	// SignerID overrides the SM2 signer ID: the one we sign with in
	// SignAndSeal (else Party.SignerID), the one the partner signed with in
	// OpenAndVerify (else DefaultSignerID).
	SignerID []byte
	// MaxBytes bounds the payload held in memory (0: DefaultMaxBytes).
	MaxBytes int64
}

func (o SealOptions) maxBytes() int64 {
	if o.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return o.MaxBytes
}

func (o SealOptions) cipher() (pkcs.Cipher, error) {
	switch o.Cipher {
	case "", CipherSM4GCM:
		return pkcs.SM4GCM, nil
	case CipherSM4CBC:
		return pkcs.SM4CBC, nil
	}
	return nil, fmt.Errorf("crypto: unknown cipher %q (want %s or %s)", o.Cipher, CipherSM4GCM, CipherSM4CBC)
}

var (
	oidSM4GCM = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 104, 8}
	oidSM4CBC = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 104, 2}
	oidSM2Enc = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301, 3}
)

// readBounded reads all of r, failing with ErrTooLarge past limit bytes.
func readBounded(r io.Reader, limit int64, what string) ([]byte, error) {
	return readBoundedAt(r, limit, 0, 0, what)
}

// readBoundedAt is readBounded leaving prefix zero bytes before the data and
// room for extra bytes after it (without counting them against limit).
func readBoundedAt(r io.Reader, limit int64, prefix, extra int, what string) ([]byte, error) {
	// Size the buffer once when the reader knows its length: io.ReadAll's
	// doubling would allocate, clear and copy about twice the payload.
	hint := int64(512)
	switch v := r.(type) {
	case interface{ Len() int }:
		hint = int64(v.Len())
	case interface{ Stat() (os.FileInfo, error) }:
		if st, err := v.Stat(); err == nil && st.Mode().IsRegular() {
			hint = st.Size()
		}
	}
	hint = min(hint, limit) + 1 // +1: the read that sees EOF (or the byte over the limit)
	buf := getPayloadBuf(int(int64(prefix) + hint + int64(extra)))[:prefix]
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("crypto: read %s: %w", what, err)
		}
	}
	if int64(len(buf)-prefix) > limit {
		return nil, fmt.Errorf("crypto: %s larger than %d bytes (raise max_bytes or lower max_records_per_file): %w", what, limit, ErrTooLarge)
	}
	return buf, nil
}

// payloadPool recycles the large buffers SignAndSeal and OpenAndVerify read
// payloads into: a batch split into several files is sealed file after file,
// and a fresh 10 MB allocation costs more (page faults, clearing) than the
// copy into it. sync.Pool drops idle buffers within two GC cycles, so an idle
// daemon does not keep them.
var payloadPool sync.Pool // of *[]byte

const poolMin = 1 << 20 // smaller buffers are not worth pooling

func getPayloadBuf(n int) []byte {
	if n >= poolMin {
		if p, ok := payloadPool.Get().(*[]byte); ok {
			if cap(*p) >= n {
				return (*p)[:0]
			}
			payloadPool.Put(p)
		}
	}
	// A plain allocation: Go clears it (a large one is fresh zeroed pages
	// from the OS or a cleared span). Only the first payload of a run pays
	// for that; later ones reuse a pooled buffer, which readBoundedAt
	// overwrites before anything reads it.
	return make([]byte, 0, n)
}

func putPayloadBuf(b []byte) {
	if cap(b) >= poolMin {
		b = b[:0]
		payloadPool.Put(&b)
	}
}

// SignAndSeal reads src whole (at most opt.MaxBytes), signs it as PKCS#7
// SignedData (SM2/SM3, attached, from's certificate embedded) and seals that
// in a GB/T 35275 EnvelopedData (SM4-GCM or SM4-CBC content key wrapped with
// SM2 for every certificate in to), and writes the DER to dst.
func SignAndSeal(dst io.Writer, src io.Reader, from Party, to []*smx509.Certificate, opt SealOptions) error {
	if _, err := opt.cipher(); err != nil {
		return err
	}
	if from.Key == nil || from.Cert == nil {
		return errors.New("crypto: seal: our key and certificate are required")
	}
	if len(to) == 0 {
		return errors.New("crypto: seal: no recipient certificate")
	}
	now := timeNow()
	if err := CheckValidity(from.Cert, now); err != nil {
		return err
	}
	for _, c := range to {
		if _, err := certSM2Key(c); err != nil {
			return err
		}
		if err := CheckValidity(c, now); err != nil {
			return err
		}
		if opt.CFCA && len(c.SubjectKeyId) == 0 {
			return fmt.Errorf("crypto: seal (CFCA): recipient %q has no SubjectKeyIdentifier", c.Subject.CommonName)
		}
	}
	// Read the payload straight into its place inside the SignedData, which
	// is then encrypted in place: the payload is copied once (from src), not
	// once per layer.
	const headRoom = 256 // > any SignedData header before the content
	tailRoom := 4096 + len(from.Cert.Raw)
	buf, err := readBoundedAt(src, opt.maxBytes(), headRoom, tailRoom, "payload")
	if err != nil {
		return err
	}
	defer putPayloadBuf(buf) // dst.Write does not retain its argument (io.Writer)
	content := buf[headRoom:]
	uid := opt.SignerID
	if len(uid) == 0 {
		uid = from.SignerID
	}
	sum := sm3.Sum(content)
	head, tail, err := signedParts(len(content), sum[:], from.Key, from.Cert, uid, false)
	if err != nil {
		return err
	}
	var signed []byte
	if len(head) <= headRoom {
		start := headRoom - len(head)
		copy(buf[start:], head)
		signed = append(buf[start:], tail...)
	} else {
		signed = append(append(head, content...), tail...)
	}
	return writeEnvelope(dst, opt.Cipher, signed, to, opt.CFCA)
}

// Strict mirror of the EnvelopedData gmsm writes, so that any byte changed
// outside the encrypted part is caught before decryption (DER round trip).
type envContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type envData struct {
	Version              int
	RecipientInfos       []envRecipient `asn1:"set"`
	EncryptedContentInfo envEncrypted
}

type envRecipient struct {
	Version                int
	RID                    asn1.RawValue // issuerAndSerialNumber SEQUENCE or [0] subjectKeyIdentifier
	KeyEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedKey           []byte
}

type envEncrypted struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedContent           asn1.RawValue `asn1:"tag:0,optional"`
}

type envIssuerSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// parseEnvelope parses and checks an EnvelopedData; every failure is ErrTampered.
func parseEnvelope(der []byte, cfcaProfile bool) (*envData, error) {
	tampered := func(why string) error { return fmt.Errorf("crypto: envelope: %s: %w", why, ErrTampered) }
	var ci envContentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil || len(rest) != 0 {
		return nil, tampered("not one DER ContentInfo")
	}
	if !ci.ContentType.Equal(pkcs7.SM2OIDEnvelopedData) {
		return nil, tampered(fmt.Sprintf("content type %v, want GB/T 35275 enveloped data", ci.ContentType))
	}
	var ed envData
	rest, err = asn1.Unmarshal(ci.Content.Bytes, &ed)
	if err != nil || len(rest) != 0 {
		return nil, tampered("EnvelopedData structure")
	}
	if ed.EncryptedContentInfo.EncryptedContent.Class != asn1.ClassContextSpecific || ed.EncryptedContentInfo.EncryptedContent.IsCompound {
		return nil, tampered("encrypted content encoding")
	}
	// The input must be exactly the DER we would write for these fields
	// followed by the ciphertext (checked without copying the ciphertext).
	ct := ed.EncryptedContentInfo.EncryptedContent.Bytes
	prefix, err := envelopePrefix(&ed, len(ct))
	if err != nil || len(der) != len(prefix)+len(ct) || !bytes.Equal(der[:len(prefix)], prefix) {
		return nil, tampered("not DER")
	}
	wantVersion, wantRecipVersion := 1, 1
	if cfcaProfile {
		wantVersion, wantRecipVersion = 2, 2
	}
	if ed.Version != wantVersion {
		return nil, tampered(fmt.Sprintf("version %d, want %d (CFCA profile %v)", ed.Version, wantVersion, cfcaProfile))
	}
	if len(ed.RecipientInfos) == 0 {
		return nil, tampered("no recipients")
	}
	for _, r := range ed.RecipientInfos {
		if p := r.KeyEncryptionAlgorithm.Parameters.FullBytes; len(p) != 0 && !bytes.Equal(p, asn1.NullBytes) {
			return nil, tampered("key encryption parameters")
		}
		if r.Version != wantRecipVersion || !r.KeyEncryptionAlgorithm.Algorithm.Equal(oidSM2Enc) {
			return nil, tampered("recipient info version or algorithm")
		}
	}
	eci := ed.EncryptedContentInfo
	if !eci.ContentType.Equal(pkcs7.SM2OIDData) {
		return nil, tampered("encrypted content type")
	}
	if a := eci.ContentEncryptionAlgorithm.Algorithm; !a.Equal(oidSM4GCM) && !a.Equal(oidSM4CBC) {
		return nil, tampered(fmt.Sprintf("content cipher %v", a))
	}
	if eci.EncryptedContent.Class != asn1.ClassContextSpecific || eci.EncryptedContent.IsCompound {
		return nil, tampered("encrypted content encoding")
	}
	return &ed, nil
}

// matches reports whether recipient info r names cert.
func (r *envRecipient) matches(cert *smx509.Certificate) bool {
	switch {
	case r.RID.Class == asn1.ClassUniversal && r.RID.Tag == asn1.TagSequence:
		var ias envIssuerSerial
		if rest, err := asn1.Unmarshal(r.RID.FullBytes, &ias); err != nil || len(rest) != 0 || ias.Serial == nil {
			return false
		}
		return bytes.Equal(ias.Issuer.FullBytes, cert.RawIssuer) && ias.Serial.Cmp(cert.SerialNumber) == 0
	case r.RID.Class == asn1.ClassContextSpecific && r.RID.Tag == 0:
		ski := cert.SubjectKeyId
		if len(ski) == 0 {
			if pub, err := certSM2Key(cert); err == nil {
				ski, _ = subjectKeyID(pub)
			}
		}
		return len(ski) > 0 && bytes.Equal(ski, r.RID.Bytes)
	}
	return false
}

// OpenEnvelope decrypts a GB/T 35275 EnvelopedData addressed to me and returns
// its content (without looking inside it). Errors: ErrTampered,
// ErrNotRecipient.
func OpenEnvelope(der []byte, me Party, opt SealOptions) ([]byte, error) {
	return openEnvelope(der, me, opt, false)
}

// openEnvelope with inPlace decrypts into der's own storage.
func openEnvelope(der []byte, me Party, opt SealOptions, inPlace bool) ([]byte, error) {
	if me.Key == nil || me.Cert == nil {
		return nil, errors.New("crypto: open: our key and certificate are required")
	}
	if !KeyMatchesCert(me.Key, me.Cert) {
		return nil, fmt.Errorf("crypto: open: private key does not belong to certificate %q", me.Cert.Subject.CommonName)
	}
	ed, err := parseEnvelope(der, opt.CFCA)
	if err != nil {
		return nil, err
	}
	alg := ed.EncryptedContentInfo.ContentEncryptionAlgorithm
	if opt.Cipher != "" {
		want, err := opt.cipher()
		if err != nil {
			return nil, err
		}
		if !alg.Algorithm.Equal(want.OID()) {
			return nil, fmt.Errorf("crypto: open: envelope uses %v, profile wants %s: %w", alg.Algorithm, opt.Cipher, ErrTampered)
		}
	}
	var key []byte
	for i := range ed.RecipientInfos {
		r := &ed.RecipientInfos[i]
		if !r.matches(me.Cert) {
			continue
		}
		key, err = me.Key.Decrypt(nil, r.EncryptedKey, nil)
		if err != nil {
			return nil, fmt.Errorf("crypto: open: content key for us does not decrypt: %w", ErrTampered)
		}
		break
	}
	if key == nil {
		// Not addressed to us by name. If one of the wrapped keys still opens
		// with our key, the recipient identifier was altered: tampering.
		for i := range ed.RecipientInfos {
			if _, err := me.Key.Decrypt(nil, ed.RecipientInfos[i].EncryptedKey, nil); err == nil {
				return nil, fmt.Errorf("crypto: open: recipient identifier altered: %w", ErrTampered)
			}
		}
		return nil, fmt.Errorf("crypto: open: no recipient entry for %q (serial %x): %w", me.Cert.Subject.CommonName, me.Cert.SerialNumber, ErrNotRecipient)
	}
	defer clear(key)
	ct := ed.EncryptedContentInfo.EncryptedContent.Bytes
	if !inPlace {
		ct = bytes.Clone(ct)
	}
	plain, err := decryptInPlace(alg, key, ct)
	if err != nil {
		return nil, fmt.Errorf("crypto: open: content does not decrypt (%v): %w", err, ErrTampered)
	}
	return plain, nil
}

// decryptInPlace reverses encryptInPlace, overwriting ct. SM4-CBC padding is
// checked strictly (in constant time); a bad pad is tampering.
func decryptInPlace(alg pkix.AlgorithmIdentifier, key, ct []byte) ([]byte, error) {
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, err
	}
	switch {
	case alg.Algorithm.Equal(oidSM4GCM):
		var params struct {
			Nonce  []byte
			ICVLen int `asn1:"default:12,optional"`
		}
		if rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
			return nil, errors.New("bad GCM parameters")
		}
		if len(params.Nonce) == 0 || params.ICVLen != gcmTagSize {
			return nil, errors.New("unsupported GCM nonce or tag length")
		}
		aead, err := cipher.NewGCMWithNonceSize(block, len(params.Nonce))
		if err != nil {
			return nil, err
		}
		return aead.Open(ct[:0], params.Nonce, ct, nil)
	case alg.Algorithm.Equal(oidSM4CBC):
		var iv []byte
		if rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 || len(iv) != sm4.BlockSize {
			return nil, errors.New("bad CBC IV")
		}
		if len(ct) == 0 || len(ct)%sm4.BlockSize != 0 {
			return nil, errors.New("CBC ciphertext not whole blocks")
		}
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(ct, ct)
		return padding.NewPKCS7Padding(sm4.BlockSize).ConstantTimeUnpad(ct)
	}
	return nil, fmt.Errorf("content cipher %v", alg.Algorithm)
}

// OpenAndVerify reads a sealed file from src (at most opt.MaxBytes plus
// envelope overhead), opens it with our key, verifies the inner PKCS#7
// signature against the pinned certificate from, and writes the content to
// dst. Nothing is written unless every check passed. Errors wrap exactly one
// of ErrTampered, ErrNotRecipient, ErrWrongSigner, ErrBadSignature,
// ErrCertExpired (from expired) or ErrTooLarge.
func OpenAndVerify(dst io.Writer, src io.Reader, me Party, from *smx509.Certificate, opt SealOptions) error {
	if from == nil {
		return errors.New("crypto: open: the sender's certificate is required")
	}
	if err := CheckValidity(from, timeNow()); err != nil {
		return err
	}
	raw, err := readBounded(src, opt.maxBytes()+sealSlack, "sealed file")
	if err != nil {
		return err
	}
	defer putPayloadBuf(raw) // the content is decrypted in place in raw
	der := raw
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("-----BEGIN")) {
		b, _ := pem.Decode(bytes.TrimSpace(raw))
		if b == nil || b.Type != "PKCS7" {
			return fmt.Errorf("crypto: open: PEM is not PKCS7: %w", ErrTampered)
		}
		der = b.Bytes
	}
	signed, err := openEnvelope(der, me, opt, true) // raw is ours to overwrite
	if err != nil {
		return err
	}
	content, err := VerifyPKCS7(signed, nil, from, opt.SignerID)
	if err != nil {
		return err
	}
	if int64(len(content)) > opt.maxBytes() {
		return fmt.Errorf("crypto: open: payload larger than %d bytes: %w", opt.maxBytes(), ErrTooLarge)
	}
	if _, err := dst.Write(content); err != nil {
		return fmt.Errorf("crypto: write opened: %w", err)
	}
	return nil
}
