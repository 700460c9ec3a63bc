package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
)

// DefaultSignerID is the SM2 signer ID (GB/T 32918.2, GM/T 0009) used when a
// bank profile configures none.
const DefaultSignerID = "1234567812345678"

func uidOrDefault(uid []byte) []byte {
	if len(uid) == 0 {
		return []byte(DefaultSignerID)
	}
	return uid
}

// SignDetached returns a raw ASN.1 SM2 signature (SEQUENCE{r,s}) over
// SM3(Z_A || msg), Z_A computed with uid (DefaultSignerID if empty).
func SignDetached(key *sm2.PrivateKey, uid, msg []byte) ([]byte, error) {
	sig, err := key.Sign(rand.Reader, msg, sm2.NewSM2SignerOption(true, uidOrDefault(uid)))
	if err != nil {
		return nil, fmt.Errorf("crypto: sign: %w", err)
	}
	return sig, nil
}

// VerifyDetached checks a raw ASN.1 SM2 signature over msg with uid. A
// mismatch (or a malformed signature) wraps ErrBadSignature.
func VerifyDetached(pub *ecdsa.PublicKey, uid, msg, sig []byte) error {
	if !sm2.VerifyASN1WithSM2(pub, uidOrDefault(uid), msg, sig) {
		return fmt.Errorf("crypto: verify: %w", ErrBadSignature)
	}
	return nil
}

// SignReader is SignDetached for a stream: it hashes r (SM3 with Z_A
// prepended) without holding it in memory. Same signature as SignDetached.
func SignReader(key *sm2.PrivateKey, uid []byte, r io.Reader) ([]byte, error) {
	e, err := sm2Digest(&key.PublicKey, uid, r)
	if err != nil {
		return nil, err
	}
	sig, err := sm2.SignASN1(rand.Reader, key, e, nil)
	if err != nil {
		return nil, fmt.Errorf("crypto: sign: %w", err)
	}
	return sig, nil
}

// VerifyReader is VerifyDetached for a stream.
func VerifyReader(pub *ecdsa.PublicKey, uid []byte, r io.Reader, sig []byte) error {
	e, err := sm2Digest(pub, uid, r)
	if err != nil {
		return err
	}
	if !sm2.VerifyASN1(pub, e, sig) {
		return fmt.Errorf("crypto: verify: %w", ErrBadSignature)
	}
	return nil
}

func sm2Digest(pub *ecdsa.PublicKey, uid []byte, r io.Reader) ([]byte, error) {
	h, err := sm2.NewHashWithUserID(pub, uidOrDefault(uid))
	if err != nil {
		return nil, fmt.Errorf("crypto: signer id: %w", err)
	}
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("crypto: read: %w", err)
	}
	return h.Sum(nil), nil
}

// SignPKCS7 returns a DER PKCS#7 SignedData (GB/T 35275 OIDs: SM3 digest,
// SM2 signature, SM data content type) over content, signed by key with
// cert embedded, and content-type, message-digest and signing-time
// authenticated attributes; detached leaves the content out. It writes the
// same structure as gmsm's pkcs7.NewSMSignedData/AddSigner/Finish (gmsm and
// its cfca package verify it, see TestPKCS7SignedData), but copies the
// content once instead of three times and takes any signer ID.
func SignPKCS7(content []byte, key *sm2.PrivateKey, cert *smx509.Certificate, uid []byte, detached bool) ([]byte, error) {
	sum := sm3.Sum(content)
	head, tail, err := signedParts(len(content), sum[:], key, cert, uid, detached)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+len(content)+len(tail))
	out = append(out, head...)
	if !detached {
		out = append(out, content...)
	}
	return append(out, tail...), nil
}

// signedParts returns the DER of a SignedData over content of contentLen
// bytes with SM3 digest sum, split around the content: head || content ||
// tail (or head || tail when detached). SignAndSeal reads the content
// straight into place between them.
func signedParts(contentLen int, sum []byte, key *sm2.PrivateKey, cert *smx509.Certificate, uid []byte, detached bool) (head, tail []byte, err error) {
	if !KeyMatchesCert(key, cert) {
		return nil, nil, errors.New("crypto: sign: private key does not match the certificate")
	}
	fail := func(err error) ([]byte, []byte, error) { return nil, nil, fmt.Errorf("crypto: signed data: %w", err) }
	attrs := make([]pkcs7Attr, 0, 3)
	for _, a := range []struct {
		t asn1.ObjectIdentifier
		v any
	}{
		{pkcs7.OIDAttributeContentType, pkcs7.SM2OIDData},
		{pkcs7.OIDAttributeMessageDigest, sum},
		{pkcs7.OIDAttributeSigningTime, timeNow().UTC()},
	} {
		v, err := asn1.Marshal(a.v)
		if err != nil {
			return fail(err)
		}
		attrs = append(attrs, pkcs7Attr{Type: a.t, Value: asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: v}})
	}
	// encoding/asn1 sorts SET OF members (DER); the signature covers the SET.
	enc, err := asn1.Marshal(struct {
		A []pkcs7Attr `asn1:"set"`
	}{A: attrs})
	if err != nil {
		return fail(err)
	}
	var seq, set asn1.RawValue
	if _, err := asn1.Unmarshal(enc, &seq); err != nil {
		return fail(err)
	}
	if _, err := asn1.Unmarshal(seq.Bytes, &set); err != nil {
		return fail(err)
	}
	sig, err := key.Sign(rand.Reader, seq.Bytes, sm2.NewSM2SignerOption(true, uidOrDefault(uid)))
	if err != nil {
		return fail(err)
	}
	ias, err := asn1.Marshal(envIssuerSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber})
	if err != nil {
		return fail(err)
	}
	sm3Alg := pkix.AlgorithmIdentifier{Algorithm: oidSM3, Parameters: asn1.NullRawValue}
	si, err := asn1.Marshal(struct {
		Version       int
		IAS           asn1.RawValue
		DigestAlg     pkix.AlgorithmIdentifier
		Auth          asn1.RawValue
		SignatureAlg  pkix.AlgorithmIdentifier
		EncryptedHash []byte
	}{1, asn1.RawValue{FullBytes: ias}, sm3Alg,
		asn1.RawValue{FullBytes: append(derHeader(0xa0, len(set.Bytes)), set.Bytes...)},
		pkix.AlgorithmIdentifier{Algorithm: oidSM2Sign, Parameters: asn1.NullRawValue}, sig})
	if err != nil {
		return fail(err)
	}
	algDER, err := asn1.Marshal(sm3Alg)
	if err != nil {
		return fail(err)
	}
	dataOID, _ := asn1.Marshal(pkcs7.SM2OIDData)
	signedOID, _ := asn1.Marshal(pkcs7.SM2OIDSignedData)

	version := []byte{0x02, 0x01, 0x01}
	digestAlgs := append(derHeader(0x31, len(algDER)), algDER...)
	var ciHead []byte // content info up to the content bytes
	if detached {
		ciHead = append(derHeader(0x30, len(dataOID)), dataOID...)
	} else {
		octet := derHeader(0x04, contentLen)
		wrap := derHeader(0xa0, len(octet)+contentLen)
		ciHead = append(derHeader(0x30, len(dataOID)+len(wrap)+len(octet)+contentLen), dataOID...)
		ciHead = append(append(ciHead, wrap...), octet...)
	}
	if detached {
		contentLen = 0
	}
	certs := append(derHeader(0xa0, len(cert.Raw)), cert.Raw...)
	signerInfos := append(derHeader(0x31, len(si)), si...)
	sdLen := len(version) + len(digestAlgs) + len(ciHead) + contentLen + len(certs) + len(signerInfos)
	sdHead := derHeader(0x30, sdLen)
	explicit := derHeader(0xa0, len(sdHead)+sdLen)
	outerLen := len(signedOID) + len(explicit) + len(sdHead) + sdLen
	outer := derHeader(0x30, outerLen)

	for _, part := range [][]byte{outer, signedOID, explicit, sdHead, version, digestAlgs, ciHead} {
		head = append(head, part...)
	}
	return head, append(certs, signerInfos...), nil
}

var (
	oidSM3     = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 401}
	oidSM2Sign = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301, 1}
	oidSM2With = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 501}
)

// pkcs7Attr mirrors gmsm's attribute encoding so we can rebuild the exact
// bytes that were signed.
type pkcs7Attr struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

// VerifyPKCS7 checks a PKCS#7 SignedData made by one signer against the
// pinned certificate from, with signer ID uid, and returns the content. For
// detached signatures pass the content; for attached ones pass nil. Errors:
// ErrTampered (not parseable, digest mismatch), ErrWrongSigner (another
// certificate signed), ErrBadSignature, ErrCertExpired (from is outside its
// validity now).
func VerifyPKCS7(der, detachedContent []byte, from *smx509.Certificate, uid []byte) ([]byte, error) {
	pub, err := certSM2Key(from)
	if err != nil {
		return nil, err
	}
	p7, err := parseSignedStrict(der)
	if err != nil {
		return nil, err
	}
	if len(p7.signers) != 1 {
		return nil, fmt.Errorf("crypto: signed data has %d signers, want 1: %w", len(p7.signers), ErrTampered)
	}
	si := p7.signers[0]
	idMatches := bytes.Equal(si.IssuerAndSerialNumber.Issuer.FullBytes, from.RawIssuer) &&
		si.IssuerAndSerialNumber.Serial != nil && si.IssuerAndSerialNumber.Serial.Cmp(from.SerialNumber) == 0
	// A certificate embedded under the pinned issuer and serial but with other
	// bytes is forged or corrupt (our check uses only the pinned key anyway).
	// Embedded certificates are not covered by the signature; with SM4-CBC
	// (no MAC) they could be altered unseen. If there are any, the pinned
	// one must be among them byte for byte.
	if len(p7.certs) > 0 {
		found := false
		for _, c := range p7.certs {
			found = found || bytes.Equal(c.Raw, from.Raw)
			if !bytes.Equal(c.Raw, from.Raw) && c.SerialNumber.Cmp(from.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, from.RawIssuer) {
				return nil, fmt.Errorf("crypto: embedded signer certificate differs from the pinned one under the same issuer and serial: %w", ErrTampered)
			}
		}
		if !found && idMatches {
			return nil, fmt.Errorf("crypto: the pinned certificate is not among the embedded ones: %w", ErrTampered)
		}
	}
	wrongSigner := func() error {
		return fmt.Errorf("crypto: signed by serial %x, expected %q serial %x: %w",
			si.IssuerAndSerialNumber.Serial, from.Subject.CommonName, from.SerialNumber, ErrWrongSigner)
	}
	if !si.DigestAlgorithm.Algorithm.Equal(oidSM3) {
		return nil, fmt.Errorf("crypto: digest algorithm %v, want SM3: %w", si.DigestAlgorithm.Algorithm, ErrTampered)
	}
	if a := si.DigestEncryptionAlgorithm.Algorithm; !a.Equal(oidSM2Sign) && !a.Equal(oidSM2With) {
		return nil, fmt.Errorf("crypto: signature algorithm %v, want SM2: %w", a, ErrTampered)
	}
	content := p7.content
	if len(detachedContent) > 0 || len(content) == 0 {
		if len(content) > 0 {
			return nil, fmt.Errorf("crypto: signed data is attached but detached content was given: %w", ErrTampered)
		}
		content = detachedContent
	}
	signed := content
	if len(si.AuthenticatedAttributes) > 0 {
		attrs := make([]pkcs7Attr, len(si.AuthenticatedAttributes))
		var digest []byte
		var ctype asn1.ObjectIdentifier
		for i, a := range si.AuthenticatedAttributes {
			attrs[i] = pkcs7Attr{Type: a.Type, Value: a.Value}
			switch {
			case a.Type.Equal(pkcs7.OIDAttributeMessageDigest):
				if _, err := asn1.Unmarshal(a.Value.Bytes, &digest); err != nil {
					return nil, fmt.Errorf("crypto: message digest attribute: %w", ErrTampered)
				}
			case a.Type.Equal(pkcs7.OIDAttributeContentType):
				if _, err := asn1.Unmarshal(a.Value.Bytes, &ctype); err != nil {
					return nil, fmt.Errorf("crypto: content type attribute: %w", ErrTampered)
				}
			}
		}
		if !ctype.Equal(pkcs7.SM2OIDData) && !ctype.Equal(pkcs7.OIDData) {
			return nil, fmt.Errorf("crypto: content type attribute %v: %w", ctype, ErrTampered)
		}
		sum := sm3.Sum(content)
		if subtle.ConstantTimeCompare(digest, sum[:]) != 1 {
			if !idMatches {
				return nil, wrongSigner()
			}
			return nil, fmt.Errorf("crypto: content does not match the signed digest: %w", ErrBadSignature)
		}
		enc, err := asn1.Marshal(struct {
			A []pkcs7Attr `asn1:"set"`
		}{A: attrs})
		if err != nil {
			return nil, fmt.Errorf("crypto: attributes: %w", ErrTampered)
		}
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(enc, &raw); err != nil {
			return nil, fmt.Errorf("crypto: attributes: %w", ErrTampered)
		}
		signed = raw.Bytes
	}
	valid := sm2.VerifyASN1WithSM2(pub, uidOrDefault(uid), signed, si.EncryptedDigest)
	switch {
	case !idMatches && valid:
		// Our partner's key signed it but the signer identifier was altered.
		return nil, fmt.Errorf("crypto: signer identifier altered: %w", ErrTampered)
	case !idMatches:
		return nil, wrongSigner()
	case !valid:
		return nil, fmt.Errorf("crypto: signed data: %w", ErrBadSignature)
	}
	if err := CheckValidity(from, timeNow()); err != nil {
		return nil, err
	}
	return content, nil
}

// Strict mirror of PKCS#7 SignedData (as gmsm writes it). Parsing it
// ourselves avoids gmsm's BER-to-DER rewrite, which copies a 10 MB content
// several times, and lets us refuse anything that is not plain DER.
type sdSignedData struct {
	Version                    int
	DigestAlgorithmIdentifiers []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo                sdContent
	Certificates               asn1.RawValue  `asn1:"optional,tag:0"`
	CRLs                       asn1.RawValue  `asn1:"optional,tag:1"`
	SignerInfos                []sdSignerInfo `asn1:"set"`
}

type sdContent struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type sdSignerInfo struct {
	Version                   int
	IssuerAndSerialNumber     envIssuerSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   []pkcs7Attr `asn1:"optional,omitempty,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
	UnauthenticatedAttributes []pkcs7Attr `asn1:"optional,omitempty,tag:1"`
}

type parsedSigned struct {
	content []byte // aliases the input
	certs   []*smx509.Certificate
	signers []sdSignerInfo
}

func parseSignedStrict(der []byte) (*parsedSigned, error) {
	if err := checkStrictContentInfo(der, pkcs7.SM2OIDSignedData, pkcs7.OIDSignedData); err != nil {
		return nil, err
	}
	tampered := func(why string) error { return fmt.Errorf("crypto: signed data: %s: %w", why, ErrTampered) }
	var ci envContentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, tampered("content info")
	}
	var sd sdSignedData
	rest, err := asn1.Unmarshal(ci.Content.Bytes, &sd)
	if err != nil || len(rest) != 0 {
		return nil, tampered("structure")
	}
	if ct := sd.ContentInfo.ContentType; !ct.Equal(pkcs7.SM2OIDData) && !ct.Equal(pkcs7.OIDData) {
		return nil, tampered(fmt.Sprintf("content type %v", ct))
	}
	p := &parsedSigned{signers: sd.SignerInfos}
	if c := sd.ContentInfo.Content; len(c.FullBytes) > 0 {
		// encoding/asn1 hands a RawValue the [0] wrapper; the OCTET STRING is inside.
		if c.Class == asn1.ClassContextSpecific && c.Tag == 0 && c.IsCompound {
			var inner asn1.RawValue
			rest, err := asn1.Unmarshal(c.Bytes, &inner)
			if err != nil || len(rest) != 0 || !bytes.Equal(c.FullBytes[:len(c.FullBytes)-len(c.Bytes)], derHeader(0xa0, len(c.Bytes))) {
				return nil, tampered("content wrapper")
			}
			c = inner
		}
		if c.Class != asn1.ClassUniversal || c.Tag != asn1.TagOctetString || c.IsCompound {
			return nil, tampered("content is not a primitive OCTET STRING")
		}
		if !bytes.Equal(c.FullBytes[:len(c.FullBytes)-len(c.Bytes)], derHeader(0x04, len(c.Bytes))) {
			return nil, tampered("content length not DER")
		}
		p.content = c.Bytes
	}
	if len(sd.Certificates.Bytes) > 0 {
		certs, err := smx509.ParseCertificates(sd.Certificates.Bytes)
		if err != nil {
			return nil, tampered("embedded certificate")
		}
		p.certs = certs
	}
	return p, nil
}

// checkStrictContentInfo refuses anything but a single DER ContentInfo of one
// of the wanted types: no trailing bytes, no BER, no re-encodable variants.
func checkStrictContentInfo(der []byte, types ...asn1.ObjectIdentifier) error {
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return fmt.Errorf("crypto: PKCS#7 structure: %v: %w", err, ErrTampered)
	}
	if len(rest) != 0 {
		return fmt.Errorf("crypto: PKCS#7: %d trailing bytes: %w", len(rest), ErrTampered)
	}
	ok := false
	for _, t := range types {
		ok = ok || ci.ContentType.Equal(t)
	}
	if !ok {
		return fmt.Errorf("crypto: PKCS#7 content type %v: %w", ci.ContentType, ErrTampered)
	}
	// DER check of the outer frame without copying the content: the input
	// must be exactly SEQUENCE header || OID || the [0] element as parsed.
	oid, err := asn1.Marshal(ci.ContentType)
	if err != nil {
		return fmt.Errorf("crypto: PKCS#7: %w", ErrTampered)
	}
	head := append(derHeader(0x30, len(oid)+len(ci.Content.FullBytes)), oid...)
	if len(der) != len(head)+len(ci.Content.FullBytes) || !bytes.Equal(der[:len(head)], head) {
		return fmt.Errorf("crypto: PKCS#7 is not DER: %w", ErrTampered)
	}
	return nil
}
