package sftp

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"yktgw/banks"
)

func testKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseHostKey(t *testing.T) {
	key := testKey(t)
	other := testKey(t)
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	known := knownhosts.Line([]string{"[bank.example]:2222", "10.0.0.1"}, key)
	hashed := knownhosts.Line([]string{knownhosts.HashHostname("bank.example")}, key)
	fp := ssh.FingerprintSHA256(key)
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" = must parse and accept key, reject other
	}{
		{"known_hosts line", known, ""},
		{"hashed known_hosts line", hashed, ""},
		{"bare public key with comment", authorized + " bank ops 2026", ""},
		{"fingerprint", fp, ""},
		{"fingerprint with padding", fp + "=", ""},
		{"several lines and comments", "# rotation\n" + ssh.FingerprintSHA256(other) + "\n\n" + known + "\n", ""},
		{"empty", "", "host_key is required"},
		{"blank and comments only", "  \n# nothing\n", "host_key is required"},
		{"short fingerprint", "SHA256:abc", "fingerprint"},
		{"md5 fingerprint", "MD5:" + strings.Repeat("ab:", 15) + "ab", "not a known_hosts line"},
		{"garbage", "hello world", "not a known_hosts line"},
		{"revoked marker", "@revoked " + known, "markers"},
		{"cert authority", "@cert-authority *.bank " + authorized, "markers"},
		{"truncated key", known[:len(known)-10], "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHostKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHostKey: %v", err)
			}
			if err := p.Check("bank", nil, key); err != nil {
				t.Errorf("pinned key refused: %v", err)
			}
			if tt.name == "several lines and comments" {
				return // other is pinned there too
			}
			err = p.Check("bank", nil, other)
			if !errors.Is(err, banks.ErrHostKey) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(other)) {
				t.Errorf("other key: err = %v, want ErrHostKey naming its fingerprint", err)
			}
		})
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	p, err := ParseHostKey(knownhosts.Line([]string{"h"}, testKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Algorithms(); len(got) != 1 || got[0] != ssh.KeyAlgoED25519 {
		t.Errorf("Algorithms = %v", got)
	}
	p, _ = ParseHostKey(ssh.FingerprintSHA256(testKey(t)))
	if got := p.Algorithms(); got != nil {
		t.Errorf("fingerprint pin: Algorithms = %v, want nil", got)
	}
}

// FuzzParseHostKey: the parser never panics, and whatever it accepts pins
// at least one key and refuses a fresh random key.
func FuzzParseHostKey(f *testing.F) {
	key := testKey(f)
	f.Add(knownhosts.Line([]string{"[127.0.0.1]:2222"}, key))
	f.Add(ssh.FingerprintSHA256(key))
	f.Add(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " comment")
	f.Add("")
	f.Add("@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	stranger := testKey(f)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseHostKey(s)
		if err != nil {
			if p != nil {
				t.Fatal("pins returned with an error")
			}
			return
		}
		if len(p.keys)+len(p.fingerprints) == 0 {
			t.Fatal("accepted without any pin")
		}
		if err := p.Check("h", nil, stranger); !errors.Is(err, banks.ErrHostKey) {
			t.Fatalf("random key accepted by pins parsed from %q", s)
		}
		_ = p.Algorithms()
	})
}
