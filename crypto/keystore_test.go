package crypto

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"
)

func TestGeneratePartyFiles(t *testing.T) {
	p := party(t, "county-210102")
	st, err := os.Stat(p.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(p.keyPath)
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("key PEM type %v", b)
	}
	// PBES2 with the ShangMi KDF (HMAC-SM3) and SM4-CBC.
	var epki struct {
		Alg  pkix.AlgorithmIdentifier
		Data []byte
	}
	if _, err := asn1.Unmarshal(b.Bytes, &epki); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(epki.Alg.Parameters.FullBytes, mustOIDBytes(t, oidSM4CBC)) {
		t.Fatalf("key is not encrypted with SM4-CBC: %x", epki.Alg.Parameters.FullBytes)
	}
	// 100,000 rounds (INTEGER 0x0186A0) are recorded in the file.
	if PBKDF2Iterations != DefaultPBKDF2Iterations || !bytes.Contains(epki.Alg.Parameters.FullBytes, []byte{0x02, 0x03, 0x01, 0x86, 0xa0}) {
		t.Fatalf("PBKDF2 rounds are not %d", DefaultPBKDF2Iterations)
	}
	c := p.Cert
	if len(c.SubjectKeyId) != 20 {
		t.Fatalf("SubjectKeyIdentifier %x", c.SubjectKeyId)
	}
	if want, _ := subjectKeyID(&p.Key.PublicKey); !bytes.Equal(want, c.SubjectKeyId) {
		t.Fatal("SKI is not the RFC 5280 method-1 identifier")
	}
	if c.SignatureAlgorithm != smx509.SM2WithSM3 || c.Subject.CommonName != "county-210102" {
		t.Fatalf("cert %v %q", c.SignatureAlgorithm, c.Subject.CommonName)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Fatalf("self signature: %v", err)
	}
	pub, err := LoadPublicKey(p.pubPath)
	if err != nil || !pub.Equal(&p.Key.PublicKey) {
		t.Fatalf("pub file: %v", err)
	}
	pub2, err := LoadPublicKey(p.certPath)
	if err != nil || !pub2.Equal(&p.Key.PublicKey) {
		t.Fatalf("pub from cert: %v", err)
	}
	if !KeyMatchesCert(p.Key, c) {
		t.Fatal("key does not match cert")
	}
	if err := GenerateParty(filepath.Dir(p.keyPath), "county-210102", []byte(testPass), time.Hour); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".."} {
		if err := GenerateParty(t.TempDir(), bad, []byte(testPass), time.Hour); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if err := GenerateParty(t.TempDir(), "x", nil, time.Hour); !errors.Is(err, ErrNoPassphrase) {
		t.Errorf("empty passphrase: %v", err)
	}
}

func mustOIDBytes(t testing.TB, oid asn1.ObjectIdentifier) []byte {
	t.Helper()
	b, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadPrivateKey(t *testing.T) {
	p := party(t, "bank-a")
	if _, err := LoadPrivateKey(p.keyPath, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	} else if strings.Contains(err.Error(), testPass) {
		t.Fatal("passphrase in error")
	}
	if _, err := LoadPrivateKey(p.keyPath, nil); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("no passphrase: %v", err)
	}
	// An unencrypted key is refused by LoadPrivateKey and read only by the explicit function.
	der, err := smx509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "plain.pem")
	os.WriteFile(plain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := LoadPrivateKey(plain, []byte(testPass)); !errors.Is(err, ErrUnencryptedKey) {
		t.Fatalf("unencrypted: %v, want ErrUnencryptedKey", err)
	}
	k, err := LoadUnencryptedPrivateKey(plain)
	if err != nil || !k.Equal(p.Key) {
		t.Fatalf("explicit unencrypted load: %v", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(t.TempDir(), "missing.pem"), []byte("x")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestReadPassphrase(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pass")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)

	t.Setenv(EnvPassphrase, "from-env")
	if p, err := ReadPassphrase(f); err != nil || string(p) != "s3cret" {
		t.Fatalf("file wins: %q %v", p, err)
	}
	if p, err := ReadPassphrase(""); err != nil || string(p) != "from-env" {
		t.Fatalf("env: %q %v", p, err)
	}
	if _, err := ReadPassphrase(empty); err == nil {
		t.Fatal("empty file accepted")
	}
	if _, err := ReadPassphrase(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
	t.Setenv(EnvPassphrase, "")
	if _, err := ReadPassphrase(""); err == nil {
		t.Fatal("empty env accepted")
	}
	os.Unsetenv(EnvPassphrase)
	if _, err := ReadPassphrase(""); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("nothing: %v, want ErrNoPassphrase", err)
	}
}

func TestCertificateExpiry(t *testing.T) {
	ok := party(t, "bank-a")
	old := party(t, "bank-old-expired")
	if _, err := LoadCertificate(ok.certPath); err != nil {
		t.Fatalf("valid cert: %v", err)
	}
	_, err := LoadCertificate(old.certPath)
	if !errors.Is(err, ErrCertExpired) || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("expired cert: %v, want ErrCertExpired", err)
	}
	if _, err := ReadCertificate(old.certPath); err != nil {
		t.Fatalf("ReadCertificate must not check expiry: %v", err)
	}
	now := time.Now()
	if d := CertDaysLeft(ok.Cert, now); d < 0.9 || d > 1.01 {
		t.Fatalf("days left %v, want about 1", d)
	}
	if d := CertDaysLeft(old.Cert, now); d >= 0 {
		t.Fatalf("expired days left %v, want negative", d)
	}
	if err := CheckValidity(ok.Cert, ok.Cert.NotBefore.Add(-time.Second)); !errors.Is(err, ErrCertExpired) {
		t.Fatalf("not yet valid: %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint(party(t, "bank-a").Cert)
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q", fp)
	}
}

func TestParseCertificateRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "\x30\x03\x02\x01\x01"} {
		if _, err := ParseCertificate([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
