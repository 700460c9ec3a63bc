package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/emmansun/gmsm/smx509"
)

// Fuzz targets for every parser of untrusted bytes. Seeds live in
// testdata/fuzz/<Target>/ (go test picks them up); regenerate them with
// go test -run TestFuzzSeeds -update ./crypto/.

const fixedKeysFile = "testdata/datakeys.json"

func fixedKeyring(t testing.TB) *DataKeyring {
	t.Helper()
	data, err := os.ReadFile(fixedKeysFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseDataKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	k, err := newDataKeyring(f)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func classified(err error) bool {
	for _, s := range append(allSentinels, ErrUnknownKeyID) {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzOpenEnvelope(f *testing.F) {
	me := fixedParty(f, "bank")
	from := fixedParty(f, "gateway")
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := OpenEnvelope(data, me, SealOptions{})
		if err == nil {
			// Only a genuine envelope opens; its content must then verify or fail cleanly.
			if _, err := VerifyPKCS7(plain, nil, from.Cert, nil); err != nil && !classified(err) {
				t.Fatalf("unclassified inner error: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrNotRecipient) {
			t.Fatalf("unclassified error: %v", err)
		}
		if _, err := OpenEnvelope(data, me, SealOptions{CFCA: true}); err != nil && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrNotRecipient) {
			t.Fatalf("CFCA: unclassified error: %v", err)
		}
	})
}

func FuzzVerifyPKCS7(f *testing.F) {
	from := fixedParty(f, "gateway")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := VerifyPKCS7(data, nil, from.Cert, nil)
		if err != nil && !classified(err) {
			t.Fatalf("unclassified error: %v", err)
		}
		_, err = VerifyPKCS7(data, []byte("detached content"), from.Cert, nil)
		if err != nil && !classified(err) {
			t.Fatalf("unclassified error (detached): %v", err)
		}
	})
}

func FuzzVerifyDetached(f *testing.F) {
	from := fixedParty(f, "gateway")
	msg := []byte("1|张三|11010519491231002X|6222020200112233445|12345\n")
	f.Fuzz(func(t *testing.T, sig []byte) {
		err := VerifyDetached(&from.Key.PublicKey, nil, msg, sig)
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

func FuzzParseDataKeyFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseDataKeyFile(data)
		if err != nil {
			return
		}
		k, err := newDataKeyring(kf)
		if err != nil {
			t.Fatalf("parsed file does not load: %v", err)
		}
		ct, err := k.Encrypt([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := k.Decrypt(ct, nil); err != nil || string(pt) != "x" {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzFieldDecrypt(f *testing.F) {
	k := fixedKeyring(f)
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := k.Decrypt(ct, []byte("aad"))
		if err != nil {
			if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKeyID) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := k.EncryptTo(nil, pt, []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		if back, err := k.Decrypt(again, []byte("aad")); err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("re-encrypt round trip: %v", err)
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCertificate(data)
		if err == nil {
			_ = Fingerprint(c)
			_ = CertDaysLeft(c, c.NotBefore)
		}
	})
}

func writeSeed(t *testing.T, target, name string, data []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFuzzSeeds regenerates the committed seed corpora and fixed test
// material with -update; without it, it checks the material is present.
func TestFuzzSeeds(t *testing.T) {
	if !*update {
		for _, target := range []string{"FuzzOpenEnvelope", "FuzzVerifyPKCS7", "FuzzVerifyDetached", "FuzzParseDataKeyFile", "FuzzFieldDecrypt", "FuzzParseCertificate"} {
			if m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*")); len(m) == 0 {
				t.Errorf("no seed corpus for %s (run with -update)", target)
			}
		}
		return
	}
	if _, err := os.Stat(fixedKeysFile); err != nil {
		tmp := filepath.Join(t.TempDir(), "k.json")
		if err := GenerateDataKeyFile(tmp); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(tmp)
		os.WriteFile(fixedKeysFile, data, 0o644)
	}
	me, from, other := fixedParty(t, "bank"), fixedParty(t, "gateway"), fixedParty(t, "other")
	content := []byte("1|张三|11010519491231002X|6222020200112233445|12345\n")
	for name, opt := range map[string]SealOptions{"gcm": {}, "cbc": {Cipher: CipherSM4CBC}, "cfca": {CFCA: true}} {
		var b bytes.Buffer
		if err := SignAndSeal(&b, bytes.NewReader(content), from, []*smx509.Certificate{me.Cert, other.Cert}, opt); err != nil {
			t.Fatal(err)
		}
		writeSeed(t, "FuzzOpenEnvelope", name, b.Bytes())
	}
	writeSeed(t, "FuzzOpenEnvelope", "empty", nil)
	for name, detached := range map[string]bool{"attached": false, "detached": true} {
		der, err := SignPKCS7(content, from.Key, from.Cert, nil, detached)
		if err != nil {
			t.Fatal(err)
		}
		writeSeed(t, "FuzzVerifyPKCS7", name, der)
	}
	sig, _ := SignDetached(from.Key, nil, content)
	writeSeed(t, "FuzzVerifyDetached", "valid", sig)
	writeSeed(t, "FuzzVerifyDetached", "short", sig[:8])
	keys, _ := os.ReadFile(fixedKeysFile)
	writeSeed(t, "FuzzParseDataKeyFile", "valid", keys)
	writeSeed(t, "FuzzParseDataKeyFile", "empty-object", []byte("{}"))
	k := fixedKeyring(t)
	ct, _ := k.Encrypt([]byte("11010519491231002X"), []byte("aad"))
	writeSeed(t, "FuzzFieldDecrypt", "valid", ct)
	writeSeed(t, "FuzzFieldDecrypt", "header-only", ct[:2])
	certPEM, _ := os.ReadFile(filepath.Join("testdata", "party", "gateway.cert.pem"))
	writeSeed(t, "FuzzParseCertificate", "pem", certPEM)
	writeSeed(t, "FuzzParseCertificate", "der", from.Cert.Raw)
}
