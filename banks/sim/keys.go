package sim

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/ssh"

	"yktgw/crypto"
)

// File names SetupKeys writes in its directory. They are the names
// config/example.yaml uses under keys/.
const (
	PassphraseFileName = "passphrase"               // passphrase of the SM2 private keys
	DataKeyFileName    = "data.key"                 // the gateway's SM4 data keys (crypto.GenerateDataKeyFile)
	GatewayParty       = "gateway"                  // gateway.key.pem / .pub.pem / .cert.pem
	HostKeyFileName    = "banksim_host_ed25519"     // the simulator's SSH host key (+ .pub)
	ClientKeyFileName  = "gateway_ssh"              // the gateway's SSH client key (+ .pub)
	KnownHostsFileName = "banksim_host.known_hosts" // one known_hosts line pinning the host key
)

// DefaultBank is the bank code SetupKeys makes a party for.
const DefaultBank = "DEMO"

// certValidity is how long generated certificates are valid.
const certValidity = 2 * 365 * 24 * time.Hour

// KeySet is a complete throw-away key set for the gateway and one simulated
// bank: paths, loaded values, and the host key pins.
type KeySet struct {
	Dir string

	PassphraseFile string
	DataKeyFile    string

	GatewayKeyFile, GatewayCertFile string
	BankKeyFile, BankCertFile       string

	HostKeyFile, HostPubFile     string // OpenSSH private key (PEM) and authorized_keys-format public key
	ClientKeyFile, ClientPubFile string
	KnownHostsFile               string

	Passphrase []byte
	Gateway    crypto.Party
	Bank       crypto.Party
	HostKey    ssh.Signer
	ClientKey  ssh.Signer

	// KnownHostsLine pins the host key ("banksim ssh-ed25519 AAAA..."), as
	// the sftp channel's host_key option takes it.
	KnownHostsLine string
	// HostKeyFingerprint is "SHA256:..." of the host key.
	HostKeyFingerprint string
}

// BankPartyName is the SM2 party name of a bank code ("bank-demo").
func BankPartyName(code string) string { return "bank-" + strings.ToLower(code) }

// SetupKeys makes (or completes) the key set for the gateway and the DEMO
// bank in dir. See SetupKeysFor.
func SetupKeys(dir string, passphrase []byte) (*KeySet, error) {
	return SetupKeysFor(dir, DefaultBank, passphrase)
}

// SetupKeysFor makes in dir: the SM2 parties "gateway" and "bank-<code>"
// (crypto.GenerateParty: encrypted key, public key, self-signed
// certificate), an ed25519 SSH host key for the simulator and an ed25519
// SSH client key for the gateway (OpenSSH PEM, 0600, with .pub files),
// a known_hosts file pinning the host key, the passphrase file and the
// gateway's data key file. What already exists is loaded, not replaced, so
// running it twice is harmless; a party with only some of its files is an
// error. passphrase nil: the existing passphrase file, else a new random
// one.
func SetupKeysFor(dir, code string, passphrase []byte) (*KeySet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	ks := &KeySet{
		Dir:            dir,
		PassphraseFile: filepath.Join(dir, PassphraseFileName),
		DataKeyFile:    filepath.Join(dir, DataKeyFileName),
		HostKeyFile:    filepath.Join(dir, HostKeyFileName),
		HostPubFile:    filepath.Join(dir, HostKeyFileName+".pub"),
		ClientKeyFile:  filepath.Join(dir, ClientKeyFileName),
		ClientPubFile:  filepath.Join(dir, ClientKeyFileName+".pub"),
		KnownHostsFile: filepath.Join(dir, KnownHostsFileName),
	}
	var err error
	if ks.Passphrase, err = setupPassphrase(ks.PassphraseFile, passphrase); err != nil {
		return nil, err
	}
	ks.GatewayKeyFile, _, ks.GatewayCertFile = crypto.PartyFiles(dir, GatewayParty)
	if ks.Gateway, err = setupParty(dir, GatewayParty, ks.Passphrase); err != nil {
		return nil, err
	}
	bank := BankPartyName(code)
	ks.BankKeyFile, _, ks.BankCertFile = crypto.PartyFiles(dir, bank)
	if ks.Bank, err = setupParty(dir, bank, ks.Passphrase); err != nil {
		return nil, err
	}
	if ks.HostKey, err = setupSSHKey(ks.HostKeyFile, "yktgw-banksim"); err != nil {
		return nil, err
	}
	if ks.ClientKey, err = setupSSHKey(ks.ClientKeyFile, "yktgw-gateway"); err != nil {
		return nil, err
	}
	pub := ks.HostKey.PublicKey()
	ks.KnownHostsLine = "banksim " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	ks.HostKeyFingerprint = ssh.FingerprintSHA256(pub)
	if err := writeIfChanged(ks.KnownHostsFile, []byte(ks.KnownHostsLine+"\n"), 0o644); err != nil {
		return nil, err
	}
	if _, err := os.Stat(ks.DataKeyFile); errors.Is(err, os.ErrNotExist) {
		if err := crypto.GenerateDataKeyFile(ks.DataKeyFile); err != nil {
			return nil, fmt.Errorf("sim: keys: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	return ks, nil
}

func setupPassphrase(file string, given []byte) ([]byte, error) {
	old, err := os.ReadFile(file)
	switch {
	case err == nil:
		old = []byte(strings.TrimRight(string(old), "\r\n"))
		if given != nil && string(given) != string(old) {
			return nil, fmt.Errorf("sim: keys: %s exists with another passphrase", file)
		}
		if len(old) == 0 {
			return nil, fmt.Errorf("sim: keys: %s is empty", file)
		}
		return old, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	p := given
	if len(p) == 0 {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		p = []byte(hex.EncodeToString(b[:]))
	}
	if err := os.WriteFile(file, append(append([]byte(nil), p...), '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	return p, nil
}

func setupParty(dir, name string, pass []byte) (crypto.Party, error) {
	key, pub, cert := crypto.PartyFiles(dir, name)
	n := 0
	for _, f := range []string{key, pub, cert} {
		if _, err := os.Stat(f); err == nil {
			n++
		}
	}
	switch n {
	case 0:
		if err := crypto.GenerateParty(dir, name, pass, certValidity); err != nil {
			return crypto.Party{}, fmt.Errorf("sim: keys: %w", err)
		}
	case 3:
	default:
		return crypto.Party{}, fmt.Errorf("sim: keys: party %s in %s is incomplete (%d of 3 files); remove them or add the rest", name, dir, n)
	}
	return LoadParty(key, cert, pass)
}

// LoadParty loads an SM2 party: its encrypted private key and certificate,
// which must belong together.
func LoadParty(keyFile, certFile string, passphrase []byte) (crypto.Party, error) {
	k, err := crypto.LoadPrivateKey(keyFile, passphrase)
	if err != nil {
		return crypto.Party{}, fmt.Errorf("sim: %w", err)
	}
	c, err := crypto.LoadCertificate(certFile)
	if err != nil {
		return crypto.Party{}, fmt.Errorf("sim: %w", err)
	}
	if !crypto.KeyMatchesCert(k, c) {
		return crypto.Party{}, fmt.Errorf("sim: %s does not belong to %s", keyFile, certFile)
	}
	return crypto.Party{Key: k, Cert: c}, nil
}

// LoadCertificate loads a PEM certificate.
func LoadCertificate(file string) (*smx509.Certificate, error) {
	c, err := crypto.LoadCertificate(file)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return c, nil
}

func setupSSHKey(file, comment string) (ssh.Signer, error) {
	if b, err := os.ReadFile(file); err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("sim: keys: %s: %w", file, err)
		}
		if err := writeIfChanged(file+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
			return nil, err
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	_, err = f.Write(pem.EncodeToMemory(block))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("sim: keys: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeIfChanged(file+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func writeIfChanged(file string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(file); err == nil && string(old) == string(data) {
		return nil
	}
	if err := os.WriteFile(file, data, perm); err != nil {
		return fmt.Errorf("sim: keys: %w", err)
	}
	return nil
}

// LoadHostKey reads an OpenSSH private host key (unencrypted).
func LoadHostKey(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sim: host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sim: host key %s: %w", file, err)
	}
	return s, nil
}

// LoadAuthorizedKeys reads an authorized_keys file (one public key a line,
// # comments and options allowed).
func LoadAuthorizedKeys(file string) ([]ssh.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sim: authorized keys: %w", err)
	}
	var out []ssh.PublicKey
	for len(strings.TrimSpace(string(b))) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			if len(out) > 0 && strings.TrimSpace(string(rest)) == "" {
				break
			}
			return nil, fmt.Errorf("sim: authorized keys %s: %w", file, err)
		}
		out = append(out, k)
		b = rest
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sim: authorized keys %s: no key", file)
	}
	return out, nil
}
