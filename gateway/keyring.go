package gateway

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"yktgw/crypto"
)

// LiveKeyring is the data-key file as the daemon uses it while keys rotate:
// new data is encrypted under the file's active key as soon as the file
// changes (checked at most every few seconds), and a ciphertext under a key
// this process has not loaded yet (written by `yktgw keys rotate-data-key`
// from another process) makes it reload the file and try again. Old keys
// stay in the file, so nothing ever becomes unreadable.
type LiveKeyring struct {
	path    string
	cur     atomic.Pointer[crypto.DataKeyring]
	mu      sync.Mutex // serializes reloads
	modTime time.Time
	checked atomic.Int64 // unix nanos of the last mtime check
}

// OpenLiveKeyring loads the data-key file.
func OpenLiveKeyring(path string) (*LiveKeyring, error) {
	k := &LiveKeyring{path: path}
	if err := k.reload(true); err != nil {
		return nil, err
	}
	return k, nil
}

const keyringCheckEvery = 5 * time.Second

func (k *LiveKeyring) reload(force bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("gateway: data keys: %w", err)
	}
	if !force && fi.ModTime().Equal(k.modTime) {
		return nil
	}
	ring, err := crypto.LoadDataKeyring(k.path)
	if err != nil {
		return fmt.Errorf("gateway: data keys: %w", err)
	}
	k.cur.Store(ring)
	k.modTime = fi.ModTime()
	return nil
}

// maybeReload re-reads the file when it changed, at most every few seconds.
func (k *LiveKeyring) maybeReload() {
	now := time.Now().UnixNano()
	last := k.checked.Load()
	if now-last < int64(keyringCheckEvery) || !k.checked.CompareAndSwap(last, now) {
		return
	}
	_ = k.reload(false) // a broken file keeps the keys in use; LoadDataKeyring errors show at the next start
}

// Current is the keyring in use.
func (k *LiveKeyring) Current() *crypto.DataKeyring { return k.cur.Load() }

func (k *LiveKeyring) EncryptTo(dst, plaintext, aad []byte) ([]byte, error) {
	k.maybeReload()
	return k.cur.Load().EncryptTo(dst, plaintext, aad)
}

func (k *LiveKeyring) DecryptTo(dst, ciphertext, aad []byte) ([]byte, error) {
	out, err := k.cur.Load().DecryptTo(dst, ciphertext, aad)
	if errors.Is(err, crypto.ErrUnknownKeyID) {
		if rerr := k.reload(true); rerr != nil {
			return nil, rerr
		}
		return k.cur.Load().DecryptTo(dst, ciphertext, aad)
	}
	return out, err
}

func (k *LiveKeyring) BlindIndexTo(dst []byte, domain, value string) []byte {
	return k.cur.Load().BlindIndexTo(dst, domain, value)
}

func (k *LiveKeyring) BlindIndexesTo(dst []byte, domain string, values []string) []byte {
	return k.cur.Load().BlindIndexesTo(dst, domain, values)
}

var _ FieldCipher = (*LiveKeyring)(nil)
