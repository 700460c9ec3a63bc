package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emmansun/gmsm/pkcs"
	"github.com/emmansun/gmsm/pkcs8"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
)

// EnvPassphrase is the environment variable read by ReadPassphrase when no
// passphrase file is given.
const EnvPassphrase = "YKT_KEY_PASSPHRASE"

// PEM block types written and accepted.
const (
	pemEncryptedKey = "ENCRYPTED PRIVATE KEY"
	pemPlainKey     = "PRIVATE KEY"
	pemECKey        = "EC PRIVATE KEY"
	pemPublicKey    = "PUBLIC KEY"
	pemCertificate  = "CERTIFICATE"
	maxPEMFile      = 1 << 20
)

// PBKDF2Iterations is the PBKDF2 (HMAC-SM3) round count for private keys
// written from now on: PKCS#8 EncryptedPrivateKeyInfo with the ShangMi PBES2
// profile (16-byte salt, SM4-CBC). The count is stored in each key file, so
// reading is unaffected. It is a variable only so that test binaries (which
// make and load many keys, slowly under -race) can lower it; production code
// never changes it.
var PBKDF2Iterations = DefaultPBKDF2Iterations

// DefaultPBKDF2Iterations is the production round count.
const DefaultPBKDF2Iterations = 100_000

// ReadPassphrase returns the passphrase from file if file is non-empty (one
// trailing newline is removed), else from the environment variable
// YKT_KEY_PASSPHRASE, else ErrNoPassphrase. An empty passphrase is an error.
func ReadPassphrase(file string) ([]byte, error) {
	var p []byte
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("crypto: passphrase file: %w", err)
		}
		p = bytes.TrimSuffix(b, []byte("\n"))
		p = bytes.TrimSuffix(p, []byte("\r"))
		if len(p) == 0 {
			return nil, fmt.Errorf("crypto: passphrase file %s is empty", file)
		}
		return p, nil
	}
	if v, ok := os.LookupEnv(EnvPassphrase); ok {
		if v == "" {
			return nil, fmt.Errorf("crypto: %s is set but empty", EnvPassphrase)
		}
		return []byte(v), nil
	}
	return nil, ErrNoPassphrase
}

func readPEMFile(path, what string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("crypto: %s: %w", what, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("crypto: %s %s: %w", what, path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("crypto: %s %s: larger than %d bytes", what, path, maxPEMFile)
	}
	return b, nil
}

// firstPEM returns the first PEM block of the wanted types.
func firstPEM(data []byte, types ...string) (*pem.Block, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("no PEM block of type %s", strings.Join(types, " or "))
		}
		for _, t := range types {
			if b.Type == t {
				return b, nil
			}
		}
	}
}

// LoadPrivateKey reads an SM2 private key stored as an encrypted PKCS#8 PEM
// ("ENCRYPTED PRIVATE KEY", SM4 under a key derived from passphrase). An
// unencrypted key file is refused with ErrUnencryptedKey; see
// LoadUnencryptedPrivateKey for the explicit exception.
func LoadPrivateKey(path string, passphrase []byte) (*sm2.PrivateKey, error) {
	data, err := readPEMFile(path, "private key")
	if err != nil {
		return nil, err
	}
	return ParsePrivateKeyPEM(data, passphrase)
}

// ParsePrivateKeyPEM is LoadPrivateKey on bytes.
func ParsePrivateKeyPEM(data, passphrase []byte) (*sm2.PrivateKey, error) {
	b, err := firstPEM(data, pemEncryptedKey, pemPlainKey, pemECKey)
	if err != nil {
		return nil, fmt.Errorf("crypto: private key: %w", err)
	}
	if b.Type != pemEncryptedKey {
		return nil, fmt.Errorf("crypto: private key (%s): %w", b.Type, ErrUnencryptedKey)
	}
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("crypto: private key: %w", ErrNoPassphrase)
	}
	key, err := pkcs8.ParsePKCS8PrivateKeySM2(b.Bytes, passphrase)
	if err != nil {
		// Never include key bytes; the gmsm error text names no secrets.
		return nil, fmt.Errorf("crypto: private key: wrong passphrase or damaged key file: %w", err)
	}
	return key, nil
}

// LoadUnencryptedPrivateKey reads an SM2 private key from an unencrypted PEM
// ("PRIVATE KEY" PKCS#8 or "EC PRIVATE KEY" SEC1). It exists for keys made by
// other tools (openssl) in tests and one-off checks; the daemon never calls it.
func LoadUnencryptedPrivateKey(path string) (*sm2.PrivateKey, error) {
	data, err := readPEMFile(path, "private key")
	if err != nil {
		return nil, err
	}
	b, err := firstPEM(data, pemPlainKey, pemECKey)
	if err != nil {
		return nil, fmt.Errorf("crypto: private key: %w", err)
	}
	if b.Type == pemECKey {
		k, err := smx509.ParseSM2PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crypto: private key: %w", err)
		}
		return k, nil
	}
	k, err := pkcs8.ParsePKCS8PrivateKeySM2(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("crypto: private key: %w", err)
	}
	return k, nil
}

// MarshalPrivateKeyPEM encrypts key under passphrase (PKCS#8, SM-PBES2: PBKDF2
// HMAC-SM3 + SM4-CBC) and returns the PEM.
func MarshalPrivateKeyPEM(key *sm2.PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("crypto: encrypt private key: %w", ErrNoPassphrase)
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, pkcs.NewSMPBESEncrypter(16, PBKDF2Iterations))
	if err != nil {
		return nil, fmt.Errorf("crypto: encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedKey, Bytes: der}), nil
}

// ReadCertificate parses a PEM (or DER) SM2 certificate without checking its
// validity period (for `keys show`).
func ReadCertificate(path string) (*smx509.Certificate, error) {
	data, err := readPEMFile(path, "certificate")
	if err != nil {
		return nil, err
	}
	c, err := ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// ParseCertificate parses one certificate from PEM or DER bytes.
func ParseCertificate(data []byte) (*smx509.Certificate, error) {
	der := data
	if bytes.Contains(data, []byte("-----BEGIN")) {
		b, err := firstPEM(data, pemCertificate)
		if err != nil {
			return nil, fmt.Errorf("crypto: certificate: %w", err)
		}
		der = b.Bytes
	}
	c, err := smx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("crypto: certificate: %w", err)
	}
	return c, nil
}

// LoadCertificate reads a certificate and checks its validity period now:
// an expired (or not yet valid) certificate gives an error wrapping
// ErrCertExpired.
func LoadCertificate(path string) (*smx509.Certificate, error) {
	c, err := ReadCertificate(path)
	if err != nil {
		return nil, err
	}
	if err := CheckValidity(c, time.Now()); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// CheckValidity returns an error wrapping ErrCertExpired if now is outside
// the certificate's validity period.
func CheckValidity(c *smx509.Certificate, now time.Time) error {
	if now.After(c.NotAfter) {
		return fmt.Errorf("crypto: certificate %q expired at %s: %w", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), ErrCertExpired)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("crypto: certificate %q not valid before %s: %w", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), ErrCertExpired)
	}
	return nil
}

// CertDaysLeft returns the days until the certificate expires (negative once
// expired), for the cert-expiry metric.
func CertDaysLeft(c *smx509.Certificate, now time.Time) float64 {
	return c.NotAfter.Sub(now).Hours() / 24
}

// Fingerprint returns the SM3 of the certificate's DER as colon-separated hex.
func Fingerprint(c *smx509.Certificate) string {
	sum := sm3.Sum(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// LoadPublicKey reads an SM2 public key from a "PUBLIC KEY" PEM or takes it
// from a certificate PEM. A certificate is not checked for expiry here.
func LoadPublicKey(path string) (*ecdsa.PublicKey, error) {
	data, err := readPEMFile(path, "public key")
	if err != nil {
		return nil, err
	}
	b, err := firstPEM(data, pemPublicKey, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("crypto: public key %s: %w", path, err)
	}
	var pub any
	if b.Type == pemCertificate {
		c, err := smx509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crypto: public key %s: %w", path, err)
		}
		pub = c.PublicKey
	} else if pub, err = smx509.ParsePKIXPublicKey(b.Bytes); err != nil {
		return nil, fmt.Errorf("crypto: public key %s: %w", path, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(ec) {
		return nil, fmt.Errorf("crypto: public key %s: not an SM2 key (%T)", path, pub)
	}
	return ec, nil
}

// PartyFiles names the files GenerateParty writes for name in dir.
func PartyFiles(dir, name string) (key, pub, cert string) {
	return filepath.Join(dir, name+".key.pem"), filepath.Join(dir, name+".pub.pem"), filepath.Join(dir, name+".cert.pem")
}

// GenerateParty makes an SM2 key pair and a self-signed certificate valid for
// validFor from now (backdated one hour for clock skew) carrying a
// SubjectKeyIdentifier, and writes dir/name.key.pem (encrypted under
// passphrase), dir/name.pub.pem and dir/name.cert.pem. It refuses to
// overwrite any of them.
func GenerateParty(dir, name string, passphrase []byte, validFor time.Duration) error {
	now := time.Now()
	return generateParty(dir, name, passphrase, now.Add(-time.Hour), now.Add(validFor))
}

func generateParty(dir, name string, passphrase []byte, notBefore, notAfter time.Time) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("crypto: party name %q must be a plain file name", name)
	}
	if len(passphrase) == 0 {
		return fmt.Errorf("crypto: keys gen: %w", ErrNoPassphrase)
	}
	keyPath, pubPath, certPath := PartyFiles(dir, name)
	for _, p := range []string{keyPath, pubPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("crypto: %s already exists, refusing to overwrite", p)
		}
	}
	key, certDER, err := newSelfSigned(name, notBefore, notAfter)
	if err != nil {
		return err
	}
	keyPEM, err := MarshalPrivateKeyPEM(key, passphrase)
	if err != nil {
		return err
	}
	pubDER, err := smx509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("crypto: public key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("crypto: %w", err)
	}
	if err := writeNewFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNewFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: pubDER}), 0o644); err != nil {
		return err
	}
	return writeNewFile(certPath, pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: certDER}), 0o644)
}

// subjectKeyID is RFC 5280 method 1 (SHA-1 of the subjectPublicKey bits), the
// identifier gmsm's pkcs7 computes when a certificate lacks one, so both agree.
func subjectKeyID(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := smx509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	h := sha1.Sum(spki.PublicKey.RightAlign())
	return h[:], nil
}

func newSelfSigned(name string, notBefore, notAfter time.Time) (*sm2.PrivateKey, []byte, error) {
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: generate SM2 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: serial: %w", err)
	}
	ski, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: subject key id: %w", err)
	}
	tmpl := &smx509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"yktgw"}},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              smx509.KeyUsageDigitalSignature | smx509.KeyUsageKeyEncipherment | smx509.KeyUsageDataEncipherment | smx509.KeyUsageContentCommitment,
		SubjectKeyId:          ski,
		AuthorityKeyId:        ski,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    smx509.SM2WithSM3,
	}
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: create certificate: %w", err)
	}
	return key, der, nil
}

// KeyMatchesCert reports whether key is the private key of cert.
func KeyMatchesCert(key *sm2.PrivateKey, cert *smx509.Certificate) bool {
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	return ok && key != nil && key.PublicKey.Equal(pub)
}

var errNotSM2Cert = errors.New("certificate does not carry an SM2 public key")

func certSM2Key(c *smx509.Certificate) (*ecdsa.PublicKey, error) {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(pub) {
		return nil, fmt.Errorf("crypto: %q: %w", c.Subject.CommonName, errNotSM2Cert)
	}
	return pub, nil
}

// LoadPublicKeyFromCert returns the certificate's SM2 public key.
func LoadPublicKeyFromCert(c *smx509.Certificate) (*ecdsa.PublicKey, error) {
	return certSM2Key(c)
}
