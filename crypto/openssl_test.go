package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/smx509"
)

func runOpenSSL(t *testing.T, bin string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.Bytes()
}

// Our signatures verify with OpenSSL and OpenSSL's verify with us, for the
// default and a non-default signer ID.
func TestOpenSSLSignatureInterop(t *testing.T) {
	bin := opensslSM(t)
	p := party(t, "gateway")
	dir := t.TempDir()
	msg := filepath.Join(dir, "batch.txt")
	content := []byte(strings.Repeat("1|张三|11010519491231002X|6222020200112233445|12345\n", 1000))
	os.WriteFile(msg, content, 0o644)
	// OpenSSL cannot read the ShangMi PBES2 key profile, so it gets a
	// temporary unencrypted copy of the same key.
	der, err := smx509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	plainKey := filepath.Join(dir, "k.pem")
	os.WriteFile(plainKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	for _, uid := range []string{DefaultSignerID, "ALICE123@YAHOO.COM"} {
		t.Run(uid, func(t *testing.T) {
			sig, err := SignReader(p.Key, []byte(uid), bytes.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			sigPath := filepath.Join(dir, "ours.sig")
			os.WriteFile(sigPath, sig, 0o644)
			out := runOpenSSL(t, bin, nil, "dgst", "-sm3", "-verify", p.pubPath, "-sigopt", "distid:"+uid, "-signature", sigPath, msg)
			if !strings.Contains(string(out), "Verified OK") {
				t.Fatalf("openssl did not verify our signature: %s", out)
			}
			theirs := filepath.Join(dir, "theirs.sig")
			runOpenSSL(t, bin, nil, "dgst", "-sm3", "-sign", plainKey, "-sigopt", "distid:"+uid, "-out", theirs, msg)
			sig2, _ := os.ReadFile(theirs)
			if err := VerifyReader(&p.Key.PublicKey, []byte(uid), bytes.NewReader(content), sig2); err != nil {
				t.Fatalf("we do not verify openssl's signature: %v", err)
			}
			if err := VerifyDetached(&p.Key.PublicKey, []byte("other-id"), content, sig2); err == nil {
				t.Fatal("openssl signature verified under another signer id")
			}
		})
	}
}

// SM4-CBC (PKCS#7 padding) agrees with `openssl enc -sm4-cbc` both ways.
func TestOpenSSLSM4CBCInterop(t *testing.T) {
	bin := opensslSM(t)
	key := unhex(t, "0123456789abcdeffedcba9876543210")
	iv := unhex(t, "000102030405060708090a0b0c0d0e0f")
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		pt := bytes.Repeat([]byte("支"), n)[:n]
		ours, err := SM4CBCEncrypt(key, iv, pt)
		if err != nil {
			t.Fatal(err)
		}
		dec := runOpenSSL(t, bin, ours[16:], "enc", "-d", "-sm4-cbc", "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv))
		if !bytes.Equal(dec, pt) {
			t.Fatalf("n=%d: openssl decrypted %x, want %x", n, dec, pt)
		}
		theirs := runOpenSSL(t, bin, pt, "enc", "-sm4-cbc", "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv))
		if !bytes.Equal(theirs, ours[16:]) {
			t.Fatalf("n=%d: ciphertexts differ", n)
		}
		got, err := SM4CBCDecrypt(key, append(bytes.Clone(iv), theirs...))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: we decrypt openssl: %v", n, err)
		}
	}
}

// A key OpenSSL encrypted (PBES2, SM4-CBC) loads with LoadPrivateKey.
func TestOpenSSLEncryptedKeyLoads(t *testing.T) {
	bin := opensslSM(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "o.key")
	enc := filepath.Join(dir, "o.enc.pem")
	runOpenSSL(t, bin, nil, "genpkey", "-algorithm", "SM2", "-out", plain)
	runOpenSSL(t, bin, nil, "pkcs8", "-topk8", "-v2", "sm4-cbc", "-in", plain, "-passout", "pass:"+testPass, "-out", enc)
	k1, err := LoadPrivateKey(enc, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadUnencryptedPrivateKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("keys differ")
	}
	if _, err := LoadPrivateKey(plain, []byte(testPass)); err == nil {
		t.Fatal("unencrypted openssl key accepted by LoadPrivateKey")
	}
}

func TestSM4CBCDecryptTampered(t *testing.T) {
	key := make([]byte, 16)
	ct, _ := SM4CBCEncrypt(key, nil, []byte("hello"))
	for _, bad := range [][]byte{nil, ct[:16], ct[:20], ct[:len(ct)-1]} {
		if _, err := SM4CBCDecrypt(key, bad); !errorsIs(err, ErrTampered) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	if _, err := SM4CBCEncrypt(key[:8], nil, nil); err == nil {
		t.Error("short key accepted")
	}
}
