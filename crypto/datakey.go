package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

// Data-key file format (version 1), JSON, mode 0600:
//
//	{
//	  "format": "yktgw-datakeys",
//	  "version": 1,
//	  "active": "dk-20261128-3f9a0c1e",
//	  "index_key": "<base64 of 32 random bytes>",
//	  "keys": [
//	    {"id": "dk-20261128-3f9a0c1e", "key": "<base64 of 16 bytes>", "created": "2026-11-28T07:20:00Z"}
//	  ]
//	}
//
// Ids are 1..32 bytes of [A-Za-z0-9._-]. The active key encrypts new data;
// every listed key decrypts. "index_key" keys the HMAC-SM3 blind indexes; it
// is written once by gen-data-key and never changed by add-data-key (changing
// it would silently break every lookup). The file holds secrets in the clear
// and is protected by its mode: LoadDataKeyring refuses a file readable by
// group or others.
//
// Field ciphertext (version 1):
//
//	0x01 | len(id) (1 byte) | id | nonce (12 bytes) | SM4-GCM ciphertext | tag (16 bytes)
//
// The caller's aad (for example batch id, record seq, field name) is
// authenticated but not stored. Nonces are a random 4-byte prefix chosen when
// the keyring is loaded followed by a 64-bit counter that starts at a random
// value, so one process never repeats a nonce and two processes collide only
// if 96 random bits do. Rotate the data key before 2^32 encryptions under it.
const (
	dataKeyFormat   = "yktgw-datakeys"
	dataKeyVersion  = 1
	fieldVersion    = 0x01
	dataKeySize     = 16
	indexKeySize    = 32
	gcmNonceSize    = 12
	gcmTagSize      = 16
	maxKeyIDLen     = 32
	maxDataKeyFile  = 1 << 20
	BlindIndexSize  = sm3.Size
	blindIndexBlock = 64
)

type dataKeyFile struct {
	Format   string         `json:"format"`
	Version  int            `json:"version"`
	Active   string         `json:"active"`
	IndexKey string         `json:"index_key"`
	Keys     []dataKeyEntry `json:"keys"`
}

type dataKeyEntry struct {
	ID      string    `json:"id"`
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
}

type dataKey struct {
	id   string
	aead cipher.AEAD
}

// DataKeyring holds SM4 data keys by id (one active for new data, old ones for
// reading) and the blind-index key. It is safe for concurrent use. It never
// prints its keys: LogValue and String show only ids.
type DataKeyring struct {
	active   *dataKey
	byID     map[string]*dataKey
	ids      []string
	hmacPool sync.Pool // of hash.Hash (HMAC-SM3 keyed with the index key)
	// inner and outer are HMAC-SM3's chaining values after the index key's
	// ipad and opad blocks, for BlindIndexesTo's lanes.
	inner, outer sm3State

	noncePrefix [4]byte
	counter     atomic.Uint64
}

// ActiveKeyID returns the id of the key used for new ciphertexts.
func (k *DataKeyring) ActiveKeyID() string { return k.active.id }

// KeyIDs returns every key id the keyring can decrypt with, in file order.
func (k *DataKeyring) KeyIDs() []string { return append([]string(nil), k.ids...) }

// String never shows key material.
func (k *DataKeyring) String() string {
	return fmt.Sprintf("DataKeyring{active=%s keys=%d}", k.active.id, len(k.ids))
}

// LogValue implements slog.LogValuer without key material.
func (k *DataKeyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active", k.active.id), slog.Int("keys", len(k.ids)))
}

// Overhead is the number of bytes Encrypt adds to a plaintext with the active key.
func (k *DataKeyring) Overhead() int { return 2 + len(k.active.id) + gcmNonceSize + gcmTagSize }

// Encrypt encrypts plaintext with the active key (SM4-GCM); aad is
// authenticated, not stored. The result carries the key id and the nonce.
func (k *DataKeyring) Encrypt(plaintext, aad []byte) ([]byte, error) {
	return k.EncryptTo(make([]byte, 0, len(plaintext)+k.Overhead()), plaintext, aad)
}

// EncryptTo is Encrypt appending to dst, for callers that reuse buffers.
func (k *DataKeyring) EncryptTo(dst, plaintext, aad []byte) ([]byte, error) {
	a := k.active
	n := len(dst)
	need := k.Overhead() + len(plaintext)
	if cap(dst)-n < need {
		nd := make([]byte, n, n+need)
		copy(nd, dst)
		dst = nd
	}
	dst = append(dst, fieldVersion, byte(len(a.id)))
	dst = append(dst, a.id...)
	dst = append(dst, k.noncePrefix[:]...)
	dst = binary.BigEndian.AppendUint64(dst, k.counter.Add(1))
	nonce := dst[len(dst)-gcmNonceSize:]
	return a.aead.Seal(dst, nonce, plaintext, aad), nil
}

// Decrypt opens a ciphertext made by Encrypt with any key of the keyring.
// A damaged ciphertext or a wrong aad gives ErrTampered; a key id the
// keyring lacks gives ErrUnknownKeyID.
func (k *DataKeyring) Decrypt(ciphertext, aad []byte) ([]byte, error) {
	return k.DecryptTo(nil, ciphertext, aad)
}

// DecryptTo is Decrypt appending to dst.
func (k *DataKeyring) DecryptTo(dst, ciphertext, aad []byte) ([]byte, error) {
	id, nonce, body, err := splitField(ciphertext)
	if err != nil {
		return nil, err
	}
	dk, ok := k.byID[string(id)] // no allocation: map lookup with string(bytes)
	if !ok {
		return nil, fmt.Errorf("crypto: data key %q: %w", id, ErrUnknownKeyID)
	}
	out, err := dk.aead.Open(dst, nonce, body, aad)
	if err != nil {
		return nil, fmt.Errorf("crypto: field ciphertext: %w", ErrTampered)
	}
	return out, nil
}

// FieldKeyID returns the data-key id a field ciphertext was made with (for
// re-encryption: rotate-data-key re-encrypts rows whose id is not active).
func FieldKeyID(ciphertext []byte) (string, error) {
	id, _, _, err := splitField(ciphertext)
	if err != nil {
		return "", err
	}
	return string(id), nil
}

func splitField(c []byte) (id, nonce, body []byte, err error) {
	if len(c) < 2 || c[0] != fieldVersion {
		return nil, nil, nil, fmt.Errorf("crypto: field ciphertext header: %w", ErrTampered)
	}
	l := int(c[1])
	if l == 0 || l > maxKeyIDLen || len(c) < 2+l+gcmNonceSize+gcmTagSize {
		return nil, nil, nil, fmt.Errorf("crypto: field ciphertext length: %w", ErrTampered)
	}
	id = c[2 : 2+l]
	nonce = c[2+l : 2+l+gcmNonceSize]
	body = c[2+l+gcmNonceSize:]
	return id, nonce, body, nil
}

// BlindIndex returns HMAC-SM3(indexKey, domain || 0x00 || value), 32 bytes.
// The domain separates fields ("id_number", "account") so equal values in
// different fields do not link.
func (k *DataKeyring) BlindIndex(domain, value string) []byte {
	return k.BlindIndexTo(make([]byte, 0, BlindIndexSize), domain, value)
}

// BlindIndexTo is BlindIndex appending to dst.
func (k *DataKeyring) BlindIndexTo(dst []byte, domain, value string) []byte {
	h := k.hmacPool.Get().(hash.Hash)
	h.Reset()
	// The hash does not retain its input, so viewing the strings as bytes
	// without copying is safe and saves two allocations per call.
	h.Write(unsafe.Slice(unsafe.StringData(domain), len(domain)))
	h.Write(zeroSep)
	h.Write(unsafe.Slice(unsafe.StringData(value), len(value)))
	dst = h.Sum(dst)
	k.hmacPool.Put(h)
	return dst
}

// BlindIndexesTo appends BlindIndex(domain, v) for each v of values (32
// bytes each, in order) to dst: the same values, computed eight at a time
// where the CPU allows it (sm3lanes.go).
func (k *DataKeyring) BlindIndexesTo(dst []byte, domain string, values []string) []byte {
	d := unsafe.Slice(unsafe.StringData(domain), len(domain)) // read only
	return runLanes(dst, len(values),
		func(i int) bool { return len(domain)+1+len(values[i]) <= maxLaneMessage },
		func(lb *laneBatch, i int) {
			lb.add(&k.inner, sm3.BlockSize, d, zeroSep, unsafe.Slice(unsafe.StringData(values[i]), len(values[i])))
		},
		func(dst []byte, i int) []byte { return k.BlindIndexTo(dst, domain, values[i]) },
		&k.outer)
}

// hmacStates returns HMAC-SM3's chaining values after the key's ipad and
// opad blocks (RFC 2104: a key longer than a block is hashed first).
func hmacStates(key []byte) (inner, outer sm3State) {
	var k [sm3.BlockSize]byte
	if len(key) > sm3.BlockSize {
		s := sm3.Sum(key)
		copy(k[:], s[:])
	} else {
		copy(k[:], key)
	}
	var pad [sm3.BlockSize]byte
	for i := range k {
		pad[i] = k[i] ^ 0x36
	}
	inner = stateAfter(&pad)
	for i := range k {
		pad[i] = k[i] ^ 0x5c
	}
	outer = stateAfter(&pad)
	clear(k[:])
	clear(pad[:])
	return inner, outer
}

// GenerateDataKeyFile writes a new data-key file with one active SM4 key and a
// blind-index key. It refuses to overwrite an existing file.
func GenerateDataKeyFile(path string) error {
	idx := make([]byte, indexKeySize)
	if _, err := rand.Read(idx); err != nil {
		return fmt.Errorf("crypto: random: %w", err)
	}
	e, err := newDataKeyEntry()
	if err != nil {
		return err
	}
	f := dataKeyFile{
		Format: dataKeyFormat, Version: dataKeyVersion, Active: e.ID,
		IndexKey: base64.StdEncoding.EncodeToString(idx), Keys: []dataKeyEntry{e},
	}
	return writeDataKeyFile(path, &f, false)
}

// AddDataKey adds a new SM4 key to an existing data-key file and makes it the
// active one; the old keys stay for reading and the index key is unchanged.
// It returns the new key id. The file is replaced atomically (temp + rename).
func AddDataKey(path string) (string, error) {
	f, err := readDataKeyFile(path)
	if err != nil {
		return "", err
	}
	e, err := newDataKeyEntry()
	if err != nil {
		return "", err
	}
	for _, old := range f.Keys {
		if old.ID == e.ID {
			return "", fmt.Errorf("crypto: new key id %q collides, try again", e.ID)
		}
	}
	f.Keys = append(f.Keys, e)
	f.Active = e.ID
	if err := writeDataKeyFile(path, f, true); err != nil {
		return "", err
	}
	return e.ID, nil
}

func newDataKeyEntry() (dataKeyEntry, error) {
	var b [dataKeySize + 4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return dataKeyEntry{}, fmt.Errorf("crypto: random: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	return dataKeyEntry{
		ID:      fmt.Sprintf("dk-%s-%x", now.Format("20060102"), b[dataKeySize:]),
		Key:     base64.StdEncoding.EncodeToString(b[:dataKeySize]),
		Created: now,
	}, nil
}

func writeDataKeyFile(path string, f *dataKeyFile, replace bool) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("crypto: encode data keys: %w", err)
	}
	data = append(data, '\n')
	if !replace {
		return writeNewFile(path, data, 0o600)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".datakeys-*")
	if err != nil {
		return fmt.Errorf("crypto: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("crypto: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("crypto: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("crypto: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("crypto: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("crypto: replace %s: %w", path, err)
	}
	return nil
}

// writeNewFile creates path exclusively (never overwrites) with mode perm.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("crypto: %s already exists, refusing to overwrite", path)
		}
		return fmt.Errorf("crypto: %w", err)
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return fmt.Errorf("crypto: write %s: %w", path, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("crypto: sync %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("crypto: close %s: %w", path, err)
	}
	return nil
}

func readDataKeyFile(path string) (*dataKeyFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("crypto: data keys: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("crypto: data keys: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("crypto: data keys %s: mode %v is readable by others, want 0600", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxDataKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("crypto: data keys: %w", err)
	}
	if len(data) > maxDataKeyFile {
		return nil, fmt.Errorf("crypto: data keys %s: file larger than %d bytes", path, maxDataKeyFile)
	}
	f, err := parseDataKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("crypto: data keys %s: %w", path, err)
	}
	return f, nil
}

// parseDataKeyFile is the pure parse step (fuzzed). It validates everything
// NewDataKeyring would otherwise trip over.
func parseDataKeyFile(data []byte) (*dataKeyFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f dataKeyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse: trailing data")
	}
	if f.Format != dataKeyFormat || f.Version != dataKeyVersion {
		return nil, fmt.Errorf("format %q version %d, want %q version %d", f.Format, f.Version, dataKeyFormat, dataKeyVersion)
	}
	idx, err := base64.StdEncoding.DecodeString(f.IndexKey)
	if err != nil || len(idx) != indexKeySize {
		return nil, fmt.Errorf("index_key must be %d bytes of base64", indexKeySize)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	seen := map[string]bool{}
	for i, e := range f.Keys {
		if err := validKeyID(e.ID); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("keys[%d]: duplicate id %q", i, e.ID)
		}
		seen[e.ID] = true
		k, err := base64.StdEncoding.DecodeString(e.Key)
		if err != nil || len(k) != dataKeySize {
			return nil, fmt.Errorf("keys[%d] %q: key must be %d bytes of base64", i, e.ID, dataKeySize)
		}
	}
	if !seen[f.Active] {
		return nil, fmt.Errorf("active key %q is not in keys", f.Active)
	}
	return &f, nil
}

func validKeyID(id string) error {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return fmt.Errorf("key id %q: length must be 1..%d", id, maxKeyIDLen)
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("key id %q: only [A-Za-z0-9._-] allowed", id)
		}
	}
	return nil
}

// LoadDataKeyring reads a data-key file (see the format above). It refuses a
// file whose mode lets group or others read it.
func LoadDataKeyring(path string) (*DataKeyring, error) {
	f, err := readDataKeyFile(path)
	if err != nil {
		return nil, err
	}
	return newDataKeyring(f)
}

func newDataKeyring(f *dataKeyFile) (*DataKeyring, error) {
	k := &DataKeyring{byID: make(map[string]*dataKey, len(f.Keys))}
	for _, e := range f.Keys {
		raw, _ := base64.StdEncoding.DecodeString(e.Key) // validated by parseDataKeyFile
		block, err := sm4.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("crypto: data key %q: %w", e.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("crypto: data key %q: %w", e.ID, err)
		}
		clear(raw)
		dk := &dataKey{id: e.ID, aead: aead}
		k.byID[e.ID] = dk
		k.ids = append(k.ids, e.ID)
	}
	k.active = k.byID[f.Active]
	idx, _ := base64.StdEncoding.DecodeString(f.IndexKey)
	k.hmacPool.New = func() any { return hmac.New(sm3.New, idx) }
	k.inner, k.outer = hmacStates(idx)
	var seed [12]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("crypto: random: %w", err)
	}
	copy(k.noncePrefix[:], seed[:4])
	k.counter.Store(binary.BigEndian.Uint64(seed[4:]))
	return k, nil
}

// zeroSep separates domain and value in blind indexes (a package variable so
// the interface call does not allocate it each time).
var zeroSep = []byte{0}
