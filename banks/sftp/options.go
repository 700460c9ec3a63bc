package sftp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"yktgw/banks"
)

// OptionSpecs are the options of the "sftp" channel kind.
var OptionSpecs = []banks.OptionSpec{
	{Name: "host", Help: "bank SFTP host name or address", Required: true},
	{Name: "port", Help: "TCP port", Default: "22"},
	{Name: "user", Help: "login name", Required: true},
	{Name: "key_file", Help: "absolute path of our OpenSSH private key", Required: true},
	{Name: "key_passphrase_file", Help: "absolute path of a file holding the private key's passphrase, if it is encrypted"},
	{Name: "host_key", Help: "the bank's pinned host key: a known_hosts line, a public key, or SHA256:<fingerprint>; several separated by newlines (this or host_key_file is required)"},
	{Name: "host_key_file", Help: "absolute path of a file holding the pinned host key(s) in the same forms as host_key (e.g. a known_hosts file)"},
	{Name: "outbound_dir", Help: "remote directory our files are delivered to", Required: true},
	{Name: "inbound_dir", Help: "remote directory the bank puts return files in", Required: true},
	{Name: "archive_dir", Help: "remote directory acknowledged return files are moved to (default <inbound_dir>/archive)"},
	{Name: "feedback_pattern", Help: "glob (path.Match) a return file's name must match", Default: "*"},
	{Name: "min_age", Help: "a return file younger than this (by its remote modification time) is not listed", Default: "30s"},
	{Name: "settle", Help: "pause between the two stats that tell a growing return file; 0 disables", Default: "1s"},
	{Name: "timeout", Help: "dial timeout, and the longest time any operation may go without progress", Default: "30s"},
	{Name: "max_conns", Help: "most operations in flight at once on the channel's one SSH connection", Default: "4"},
}

// config is the parsed, checked form of the options.
type config struct {
	addr       string
	user       string
	signer     ssh.Signer
	pins       *HostKeyPins
	outDir     string
	inDir      string
	archiveDir string
	pattern    string
	minAge     time.Duration
	settle     time.Duration
	timeout    time.Duration
	maxConns   int
}

// parseOptions turns validated options (defaults filled) into a config,
// reporting every problem at once. Key files are read here, so a bad key
// shows at start-up rather than at the first send.
func parseOptions(o banks.Options) (*config, error) {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("sftp: option %s: %s", name, fmt.Sprintf(format, a...)))
	}
	c := &config{
		user:       o["user"],
		outDir:     o["outbound_dir"],
		inDir:      o["inbound_dir"],
		archiveDir: o["archive_dir"],
		pattern:    o["feedback_pattern"],
	}
	for _, req := range []string{"host", "user", "key_file", "outbound_dir", "inbound_dir"} {
		if strings.TrimSpace(o[req]) == "" {
			bad(req, "required")
		}
	}
	// The host key is pinned, always: no pin is a hard error, never "accept any".
	hostKey := o["host_key"]
	switch f := o["host_key_file"]; {
	case f != "" && hostKey != "":
		bad("host_key_file", "give host_key or host_key_file, not both")
	case f != "" && !filepath.IsAbs(f):
		bad("host_key_file", "%q must be an absolute path (config resolves paths against the config file)", f)
	case f != "":
		b, err := os.ReadFile(f)
		if err != nil {
			bad("host_key_file", "%v", err)
		}
		hostKey = string(b)
		if strings.TrimSpace(hostKey) == "" {
			bad("host_key_file", "%s holds no host key", f)
		}
	case strings.TrimSpace(hostKey) == "":
		bad("host_key", "required (or host_key_file): the bank's host key must be pinned")
	}
	port, err := strconv.Atoi(o["port"])
	if err != nil || port < 1 || port > 65535 {
		bad("port", "%q is not a TCP port", o["port"])
	}
	c.addr = net.JoinHostPort(o["host"], strconv.Itoa(port))
	if c.archiveDir == "" && c.inDir != "" {
		c.archiveDir = path.Join(c.inDir, "archive")
	}
	if c.pattern == "" {
		c.pattern = "*"
	}
	if _, err := path.Match(c.pattern, ""); err != nil {
		bad("feedback_pattern", "%q: %v", c.pattern, err)
	}
	dur := func(name string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(o[name])
		if err != nil || d < min {
			bad(name, "%q is not a duration >= %s", o[name], min)
		}
		return d
	}
	c.minAge = dur("min_age", 0)
	c.settle = dur("settle", 0)
	c.timeout = dur("timeout", 10*time.Millisecond)
	c.maxConns, err = strconv.Atoi(o["max_conns"])
	if err != nil || c.maxConns < 1 || c.maxConns > 64 {
		bad("max_conns", "%q is not a number from 1 to 64", o["max_conns"])
	}
	if strings.TrimSpace(hostKey) != "" {
		c.pins, err = ParseHostKey(hostKey)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range []string{"key_file", "key_passphrase_file"} {
		if v := o[f]; v != "" && !filepath.IsAbs(v) {
			bad(f, "%q must be an absolute path (config resolves paths against the config file)", v)
		}
	}
	if len(errs) == 0 && o["key_file"] != "" {
		c.signer, err = loadKey(o["key_file"], o["key_passphrase_file"])
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func loadKey(keyFile, passFile string) (ssh.Signer, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("sftp: key_file: %w", err)
	}
	if passFile == "" {
		s, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("sftp: key_file %s is encrypted: set key_passphrase_file", keyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("sftp: key_file %s: %w", keyFile, err)
		}
		return s, nil
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		return nil, fmt.Errorf("sftp: key_passphrase_file: %w", err)
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(pem, []byte(strings.TrimRight(string(pass), "\r\n")))
	if err != nil {
		// The error never quotes the passphrase.
		return nil, fmt.Errorf("sftp: key_file %s with key_passphrase_file: %w", keyFile, err)
	}
	return s, nil
}
