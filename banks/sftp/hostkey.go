package sftp

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"

	"yktgw/banks"
)

// HostKeyPins is the parsed host_key option: one or more pinned keys (full
// public keys from known_hosts lines, or SHA256 fingerprints). A server key
// is accepted when it equals any pinned key or matches any fingerprint.
type HostKeyPins struct {
	keys         []ssh.PublicKey
	fingerprints [][sha256.Size]byte
}

// ParseHostKey parses the host_key option. Each non-empty line that is not
// a # comment is one of:
//
//	SHA256:<base64 of the key's SHA-256, as ssh-keygen -l prints it>
//	<hosts> <keytype> <base64 key> [comment]      (a known_hosts line)
//	<keytype> <base64 key> [comment]              (a bare public key)
//
// The hosts field of a known_hosts line is not matched against the dialled
// address: the pin is the key itself. @cert-authority and @revoked lines
// are refused. An empty option is an error: a channel never connects
// without a pinned key.
func ParseHostKey(s string) (*HostKeyPins, error) {
	p := &HostKeyPins{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := p.addLine(line); err != nil {
			return nil, fmt.Errorf("sftp: host_key line %d: %w", i+1, err)
		}
	}
	if len(p.keys) == 0 && len(p.fingerprints) == 0 {
		return nil, errors.New("sftp: host_key is required (a known_hosts line or SHA256:... fingerprint); refusing to connect unpinned")
	}
	return p, nil
}

func (p *HostKeyPins) addLine(line string) error {
	if fp, ok := strings.CutPrefix(line, "SHA256:"); ok {
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fp, "="))
		if err != nil || len(raw) != sha256.Size {
			return errors.New("fingerprint is not SHA256:<43 base64 characters>")
		}
		p.fingerprints = append(p.fingerprints, [sha256.Size]byte(raw))
		return nil
	}
	if strings.HasPrefix(line, "@") {
		return errors.New("markers (@cert-authority, @revoked) are not supported in a pin")
	}
	// A bare key first: "ssh-ed25519 AAAA... comment".
	if key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
		if len(bytes.TrimSpace(rest)) != 0 {
			return errors.New("one key per line")
		}
		p.keys = append(p.keys, key)
		return nil
	}
	marker, hosts, key, _, rest, err := ssh.ParseKnownHosts([]byte(line))
	if err != nil {
		return fmt.Errorf("not a known_hosts line, public key or SHA256 fingerprint: %w", err)
	}
	if marker != "" {
		return errors.New("markers (@cert-authority, @revoked) are not supported in a pin")
	}
	if len(hosts) == 0 {
		return errors.New("known_hosts line without hosts")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return errors.New("one key per line")
	}
	p.keys = append(p.keys, key)
	return nil
}

// Check is an ssh.HostKeyCallback: nil when key is pinned, else an error
// wrapping banks.ErrHostKey that shows the presented key's fingerprint so
// ops can compare it with what the bank announced.
func (p *HostKeyPins) Check(hostname string, _ net.Addr, key ssh.PublicKey) error {
	wire := key.Marshal()
	for _, k := range p.keys {
		if subtle.ConstantTimeCompare(k.Marshal(), wire) == 1 {
			return nil
		}
	}
	sum := sha256.Sum256(wire)
	for _, fp := range p.fingerprints {
		if subtle.ConstantTimeCompare(fp[:], sum[:]) == 1 {
			return nil
		}
	}
	return fmt.Errorf("sftp: %s presented %s key %s: %w", hostname, key.Type(), ssh.FingerprintSHA256(key), banks.ErrHostKey)
}

// Algorithms returns the host key algorithms to ask the server for, so a
// server with several host keys presents the pinned one. Nil (library
// default) when a fingerprint is pinned, since its type is not known.
func (p *HostKeyPins) Algorithms() []string {
	if len(p.fingerprints) > 0 {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algs = append(algs, x)
			}
		}
	}
	for _, k := range p.keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Type())
		}
	}
	return algs
}
