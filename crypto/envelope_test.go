package crypto

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/cfca"
	"github.com/emmansun/gmsm/pkcs"
	"github.com/emmansun/gmsm/pkcs7"
)

var allSentinels = []error{ErrTampered, ErrNotRecipient, ErrBadSignature, ErrWrongSigner, ErrCertExpired, ErrTooLarge}

// isOnly checks err wraps want and none of the other sentinels.
func isOnly(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	for _, s := range allSentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %v also matches %v", err, s)
		}
	}
}

func seal(t testing.TB, content []byte, from Party, opt SealOptions, to ...*Party) []byte {
	t.Helper()
	var certs []*smxCert
	for _, p := range to {
		certs = append(certs, p.Cert)
	}
	var out bytes.Buffer
	if err := SignAndSeal(&out, bytes.NewReader(content), from, certs, opt); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func open(sealed []byte, me Party, from *smxCert, opt SealOptions) ([]byte, error) {
	var out bytes.Buffer
	err := OpenAndVerify(&out, bytes.NewReader(sealed), me, from, opt)
	if err != nil && out.Len() > 0 {
		return nil, errors.New("output written despite error")
	}
	return out.Bytes(), err
}

func TestSealOpenProfiles(t *testing.T) {
	us, bank, bank2 := party(t, "gateway"), party(t, "bank-a"), party(t, "bank-b")
	content := []byte(strings.Repeat("1|张三|11010519491231002X|6222020200112233445|12345\n", 50))
	tests := []struct {
		name string
		opt  SealOptions
	}{
		{"gcm default", SealOptions{}},
		{"gcm named", SealOptions{Cipher: CipherSM4GCM}},
		{"cbc", SealOptions{Cipher: CipherSM4CBC}},
		{"cfca gcm", SealOptions{CFCA: true}},
		{"cfca cbc", SealOptions{CFCA: true, Cipher: CipherSM4CBC}},
		{"custom signer id", SealOptions{SignerID: []byte("BANK-A-0001")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealed := seal(t, content, us.Party, tc.opt, &bank.Party, &bank2.Party)
			if bytes.Contains(sealed, []byte("11010519491231002X")) {
				t.Fatal("plaintext visible")
			}
			for _, me := range []*testParty{bank, bank2} {
				got, err := open(sealed, me.Party, us.Cert, tc.opt)
				if err != nil {
					t.Fatalf("%s opens: %v", me.Cert.Subject.CommonName, err)
				}
				if !bytes.Equal(got, content) {
					t.Fatal("content differs")
				}
			}
			// PEM armour is accepted too.
			armoured := pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: sealed})
			if _, err := open(armoured, bank.Party, us.Cert, tc.opt); err != nil {
				t.Fatalf("PEM: %v", err)
			}
		})
	}
}

func TestSealOpenDistinctErrors(t *testing.T) {
	us, bank, other := party(t, "gateway"), party(t, "bank-a"), party(t, "bank-b")
	expired := party(t, "gateway-expired")
	content := []byte("1|张三|11010519491231002X|6222020200112233445|12345\n")
	sealed := seal(t, content, us.Party, SealOptions{}, &bank.Party)

	t.Run("wrong recipient", func(t *testing.T) {
		_, err := open(sealed, other.Party, us.Cert, SealOptions{})
		isOnly(t, err, ErrNotRecipient)
	})
	t.Run("wrong signer certificate", func(t *testing.T) {
		_, err := open(sealed, bank.Party, other.Cert, SealOptions{})
		isOnly(t, err, ErrWrongSigner)
	})
	t.Run("expired sender certificate", func(t *testing.T) {
		_, err := open(sealed, bank.Party, expired.Cert, SealOptions{})
		isOnly(t, err, ErrCertExpired)
	})
	t.Run("expired certificate refused for sealing", func(t *testing.T) {
		err := SignAndSeal(&bytes.Buffer{}, bytes.NewReader(content), expired.Party, mustCerts(bank.Cert), SealOptions{})
		isOnly(t, err, ErrCertExpired)
		err = SignAndSeal(&bytes.Buffer{}, bytes.NewReader(content), us.Party, mustCerts(expired.Cert), SealOptions{})
		isOnly(t, err, ErrCertExpired)
	})
	t.Run("signer id mismatch", func(t *testing.T) {
		_, err := open(sealed, bank.Party, us.Cert, SealOptions{SignerID: []byte("OTHER-ID")})
		isOnly(t, err, ErrBadSignature)
	})
	t.Run("too large to seal", func(t *testing.T) {
		err := SignAndSeal(&bytes.Buffer{}, bytes.NewReader(make([]byte, 1025)), us.Party, mustCerts(bank.Cert), SealOptions{MaxBytes: 1024})
		isOnly(t, err, ErrTooLarge)
		if !strings.Contains(err.Error(), "max_records_per_file") {
			t.Fatalf("error does not say what to do: %v", err)
		}
	})
	t.Run("too large to open", func(t *testing.T) {
		big := seal(t, make([]byte, 4096), us.Party, SealOptions{}, &bank.Party)
		_, err := open(big, bank.Party, us.Cert, SealOptions{MaxBytes: 1024})
		isOnly(t, err, ErrTooLarge)
	})
	t.Run("profile wants cbc, file is gcm", func(t *testing.T) {
		_, err := open(sealed, bank.Party, us.Cert, SealOptions{Cipher: CipherSM4CBC})
		isOnly(t, err, ErrTampered)
	})
	t.Run("cfca profile mismatch", func(t *testing.T) {
		_, err := open(sealed, bank.Party, us.Cert, SealOptions{CFCA: true})
		isOnly(t, err, ErrTampered)
	})
	t.Run("key not matching cert", func(t *testing.T) {
		_, err := open(sealed, Party{Key: other.Key, Cert: bank.Cert}, us.Cert, SealOptions{})
		if err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("unknown cipher", func(t *testing.T) {
		err := SignAndSeal(&bytes.Buffer{}, bytes.NewReader(content), us.Party, mustCerts(bank.Cert), SealOptions{Cipher: "aes-gcm"})
		if err == nil || !strings.Contains(err.Error(), "unknown cipher") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, g := range [][]byte{nil, []byte("hello"), []byte("-----BEGIN PKCS7-----\nAA==\n-----END PKCS7-----\n"), sealed[:len(sealed)/2], append(bytes.Clone(sealed), 0)} {
			_, err := open(g, bank.Party, us.Cert, SealOptions{})
			isOnly(t, err, ErrTampered)
		}
	})
}

// Every single-byte change anywhere in a sealed file is detected, and with
// SM4-GCM it is always reported as ErrTampered (never as a different
// recipient or signer). With SM4-CBC the content has no MAC: a change inside
// the ciphertext may instead break the inner signature (ErrBadSignature).
func TestSealedFileEveryByteFlipped(t *testing.T) {
	us, bank := party(t, "gateway"), party(t, "bank-a")
	content := []byte("1|张三|11010519491231002X|6222020200112233445|12345\n")
	for _, tc := range []struct {
		name    string
		opt     SealOptions
		allowed []error
	}{
		{"sm4-gcm", SealOptions{}, []error{ErrTampered}},
		{"sm4-gcm cfca", SealOptions{CFCA: true}, []error{ErrTampered}},
		{"sm4-cbc", SealOptions{Cipher: CipherSM4CBC}, []error{ErrTampered, ErrBadSignature}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed := seal(t, content, us.Party, tc.opt, &bank.Party)
			step := 1
			if testing.Short() {
				step = 7
			}
			for i := 0; i < len(sealed); i += step {
				bad := bytes.Clone(sealed)
				bad[i] ^= 0x04
				_, err := open(bad, bank.Party, us.Cert, tc.opt)
				ok := false
				for _, a := range tc.allowed {
					ok = ok || errors.Is(err, a)
				}
				if !ok {
					t.Fatalf("flip at byte %d of %d: %v", i, len(sealed), err)
				}
			}
		})
	}
}

func TestPKCS7SignedData(t *testing.T) {
	us, other := party(t, "gateway"), party(t, "bank-b")
	content := []byte("回盘 feedback file\n")
	for _, uid := range [][]byte{nil, []byte("ALICE123@YAHOO.COM")} {
		for _, detached := range []bool{false, true} {
			der, err := SignPKCS7(content, us.Key, us.Cert, uid, detached)
			if err != nil {
				t.Fatal(err)
			}
			var dc []byte
			if detached {
				dc = content
				if bytes.Contains(der, content) {
					t.Fatal("detached signature carries the content")
				}
			}
			got, err := VerifyPKCS7(der, dc, us.Cert, uid)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("uid %q detached %v: %v", uid, detached, err)
			}
			_, err = VerifyPKCS7(der, dc, other.Cert, uid)
			isOnly(t, err, ErrWrongSigner)
			if detached {
				_, err = VerifyPKCS7(der, []byte("other content"), us.Cert, uid)
				isOnly(t, err, ErrBadSignature)
			}
			_, err = VerifyPKCS7(der, dc, us.Cert, []byte("wrong-id"))
			isOnly(t, err, ErrBadSignature)
		}
	}
	if _, err := SignPKCS7(content, other.Key, us.Cert, nil, false); err == nil {
		t.Fatal("signing with a key that is not the certificate's")
	}
	// gmsm's own verifiers accept what we make with the default signer id,
	// attached and detached, and parse out the same content and certificate.
	for _, size := range []int{0, 1, 100, 127, 128, 65535, 65536, 1 << 20} {
		c := bytes.Repeat([]byte{0x5A}, size)
		der, err := SignPKCS7(c, us.Key, us.Cert, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := gmsmVerify(der); err != nil {
			t.Fatalf("size %d: gmsm pkcs7 verify: %v", size, err)
		}
		if err := cfca.VerifyMessageAttach(der); err != nil {
			t.Fatalf("size %d: gmsm cfca verify: %v", size, err)
		}
		p7, err := pkcs7.Parse(der)
		if err != nil || !bytes.Equal(p7.Content, c) || len(p7.Certificates) != 1 || !bytes.Equal(p7.Certificates[0].Raw, us.Cert.Raw) {
			t.Fatalf("size %d: gmsm parse: %v", size, err)
		}
		det, err := SignPKCS7(c, us.Key, us.Cert, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfca.VerifyMessageDetach(det, c); err != nil {
			t.Fatalf("size %d: gmsm detached verify: %v", size, err)
		}
	}
	// And we verify what gmsm signs.
	sd, _ := pkcs7.NewSMSignedData(content)
	if err := sd.AddSigner(us.Cert, us.Key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	gder, _ := sd.Finish()
	if got, err := VerifyPKCS7(gder, nil, us.Cert, nil); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("gmsm-made signed data: %v", err)
	}
}

// What writeEnvelope streams is what gmsm builds and opens: gmsm's pkcs7 and
// cfca packages open it, and our strict parser accepts it.
func TestEnvelopeMatchesGmsm(t *testing.T) {
	bank, bank2 := party(t, "bank-a"), party(t, "bank-b")
	for _, size := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 20} {
		content := bytes.Repeat([]byte{0xA5}, size)
		for _, c := range []string{CipherSM4GCM, CipherSM4CBC} {
			for _, cf := range []bool{false, true} {
				opt := SealOptions{Cipher: c, CFCA: cf}
				var buf bytes.Buffer
				if err := writeEnvelope(&buf, c, bytes.Clone(content), mustCerts(bank.Cert, bank2.Cert), cf); err != nil {
					t.Fatal(err)
				}
				der := buf.Bytes()
				p7, err := pkcs7.Parse(der)
				if err != nil {
					t.Fatalf("size %d %s cfca=%v: gmsm parse: %v", size, c, cf, err)
				}
				got, err := p7.Decrypt(bank2.Cert, bank2.Key)
				if err != nil || !bytes.Equal(got, content) {
					t.Fatalf("size %d %s cfca=%v: gmsm decrypt: %v", size, c, cf, err)
				}
				if cf {
					if got, err := cfca.OpenEnvelopedMessage(der, bank.Cert, bank.Key); err != nil || !bytes.Equal(got, content) {
						t.Fatalf("cfca open: %v", err)
					}
				}
				if got, err := OpenEnvelope(der, bank.Party, opt); err != nil || !bytes.Equal(got, content) {
					t.Fatalf("size %d %s cfca=%v: our open: %v", size, c, cf, err)
				}
			}
		}
	}
	// And our parser accepts gmsm's own envelopes.
	for _, cf := range []bool{false, true} {
		var der []byte
		var err error
		if cf {
			der, err = cfca.EnvelopeMessage(pkcs.SM4GCM, []byte("x"), mustCerts(bank.Cert))
		} else {
			der, err = pkcs7.EncryptSM(pkcs.SM4GCM, []byte("x"), mustCerts(bank.Cert))
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, err := OpenEnvelope(der, bank.Party, SealOptions{CFCA: cf}); err != nil || string(got) != "x" {
			t.Fatalf("gmsm envelope (cfca=%v): %v", cf, err)
		}
	}
}
