package crypto

import (
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/smx509"
)

var update = flag.Bool("update", false, "rewrite golden files and fuzz seed corpora under testdata")

const testPass = "correct horse battery staple"

// requireServices reports whether a missing external tool must fail the test
// (CI sets YKT_REQUIRE_SERVICES=1) instead of skipping it.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
		t.Fatalf("required service missing: %s", why)
	}
	t.Skip("skipping: " + why)
}

type testParty struct {
	Party
	keyPath, pubPath, certPath string
}

var (
	partyMu    sync.Mutex
	partyCache = map[string]*testParty{}
	partyDir   string
)

// party returns a generated party (cached per test binary: key generation
// with 100,000 PBKDF2 rounds is the slow part). Variant names: "x-expired"
// makes a certificate that expired an hour ago.
func party(t testing.TB, name string) *testParty {
	t.Helper()
	partyMu.Lock()
	defer partyMu.Unlock()
	if p, ok := partyCache[name]; ok {
		return p
	}
	if partyDir == "" {
		d, err := os.MkdirTemp("", "yktgw-crypto-test-")
		if err != nil {
			t.Fatal(err)
		}
		partyDir = d
	}
	now := time.Now()
	nb, na := now.Add(-time.Hour), now.Add(24*time.Hour)
	if strings.HasSuffix(name, "-expired") {
		nb, na = now.Add(-48*time.Hour), now.Add(-time.Hour)
	}
	if err := generateParty(partyDir, name, []byte(testPass), nb, na); err != nil {
		t.Fatal(err)
	}
	k, p, c := PartyFiles(partyDir, name)
	key, err := LoadPrivateKey(k, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ReadCertificate(c)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testParty{Party: Party{Key: key, Cert: cert}, keyPath: k, pubPath: p, certPath: c}
	partyCache[name] = tp
	return tp
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if partyDir != "" {
		os.RemoveAll(partyDir)
	}
	os.Exit(code)
}

// fixedParty is the committed test party under testdata/party (passphrase
// testPass, valid for 100 years) used by golden files and fuzz seeds.
func fixedParty(t testing.TB, name string) Party {
	t.Helper()
	dir := filepath.Join("testdata", "party")
	k, _, c := PartyFiles(dir, name)
	if *update {
		if _, err := os.Stat(k); errors.Is(err, os.ErrNotExist) {
			// Few PBKDF2 rounds: fuzz workers load these keys under coverage
			// instrumentation, where 100,000 rounds take many seconds.
			defer func(n int) { PBKDF2Iterations = n }(PBKDF2Iterations)
			PBKDF2Iterations = 1000
			now := time.Now()
			if err := generateParty(dir, name, []byte(testPass), now.Add(-time.Hour), now.AddDate(100, 0, 0)); err != nil {
				t.Fatal(err)
			}
		}
	}
	key, err := LoadPrivateKey(k, []byte(testPass))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update ./crypto/ once)", err)
	}
	cert, err := LoadCertificate(c)
	if err != nil {
		t.Fatal(err)
	}
	return Party{Key: key, Cert: cert}
}

func mustCerts(cs ...*smx509.Certificate) []*smx509.Certificate { return cs }

// opensslSM checks that the openssl binary has SM2, SM3 and SM4-CBC.
func opensslSM(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		skipOrFail(t, "no openssl binary in PATH")
	}
	d, _ := exec.Command(bin, "list", "-digest-algorithms").CombinedOutput()
	c, _ := exec.Command(bin, "list", "-cipher-algorithms").CombinedOutput()
	p, _ := exec.Command(bin, "list", "-public-key-algorithms").CombinedOutput()
	if !strings.Contains(string(d), "SM3") || !strings.Contains(string(c), "SM4-CBC") || !strings.Contains(strings.ToLower(string(p)), "sm2") {
		skipOrFail(t, "openssl lacks SM2/SM3/SM4-CBC")
	}
	return bin
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type smxCert = smx509.Certificate

func gmsmVerify(der []byte) error {
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return err
	}
	return p7.Verify()
}

type sm2PublicKey = ecdsa.PublicKey
