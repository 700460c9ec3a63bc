package amqp

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

	"yktgw/banks"
)

// OptionSpecs are the options of the "amqp" channel kind.
var OptionSpecs = []banks.OptionSpec{
	{Name: "url", Help: "broker URL amqp://user:password@host:port/vhost (this or url_file is required)", Sensitive: true},
	{Name: "url_file", Help: "absolute path of a file holding the broker URL (keeps the password out of the config)"},
	{Name: "ca_file", Help: "amqps: absolute path of the PEM CA certificate(s) the broker's certificate must chain to (pinned; default: the system roots)"},
	{Name: "cert_file", Help: "amqps: absolute path of our PEM client certificate (mutual TLS; with key_file)"},
	{Name: "key_file", Help: "amqps: absolute path of the PEM private key of cert_file"},
	{Name: "exchange", Help: "exchange our batch messages are published to (\"\" = the default exchange)"},
	{Name: "exchange_type", Help: "type of the exchange when declare is true: direct, topic, fanout or headers", Default: "direct"},
	{Name: "outbound_queue", Help: "the bank's queue our batch messages must land in (declared and bound when declare is true)", Required: true},
	{Name: "routing_key", Help: "routing key of our batch messages (default: outbound_queue)"},
	{Name: "feedback_queue", Help: "the per-bank queue the bank publishes its return messages to", Required: true},
	{Name: "feedback_pattern", Help: "glob (path.Match) a return message's id must match to be listed; others are held unacknowledged (never dropped) and logged", Default: "*"},
	{Name: "declare", Help: "declare the exchange and both queues (durable) and the binding, idempotently, on every connection", Default: "true"},
	{Name: "probe", Help: "the bank answers in-band probe messages (see the package doc); enables the \"did it arrive\" probe", Default: "false"},
	{Name: "prefetch", Help: "most return messages held unacknowledged at once", Default: "16"},
	{Name: "timeout", Help: "dial timeout, and the longest wait for a publisher confirm or a probe answer", Default: "30s"},
	{Name: "heartbeat", Help: "AMQP heartbeat interval (a dead broker is noticed within about twice this)", Default: "10s"},
	{Name: "max_message_bytes", Help: "largest sealed message published or return message accepted", Default: "134217728"},
}

// config is the parsed, checked form of the options.
type config struct {
	url        string // secret: never logged
	tls        *tls.Config
	addr       string // host:port, for logs
	exchange   string
	exType     string
	queue      string
	routingKey string
	fbQueue    string
	pattern    string
	declare    bool
	probe      bool
	prefetch   int
	timeout    time.Duration
	heartbeat  time.Duration
	maxBytes   int64
}

// parseOptions turns validated options (defaults filled) into a config,
// reporting every problem at once. The URL file is read here, so a bad
// secret shows at start-up rather than at the first send. No error quotes
// the URL.
func parseOptions(o banks.Options) (*config, error) {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("amqp: option %s: %s", name, fmt.Sprintf(format, a...)))
	}
	c := &config{
		exchange:   o["exchange"],
		exType:     o["exchange_type"],
		queue:      o["outbound_queue"],
		routingKey: o["routing_key"],
		fbQueue:    o["feedback_queue"],
		pattern:    o["feedback_pattern"],
	}
	if c.pattern == "" {
		c.pattern = "*"
	}
	if _, err := path.Match(c.pattern, ""); err != nil {
		bad("feedback_pattern", "%q: %v", c.pattern, err)
	}
	for _, req := range []string{"outbound_queue", "feedback_queue"} {
		if strings.TrimSpace(o[req]) == "" {
			bad(req, "required")
		}
	}
	switch c.exType {
	case "":
		c.exType = "direct"
	case "direct", "topic", "fanout", "headers":
	default:
		bad("exchange_type", "%q is not direct, topic, fanout or headers", c.exType)
	}
	if c.routingKey == "" {
		c.routingKey = c.queue
	}
	if c.queue != "" && c.queue == c.fbQueue {
		bad("feedback_queue", "must differ from outbound_queue")
	}
	raw := o["url"]
	switch f := o["url_file"]; {
	case f != "" && raw != "":
		bad("url_file", "give url or url_file, not both")
	case f != "" && !filepath.IsAbs(f):
		bad("url_file", "%q must be an absolute path (config resolves paths against the config file)", f)
	case f != "":
		b, err := os.ReadFile(f)
		if err != nil {
			bad("url_file", "%v", err)
		}
		raw = strings.TrimSpace(string(b))
		if raw == "" && err == nil {
			bad("url_file", "%s holds no URL", f)
		}
	case raw == "":
		bad("url", "required (or url_file)")
	}
	if raw != "" {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			bad("url", "not a URL") // the parse error would quote the secret
		case u.Scheme != "amqp" && u.Scheme != "amqps":
			bad("url", "scheme must be amqp or amqps")
		case u.Host == "":
			bad("url", "no host")
		default:
			c.url = raw
			c.addr = u.Host
			c.tls = parseTLS(u.Scheme == "amqps", u.Hostname(), o, bad)
		}
	}
	boolean := func(name string) bool {
		v, err := strconv.ParseBool(o[name])
		if err != nil {
			bad(name, "%q is not true or false", o[name])
		}
		return v
	}
	c.declare = boolean("declare")
	c.probe = boolean("probe")
	var err error
	c.prefetch, err = strconv.Atoi(o["prefetch"])
	if err != nil || c.prefetch < 1 || c.prefetch > 1000 {
		bad("prefetch", "%q is not a number from 1 to 1000", o["prefetch"])
	}
	dur := func(name string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(o[name])
		if err != nil || d < min {
			bad(name, "%q is not a duration >= %s", o[name], min)
		}
		return d
	}
	c.timeout = dur("timeout", 10*time.Millisecond)
	c.heartbeat = dur("heartbeat", time.Second)
	c.maxBytes, err = strconv.ParseInt(o["max_message_bytes"], 10, 64)
	if err != nil || c.maxBytes < 1 {
		bad("max_message_bytes", "%q is not a positive number", o["max_message_bytes"])
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// parseTLS builds the client TLS config for amqps from ca_file, cert_file
// and key_file; they are refused for plain amqp.
func parseTLS(amqps bool, host string, o banks.Options, bad func(name, format string, a ...any)) *tls.Config {
	files := []string{"ca_file", "cert_file", "key_file"}
	if !amqps {
		for _, f := range files {
			if o[f] != "" {
				bad(f, "only for an amqps:// URL")
			}
		}
		return nil
	}
	for _, f := range files {
		if v := o[f]; v != "" && !filepath.IsAbs(v) {
			bad(f, "%q must be an absolute path (config resolves paths against the config file)", v)
			return nil
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f := o["ca_file"]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			bad("ca_file", "%v", err)
			return nil
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			bad("ca_file", "%s holds no PEM certificate", f)
			return nil
		}
		cfg.RootCAs = pool
	}
	switch cf, kf := o["cert_file"], o["key_file"]; {
	case cf == "" && kf == "":
	case cf == "" || kf == "":
		bad("cert_file", "cert_file and key_file go together")
	default:
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			bad("cert_file", "%v", err)
			return nil
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}
