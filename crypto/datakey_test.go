package crypto

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emmansun/gmsm/sm3"
)

func newKeyring(t testing.TB) (*DataKeyring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "datakeys.json")
	if err := GenerateDataKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadDataKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	return k, path
}

func TestDataKeyFileIsPrivateAndNotOverwritten(t *testing.T) {
	_, path := newKeyring(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := GenerateDataKeyFile(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second generate: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing key file was changed")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDataKeyring(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("load 0644 file: %v", err)
	}
}

func TestFieldEncryptRoundTrip(t *testing.T) {
	k, _ := newKeyring(t)
	aad := []byte("batch-1/7/id_number")
	for _, pt := range [][]byte{nil, []byte("11010519491231002X"), []byte("6222020200112233445"), bytes.Repeat([]byte("名"), 100)} {
		ct, err := k.Encrypt(pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != len(pt)+k.Overhead() {
			t.Fatalf("len %d, want %d", len(ct), len(pt)+k.Overhead())
		}
		if len(pt) > 4 && bytes.Contains(ct, pt) {
			t.Fatal("plaintext visible in ciphertext")
		}
		id, err := FieldKeyID(ct)
		if err != nil || id != k.ActiveKeyID() {
			t.Fatalf("key id %q %v, want %q", id, err, k.ActiveKeyID())
		}
		got, err := k.Decrypt(ct, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("decrypt: %q %v", got, err)
		}
		if _, err := k.Decrypt(ct, []byte("batch-1/8/id_number")); !errors.Is(err, ErrTampered) {
			t.Fatalf("other aad: %v, want ErrTampered", err)
		}
	}
}

func TestFieldCiphertextTampering(t *testing.T) {
	k, _ := newKeyring(t)
	ct, _ := k.Encrypt([]byte("11010519491231002X"), nil)
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		_, err := k.Decrypt(bad, nil)
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKeyID) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	for n := 0; n < len(ct); n++ {
		if _, err := k.Decrypt(ct[:n], nil); !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKeyID) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func TestFieldNoncesNeverRepeat(t *testing.T) {
	k, _ := newKeyring(t)
	seen := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ct, _ := k.Encrypt([]byte("x"), nil)
				n := string(ct[2+len(k.ActiveKeyID()) : 2+len(k.ActiveKeyID())+gcmNonceSize])
				mu.Lock()
				if seen[n] {
					t.Errorf("nonce repeated")
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestDataKeyRotation(t *testing.T) {
	k1, path := newKeyring(t)
	old, _ := k1.Encrypt([]byte("6222020200112233445"), []byte("a"))
	idx1 := k1.BlindIndex("account", "6222020200112233445")

	newID, err := AddDataKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rotation %v", st.Mode().Perm())
	}
	k2, err := LoadDataKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ActiveKeyID() != newID || newID == k1.ActiveKeyID() {
		t.Fatalf("active %q, new %q, old %q", k2.ActiveKeyID(), newID, k1.ActiveKeyID())
	}
	if got := k2.KeyIDs(); len(got) != 2 || got[0] != k1.ActiveKeyID() {
		t.Fatalf("ids %v", got)
	}
	if pt, err := k2.Decrypt(old, []byte("a")); err != nil || string(pt) != "6222020200112233445" {
		t.Fatalf("old ciphertext after rotation: %q %v", pt, err)
	}
	fresh, _ := k2.Encrypt([]byte("x"), nil)
	if id, _ := FieldKeyID(fresh); id != newID {
		t.Fatalf("new data under %q, want %q", id, newID)
	}
	if _, err := k1.Decrypt(fresh, nil); !errors.Is(err, ErrUnknownKeyID) {
		t.Fatalf("old keyring on new data: %v, want ErrUnknownKeyID", err)
	}
	if !bytes.Equal(idx1, k2.BlindIndex("account", "6222020200112233445")) {
		t.Fatal("blind index changed by rotation")
	}
}

func TestBlindIndex(t *testing.T) {
	k, path := newKeyring(t)
	f, err := readDataKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idxKey := mustB64(t, f.IndexKey)
	mac := hmac.New(sm3.New, idxKey)
	mac.Write([]byte("id_number\x0011010519491231002X"))
	want := mac.Sum(nil)
	got := k.BlindIndex("id_number", "11010519491231002X")
	if !bytes.Equal(got, want) || len(got) != BlindIndexSize {
		t.Fatalf("blind index %x, want HMAC-SM3 %x", got, want)
	}
	if bytes.Equal(got, k.BlindIndex("account", "11010519491231002X")) {
		t.Fatal("domains not separated")
	}
	// "a"+"b\x00c" must not equal "a\x00b"+"c"-style collisions across the separator.
	if bytes.Equal(k.BlindIndex("ab", "c"), k.BlindIndex("a", "bc")) {
		t.Fatal("domain/value boundary ambiguous")
	}
	other, _ := newKeyring(t)
	if bytes.Equal(got, other.BlindIndex("id_number", "11010519491231002X")) {
		t.Fatal("two keyrings give the same index")
	}
}

func TestFieldHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	k, _ := newKeyring(t)
	pt := []byte("11010519491231002X")
	aad := []byte("b/1/id_number")
	buf := make([]byte, 0, 256)
	ct, _ := k.Encrypt(pt, aad)
	out := make([]byte, 0, 64)
	idx := make([]byte, 0, BlindIndexSize)
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"EncryptTo", 0, func() { _, _ = k.EncryptTo(buf[:0], pt, aad) }},
		{"Encrypt", 1, func() { _, _ = k.Encrypt(pt, aad) }},
		{"DecryptTo", 0, func() { _, _ = k.DecryptTo(out[:0], ct, aad) }},
		{"BlindIndexTo", 0, func() { _ = k.BlindIndexTo(idx[:0], "id_number", "11010519491231002X") }},
		{"BlindIndex", 1, func() { _ = k.BlindIndex("id_number", "11010519491231002X") }},
	}
	for _, tc := range tests {
		if got := testing.AllocsPerRun(200, tc.fn); got > tc.max {
			t.Errorf("%s: %.1f allocations per call, want <= %.0f", tc.name, got, tc.max)
		}
	}
}

func TestKeyringNeverPrintsKeys(t *testing.T) {
	k, path := newKeyring(t)
	f, _ := readDataKeyFile(path)
	s := k.String() + k.LogValue().String()
	if strings.Contains(s, f.Keys[0].Key) || strings.Contains(s, f.IndexKey) {
		t.Fatalf("key material in %q", s)
	}
	if !strings.Contains(s, k.ActiveKeyID()) {
		t.Fatalf("id missing from %q", s)
	}
}

func TestParseDataKeyFileErrors(t *testing.T) {
	good := `{"format":"yktgw-datakeys","version":1,"active":"k1","index_key":"` + strings.Repeat("A", 43) + `=","keys":[{"id":"k1","key":"AAAAAAAAAAAAAAAAAAAAAA==","created":"2026-11-28T00:00:00Z"}]}`
	if _, err := parseDataKeyFile([]byte(good)); err != nil {
		t.Fatalf("good file: %v", err)
	}
	tests := []struct{ name, in, want string }{
		{"empty", ``, "parse"},
		{"not json", `hello`, "parse"},
		{"unknown field", strings.Replace(good, `"version"`, `"extra":1,"version"`, 1), "unknown field"},
		{"trailing", good + `{}`, "trailing"},
		{"format", strings.Replace(good, "yktgw-datakeys", "other", 1), "format"},
		{"version", strings.Replace(good, `"version":1`, `"version":2`, 1), "version"},
		{"index short", strings.Replace(good, strings.Repeat("A", 43)+"=", "AAAA", 1), "index_key"},
		{"no keys", strings.Replace(good, `[{"id":"k1","key":"AAAAAAAAAAAAAAAAAAAAAA==","created":"2026-11-28T00:00:00Z"}]`, `[]`, 1), "no keys"},
		{"bad id", strings.Replace(good, `"id":"k1"`, `"id":"k 1"`, 1), "only"},
		{"key short", strings.Replace(good, `AAAAAAAAAAAAAAAAAAAAAA==`, `AAAA`, 1), "16 bytes"},
		{"active missing", strings.Replace(good, `"active":"k1"`, `"active":"k2"`, 1), "not in keys"},
		{"duplicate", strings.Replace(good, `}]}`, `},{"id":"k1","key":"AAAAAAAAAAAAAAAAAAAAAA==","created":"2026-11-28T00:00:00Z"}]}`, 1), "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDataKeyFile([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
		})
	}
}
