package https

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks"
	"yktgw/crypto"
)

// Feedback modes (the feedback option).
const (
	FeedbackPoll = "poll"
	FeedbackPush = "push"
)

// OptionSpecs are the options of the "https" channel kind.
var OptionSpecs = []banks.OptionSpec{
	{Name: "base_url", Help: "the bank's API root, https://host[:port][/prefix]; endpoints are <base_url>/batches/..., /feedback/..., /ping", Required: true},
	{Name: "ca_file", Help: "absolute path of the PEM CA certificate(s) the bank's TLS server certificate must chain to (pinned: the system roots are never used)", Required: true},
	{Name: "cert_file", Help: "absolute path of our PEM TLS client certificate (mutual TLS; ECDSA or RSA: Go's crypto/tls has no SM2/TLCP)", Required: true},
	{Name: "key_file", Help: "absolute path of the PEM private key of cert_file (unencrypted; keep it 0600)", Required: true},
	{Name: "server_name", Help: "the name the bank's TLS certificate must carry (default: the host of base_url)"},
	{Name: "sign_key_file", Help: "absolute path of our SM2 private key (encrypted PKCS#8 PEM, as yktgw keys gen writes it) that signs every request", Required: true},
	{Name: "passphrase_file", Help: "absolute path of the file holding sign_key_file's passphrase (default: the YKT_KEY_PASSPHRASE variable)"},
	{Name: "bank_cert_file", Help: "absolute path of the bank's pinned SM2 certificate: every response (and every pushed callback) must be signed by it", Required: true},
	{Name: "signer_id", Help: "SM2 signer id (user id) of both sides' request and response signatures", Default: crypto.DefaultSignerID},
	{Name: "feedback", Help: "how return files come back: poll (list, fetch and ack over the bank's query endpoints) or push (the bank POSTs them to the gateway's /v1/banks/{code}/callback)", Default: FeedbackPoll},
	{Name: "feedback_pattern", Help: "poll: glob (path.Match) a return file's id must match to be listed", Default: "*"},
	{Name: "min_age", Help: "poll: a return file the bank made ready less than this long ago is not listed", Default: "0s"},
	{Name: "max_clock_skew", Help: "a signed response or callback whose timestamp is further than this from our clock is refused", Default: "5m"},
	{Name: "timeout", Help: "dial and TLS handshake timeout, and the longest wait for a response after the request was written", Default: "30s"},
	{Name: "max_conns", Help: "most requests in flight at once to the bank", Default: "4"},
}

// config is the parsed, checked form of the options.
type config struct {
	base       *url.URL
	tls        *tls.Config
	signKey    *sm2.PrivateKey
	bankCert   *smx509.Certificate
	uid        []byte
	feedback   string
	pattern    string
	minAge     time.Duration
	skew       time.Duration
	timeout    time.Duration
	maxConns   int
	serverName string
}

// parseOptions turns validated options (defaults filled) into a config,
// reporting every problem at once. Key and certificate files are read here,
// so a bad file shows at start-up rather than at the first send.
func parseOptions(o banks.Options) (*config, error) {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("https: option %s: %s", name, fmt.Sprintf(format, a...)))
	}
	c := &config{uid: []byte(o["signer_id"]), feedback: o["feedback"]}
	for _, req := range []string{"base_url", "ca_file", "cert_file", "key_file", "sign_key_file", "bank_cert_file"} {
		if strings.TrimSpace(o[req]) == "" {
			bad(req, "required")
		}
	}
	if v := o["base_url"]; v != "" {
		u, err := url.Parse(v)
		switch {
		case err != nil:
			bad("base_url", "%v", err)
		case u.Scheme != "https":
			bad("base_url", "%q: the scheme must be https (plain http is never used for a bank)", v)
		case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			bad("base_url", "%q: want https://host[:port][/prefix] without user, query or fragment", v)
		default:
			u.Path = strings.TrimSuffix(u.Path, "/")
			u.RawPath = ""
			c.base = u
		}
	}
	for _, f := range []string{"ca_file", "cert_file", "key_file", "sign_key_file", "passphrase_file", "bank_cert_file"} {
		if v := o[f]; v != "" && !filepath.IsAbs(v) {
			bad(f, "%q must be an absolute path (config resolves paths against the config file)", v)
		}
	}
	switch c.feedback {
	case FeedbackPoll, FeedbackPush:
	default:
		bad("feedback", "%q: want poll or push", c.feedback)
	}
	dur := func(name string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(o[name])
		if err != nil || d < min {
			bad(name, "%q is not a duration >= %s", o[name], min)
		}
		return d
	}
	c.pattern = o["feedback_pattern"]
	if c.pattern == "" {
		c.pattern = "*"
	}
	if _, err := path.Match(c.pattern, ""); err != nil {
		bad("feedback_pattern", "%q: %v", c.pattern, err)
	}
	c.minAge = dur("min_age", 0)
	c.skew = dur("max_clock_skew", time.Second)
	c.timeout = dur("timeout", 10*time.Millisecond)
	n, err := strconv.Atoi(o["max_conns"])
	if err != nil || n < 1 || n > 64 {
		bad("max_conns", "%q is not a number from 1 to 64", o["max_conns"])
	}
	c.maxConns = n
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Files, each problem reported.
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(o["ca_file"]); err != nil {
		bad("ca_file", "%v", err)
	} else if !pool.AppendCertsFromPEM(pem) {
		bad("ca_file", "%s holds no PEM certificate", o["ca_file"])
	}
	cert, err := tls.LoadX509KeyPair(o["cert_file"], o["key_file"])
	if err != nil {
		bad("cert_file", "with key_file: %v", err)
	}
	c.serverName = o["server_name"]
	if c.serverName == "" {
		c.serverName = c.base.Hostname()
	}
	c.tls = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   c.serverName,
	}
	if c.bankCert, err = crypto.LoadCertificate(o["bank_cert_file"]); err != nil {
		bad("bank_cert_file", "%v", err)
	}
	pass, err := crypto.ReadPassphrase(o["passphrase_file"])
	if err != nil {
		bad("passphrase_file", "%v", err)
	} else {
		c.signKey, err = crypto.LoadPrivateKey(o["sign_key_file"], pass)
		clear(pass)
		if err != nil {
			bad("sign_key_file", "%v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}
