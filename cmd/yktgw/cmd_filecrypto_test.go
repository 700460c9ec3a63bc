package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/smx509"

	"yktgw/crypto"
)

func kcWrite(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileSignVerify(t *testing.T) {
	dir, pass := kcParties(t)
	in := kcWrite(t, filepath.Join(dir, "batch.txt"), []byte("1|张三|11010519491231002X|6222020200112233445|12345\n"))
	sig := filepath.Join(dir, "batch.sig")
	gwKey, gwCert, bankCert := filepath.Join(dir, "gw.key.pem"), filepath.Join(dir, "gw.cert.pem"), filepath.Join(dir, "bank.cert.pem")

	for _, format := range []string{"raw", "pkcs7"} {
		t.Run(format, func(t *testing.T) {
			kcMustRun(t, "file", "sign", "--key", gwKey, "--in", in, "--out", sig, "--passphrase-file", pass, "--format", format)
			out := kcMustRun(t, "file", "verify", "--cert", gwCert, "--in", in, "--sig", sig)
			if !strings.Contains(out, "verified OK") {
				t.Fatalf("verify: %q", out)
			}
			code, _, err := kcRun(t, "file", "verify", "--cert", bankCert, "--in", in, "--sig", sig)
			if code != 2 || (!errors.Is(err, crypto.ErrBadSignature) && !errors.Is(err, crypto.ErrWrongSigner)) {
				t.Fatalf("other cert: exit %d %v", code, err)
			}
			other := kcWrite(t, filepath.Join(dir, "other.txt"), []byte("1|张三|11010519491231002X|6222020200112233445|12346\n"))
			code, _, err = kcRun(t, "file", "verify", "--cert", gwCert, "--in", other, "--sig", sig)
			if code != 2 || !errors.Is(err, crypto.ErrBadSignature) {
				t.Fatalf("changed file: exit %d %v", code, err)
			}
		})
	}
	// Custom signer id, verified with --pub.
	kcMustRun(t, "file", "sign", "--key", gwKey, "--in", in, "--out", sig, "--passphrase-file", pass, "--signer-id", "BANK-0001")
	kcMustRun(t, "file", "verify", "--pub", filepath.Join(dir, "gw.pub.pem"), "--in", in, "--sig", sig, "--signer-id", "BANK-0001")
	if code, _, _ := kcRun(t, "file", "verify", "--pub", filepath.Join(dir, "gw.pub.pem"), "--in", in, "--sig", sig); code != 2 {
		t.Fatalf("default id accepted a BANK-0001 signature: exit %d", code)
	}
	if code, _, _ := kcRun(t, "file", "sign", "--key", gwKey, "--in", in, "--out", sig, "--passphrase-file", filepath.Join(dir, "missing")); code != 1 {
		t.Fatalf("missing passphrase file: exit %d", code)
	}
}

// Debian's OpenSSL verifies what `yktgw file sign` wrote, and `yktgw file
// verify` accepts what OpenSSL signed with the same key.
func TestFileSignOpenSSLInterop(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		kcSkipOrFail(t, "no openssl binary")
	}
	if out, _ := exec.Command(bin, "list", "-digest-algorithms").CombinedOutput(); !strings.Contains(string(out), "SM3") {
		kcSkipOrFail(t, "openssl lacks SM3")
	}
	dir, pass := kcParties(t)
	in := kcWrite(t, filepath.Join(dir, "batch.txt"), bytes.Repeat([]byte("1|张三|11010519491231002X|6222020200112233445|12345\n"), 500))
	sig := filepath.Join(dir, "batch.sig")
	kcMustRun(t, "file", "sign", "--key", filepath.Join(dir, "gw.key.pem"), "--in", in, "--out", sig, "--passphrase-file", pass)
	out, err := exec.Command(bin, "dgst", "-sm3", "-verify", filepath.Join(dir, "gw.pub.pem"), "-sigopt", "distid:1234567812345678", "-signature", sig, in).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl verify: %v %s", err, out)
	}
	// OpenSSL cannot read the ShangMi PBES2 key profile; give it a plain copy of the same key.
	key, err := crypto.LoadPrivateKey(filepath.Join(dir, "gw.key.pem"), []byte("cli test passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := smx509.MarshalPKCS8PrivateKey(key)
	plain := filepath.Join(dir, "plain.pem")
	os.WriteFile(plain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	osig := filepath.Join(dir, "openssl.sig")
	if out, err := exec.Command(bin, "dgst", "-sm3", "-sign", plain, "-sigopt", "distid:1234567812345678", "-out", osig, in).CombinedOutput(); err != nil {
		t.Fatalf("openssl sign: %v %s", err, out)
	}
	kcMustRun(t, "file", "verify", "--cert", filepath.Join(dir, "gw.cert.pem"), "--in", in, "--sig", osig)
}

func kcSkipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
		t.Fatalf("required: %s", why)
	}
	t.Skip("skipping: " + why)
}

func TestFileSealOpen(t *testing.T) {
	dir, pass := kcParties(t)
	content := []byte("1|张三|11010519491231002X|6222020200112233445|12345\n")
	in := kcWrite(t, filepath.Join(dir, "batch.txt"), content)
	sealed := filepath.Join(dir, "batch.p7")
	out := filepath.Join(dir, "opened.txt")
	gwKey, gwCert := filepath.Join(dir, "gw.key.pem"), filepath.Join(dir, "gw.cert.pem")
	bankKey, bankCert := filepath.Join(dir, "bank.key.pem"), filepath.Join(dir, "bank.cert.pem")

	for _, extra := range [][]string{nil, {"--cipher", "sm4-cbc"}, {"--cfca"}} {
		args := append([]string{"file", "seal", "--key", gwKey, "--to", bankCert, "--in", in, "--out", sealed, "--passphrase-file", pass}, extra...)
		kcMustRun(t, args...)
		openArgs := []string{"file", "open", "--key", bankKey, "--from", gwCert, "--in", sealed, "--out", out, "--passphrase-file", pass}
		if len(extra) > 0 && extra[0] == "--cfca" {
			openArgs = append(openArgs, "--cfca")
		}
		msg := kcMustRun(t, openArgs...)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, content) || !strings.Contains(msg, "signature OK") {
			t.Fatalf("%v: opened %q, %q", extra, got, msg)
		}
		if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
			t.Fatalf("opened file mode %v, want 0600", st.Mode().Perm())
		}
		os.Remove(out)
	}

	kcMustRun(t, "file", "seal", "--key", gwKey, "--to", bankCert, "--in", in, "--out", sealed, "--passphrase-file", pass)
	raw, _ := os.ReadFile(sealed)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-5] ^= 0x20
	bad := kcWrite(t, filepath.Join(dir, "flipped.p7"), flipped)
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"tampered", []string{"--key", bankKey, "--from", gwCert, "--in", bad}, crypto.ErrTampered},
		{"wrong recipient", []string{"--key", gwKey, "--from", gwCert, "--in", sealed}, crypto.ErrNotRecipient},
		{"wrong signer", []string{"--key", bankKey, "--from", bankCert, "--in", sealed}, crypto.ErrWrongSigner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"file", "open", "--out", out, "--passphrase-file", pass}, tc.args...)
			code, _, err := kcRun(t, args...)
			if code != 2 || !errors.Is(err, tc.want) {
				t.Fatalf("exit %d, %v; want exit 2 and %v", code, err, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("output written despite failure")
			}
		})
	}
	if code, _, _ := kcRun(t, "file", "seal", "--key", gwKey, "--to", bankCert, "--in", in, "--out", sealed, "--passphrase-file", pass, "--max-bytes", "10"); code != 2 {
		t.Fatalf("too large: exit %d", code)
	}
}
