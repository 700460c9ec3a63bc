package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"yktgw/crypto"
)

// Keys made by these tests use fewer PBKDF2 rounds: dozens of key loads
// under -race would otherwise take a minute. crypto's own tests keep the
// production count.
func init() { crypto.PBKDF2Iterations = 2048 }

var kcUpdate = flag.Bool("update-keys-golden", false, "rewrite cmd/yktgw/testdata/keys golden files")

// kcResetFlags puts every flag of the keys and file commands back to its
// default: cobra keeps flag values between Execute calls in one process.
func kcResetFlags(cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				sv.Replace(nil)
			} else {
				f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
		kcResetFlags(c.Commands()...)
	}
}

// kcRun runs yktgw in-process and returns its exit status, stdout and error.
func kcRun(t *testing.T, args ...string) (int, string, error) {
	t.Helper()
	kcResetFlags(keysCmd, fileCmd)
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	defer rootCmd.SetOut(nil)
	defer rootCmd.SetErr(nil)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return code, out.String(), err
}

func kcMustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, err := kcRun(t, args...)
	if code != 0 {
		t.Fatalf("yktgw %s: exit %d: %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

// kcParties makes two parties (gw, bank) with passphrase files.
func kcParties(t *testing.T) (dir, pass string) {
	t.Helper()
	dir = t.TempDir()
	pass = filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("cli test passphrase\n"), 0o600)
	t.Setenv(crypto.EnvPassphrase, "")
	os.Unsetenv(crypto.EnvPassphrase)
	kcMustRun(t, "keys", "gen", "--name", "gw", "--out", dir, "--passphrase-file", pass)
	kcMustRun(t, "keys", "gen", "--name", "bank", "--out", dir, "--passphrase-file", pass, "--days", "30")
	return dir, pass
}

func TestKeysGen(t *testing.T) {
	dir, pass := kcParties(t)
	for _, f := range []string{"gw.key.pem", "gw.pub.pem", "gw.cert.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(filepath.Join(dir, "gw.key.pem"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	c, err := crypto.LoadCertificate(filepath.Join(dir, "bank.cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if d := crypto.CertDaysLeft(c, time.Now()); d < 29.9 || d > 30.1 {
		t.Fatalf("--days 30 gave %.1f days", d)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Fatal("no SubjectKeyIdentifier")
	}
	// Refuses to overwrite; needs a passphrase.
	if code, _, err := kcRun(t, "keys", "gen", "--name", "gw", "--out", dir, "--passphrase-file", pass); code != 1 || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %d %v", code, err)
	}
	if code, _, err := kcRun(t, "keys", "gen", "--name", "x", "--out", dir); code != 1 || !errors.Is(err, crypto.ErrNoPassphrase) {
		t.Fatalf("no passphrase: %d %v", code, err)
	}
	t.Setenv(crypto.EnvPassphrase, "from the environment")
	kcMustRun(t, "keys", "gen", "--name", "envparty", "--out", dir)
	if _, err := crypto.LoadPrivateKey(filepath.Join(dir, "envparty.key.pem"), []byte("from the environment")); err != nil {
		t.Fatalf("env passphrase: %v", err)
	}
	// No command output ever carries key material.
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "gw.key.pem"))
	out := kcMustRun(t, "keys", "show", filepath.Join(dir, "gw.key.pem"))
	if !strings.Contains(out, "never shown") || strings.Contains(out, string(keyPEM[40:80])) {
		t.Fatalf("show key: %q", out)
	}
}

func TestKeysShowGolden(t *testing.T) {
	cert := filepath.Join("..", "..", "crypto", "testdata", "party", "gateway.cert.pem")
	c, err := crypto.ReadCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := keysShow(&out, cert, c.NotBefore.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "keys", "show_cert.golden")
	if *kcUpdate {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-keys-golden)", err)
	}
	if out.String() != string(want) {
		t.Fatalf("keys show:\n%s\nwant:\n%s", out.String(), want)
	}
	var exp bytes.Buffer
	keysShow(&exp, cert, c.NotAfter.Add(time.Hour))
	if !strings.Contains(exp.String(), "INVALID") || !strings.Contains(exp.String(), "expired") {
		t.Fatalf("expired cert: %s", exp.String())
	}
}

func TestDataKeyCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "datakeys.json")
	out := kcMustRun(t, "keys", "gen-data-key", "--out", path)
	k1, err := crypto.LoadDataKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, k1.ActiveKeyID()) {
		t.Fatalf("output %q lacks the key id", out)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(out, `"key"`) || strings.Contains(out, string(raw[len(raw)/2:len(raw)/2+20])) {
		t.Fatal("key material printed")
	}
	if code, _, _ := kcRun(t, "keys", "gen-data-key", "--out", path); code != 1 {
		t.Fatalf("overwrite exit %d", code)
	}
	ct, _ := k1.Encrypt([]byte("11010519491231002X"), nil)
	out = kcMustRun(t, "keys", "add-data-key", "--file", path)
	k2, err := crypto.LoadDataKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ActiveKeyID() == k1.ActiveKeyID() || !strings.Contains(out, k2.ActiveKeyID()) {
		t.Fatalf("rotation: %q", out)
	}
	if pt, err := k2.Decrypt(ct, nil); err != nil || string(pt) != "11010519491231002X" {
		t.Fatalf("old data after add-data-key: %v", err)
	}
}
