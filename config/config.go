// Package config owns yktgw's typed configuration: its defaults, loading a YAML file
// through viper with YKT_<KEY_PATH> environment overrides, resolving every path key
// relative to the config file, and a pure Validate step that reports every problem
// at once. It also loads the business-day calendar (calendar.go).
//
// It must not open spools, dial banks, parse key material or expand environment
// variables inside the file: secrets come from *_file keys or one named variable
// (YKT_KEY_PASSPHRASE), and the only secret it reads is that passphrase, when
// Keys.Passphrase is called. File existence is checked only by CheckFiles.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// EnvPrefix is the prefix of environment overrides: YKT_ + key path upper-cased
// with "_" for "." (YKT_LISTEN, YKT_SPOOL_PATH, YKT_KEYS_DATA_KEY_FILE, ...).
const EnvPrefix = "YKT"

// PassphraseEnv names the one environment variable that may carry the passphrase
// of our encrypted private keys instead of keys.passphrase_file.
const PassphraseEnv = "YKT_KEY_PASSPHRASE"

// Config is the whole configuration of one yktgw instance.
type Config struct {
	Listen     string     `mapstructure:"listen"`
	TLS        TLS        `mapstructure:"tls"`
	Spool      Spool      `mapstructure:"spool"`
	Keys       Keys       `mapstructure:"keys"`
	Intake     Intake     `mapstructure:"intake"`
	Subsidies  []Subsidy  `mapstructure:"subsidies"`
	Banks      []Bank     `mapstructure:"banks"`
	Dispatcher Dispatcher `mapstructure:"dispatcher"`
	Feedback   Feedback   `mapstructure:"feedback"`
	Calendar   []string   `mapstructure:"calendar"`
	Log        Log        `mapstructure:"log"`
	Banksim    Banksim    `mapstructure:"banksim"`
	// Webhooks push batch results to the platform (gateway/webhook.go).
	Webhooks      []Webhook     `mapstructure:"webhooks"`
	WebhookOutbox WebhookOutbox `mapstructure:"webhook_outbox"`
	Reports       Reports       `mapstructure:"reports"`
	Replay        Replay        `mapstructure:"replay"`

	// File is the absolute path of the file the config was loaded from ("" for Default()).
	File string `mapstructure:"-"`
}

// TLS configures the HTTP API's TLS; empty means plain HTTP. ClientCAFile turns on mTLS.
type TLS struct {
	CertFile     string `mapstructure:"cert_file"`
	KeyFile      string `mapstructure:"key_file"`
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Spool configures the durable store.
type Spool struct {
	Driver string `mapstructure:"driver"` // sqlite
	Path   string `mapstructure:"path"`   // database file
	Dir    string `mapstructure:"dir"`    // sealed files
}

// Keys names our key material. Only paths live here, never secrets.
type Keys struct {
	DataKeyFile    string `mapstructure:"data_key_file"`
	PassphraseFile string `mapstructure:"passphrase_file"`
	SigningKey     string `mapstructure:"signing_key"`
	Certificate    string `mapstructure:"certificate"`
}

// Passphrase returns the passphrase of our encrypted private keys: the content of
// PassphraseFile (one trailing newline trimmed) or, when that is empty or absent,
// the variable YKT_KEY_PASSPHRASE.
func (k Keys) Passphrase() ([]byte, error) {
	if k.PassphraseFile != "" {
		b, err := os.ReadFile(k.PassphraseFile)
		if err == nil {
			b = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config: keys.passphrase_file: %w", err)
		}
	}
	if v, ok := os.LookupEnv(PassphraseEnv); ok && v != "" {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("config: no passphrase: keys.passphrase_file %q absent and %s not set", k.PassphraseFile, PassphraseEnv)
}

// Intake bounds what one submission may cost.
type Intake struct {
	MaxErrors    int   `mapstructure:"max_errors"`     // validation issues listed before only counting
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"` // request body limit
	MaxRecords   int   `mapstructure:"max_records"`    // records per batch
	ChunkRecords int   `mapstructure:"chunk_records"`  // records per spool transaction while streaming
}

// Subsidy is one subsidy code with its per-record cap in fen.
type Subsidy struct {
	Code       string `mapstructure:"code"`
	Name       string `mapstructure:"name"`
	CapFen     int64  `mapstructure:"cap_fen"`
	Department string `mapstructure:"department"` // optional; groups codes for cross-department checks
}

// Bank is one paying bank: its profile, certificate and channel overrides.
type Bank struct {
	Code           string            `mapstructure:"code"`
	Profile        string            `mapstructure:"profile"`
	Certificate    string            `mapstructure:"certificate"`
	ChannelOptions map[string]string `mapstructure:"channel_options"`
}

// Dispatcher tunes delivery of sealed files.
type Dispatcher struct {
	PollInterval       time.Duration `mapstructure:"poll_interval"`
	MaxAttempts        int           `mapstructure:"max_attempts"`
	BackoffInitial     time.Duration `mapstructure:"backoff_initial"`
	BackoffMax         time.Duration `mapstructure:"backoff_max"`
	ConcurrencyPerBank int           `mapstructure:"concurrency_per_bank"`
	// SealWorkers render, sign and seal that many delivery files at once
	// (each holds one plain file in memory: max_records_per_file records).
	SealWorkers int `mapstructure:"seal_workers"`
}

// Feedback tunes polling of bank return files.
type Feedback struct {
	PollInterval time.Duration `mapstructure:"poll_interval"`
	MinFileAge   time.Duration `mapstructure:"min_file_age"`
}

// Log configures log/slog.
type Log struct {
	Level  string `mapstructure:"level"`  // debug|info|warn|error
	Format string `mapstructure:"format"` // text|json
}

// Banksim configures `yktgw banksim`, the bank simulator.
type Banksim struct {
	Listen         string        `mapstructure:"listen"`
	Root           string        `mapstructure:"root"`
	HostKey        string        `mapstructure:"host_key"`
	AuthorizedKeys string        `mapstructure:"authorized_keys"`
	Bank           string        `mapstructure:"bank"`
	FailRate       float64       `mapstructure:"fail_rate"` // share of records the simulator fails; not money
	Seed           int64         `mapstructure:"seed"`
	Delay          time.Duration `mapstructure:"delay"`
	// User is the SSH login name the simulator accepts (default: the bank's
	// channel option "user").
	User string `mapstructure:"user"`
	// SigningKey and Certificate are the simulated bank's SM2 key (encrypted
	// PKCS#8, opened with PassphraseFile or YKT_KEY_PASSPHRASE) and
	// certificate; GatewayCertificate is ours as the bank pins it.
	SigningKey         string `mapstructure:"signing_key"`
	Certificate        string `mapstructure:"certificate"`
	GatewayCertificate string `mapstructure:"gateway_certificate"`
	PassphraseFile     string `mapstructure:"passphrase_file"`
}

// Replay configures ops replays of DEAD deliveries (gateway/replay.go).
type Replay struct {
	// ApprovalThresholdFen: a replay of a delivery above this many fen needs
	// a second person with the approver role (maker-checker). 0: always.
	ApprovalThresholdFen int64 `mapstructure:"approval_threshold_fen"`
}

// Reports configures the check lists before payment (gateway/report).
type Reports struct {
	Sanwu Sanwu `mapstructure:"sanwu"`
	// FullView lists the token roles that see personal data in clear in
	// reports; every other role gets masks (2101**********123X).
	FullView []string `mapstructure:"full_view"`
}

// Sanwu is the rule set of the "三无" list. DOMAIN.md: there is no public
// definition, so each rule is a switch. A record is listed when any enabled
// rule fires; the list names the rules that fired.
type Sanwu struct {
	MissingName     bool `mapstructure:"missing_name"`      // no usable name (empty after trimming)
	MissingIDNumber bool `mapstructure:"missing_id_number"` // no usable ID number (empty, or fails GB 11643)
	MissingAccount  bool `mapstructure:"missing_account"`   // no usable account (empty, or not digits)
	// BadAccountReasons: the account was reported by a bank with one of these
	// normalized reasons before (table bad_accounts). Empty: rule off.
	BadAccountReasons []string `mapstructure:"bad_account_reasons"`
}

// Webhook is one platform endpoint receiving signed result events for a
// tenant and its sub-divisions. The HMAC-SM3 secret is read from SecretFile.
type Webhook struct {
	Tenant     string        `mapstructure:"tenant"` // division code ("210000" covers 2101xx), or "*"
	URL        string        `mapstructure:"url"`
	SecretFile string        `mapstructure:"secret_file"`
	Timeout    time.Duration `mapstructure:"timeout"` // per request; 0: 10s
}

// WebhookOutbox tunes delivery from the durable outbox.
type WebhookOutbox struct {
	PollInterval   time.Duration `mapstructure:"poll_interval"`
	BackoffInitial time.Duration `mapstructure:"backoff_initial"`
	BackoffMax     time.Duration `mapstructure:"backoff_max"`
	AlarmAfter     int           `mapstructure:"alarm_after"` // failed attempts before an item is FAILING with an alarm
}

// Default returns the configuration used for every key a file does not set.
// Relative paths in it are relative to the config file's directory.
func Default() *Config {
	return &Config{
		Listen: "127.0.0.1:8470",
		Spool:  Spool{Driver: "sqlite", Path: "var/spool.db", Dir: "var/spool"},
		Keys: Keys{
			DataKeyFile:    "keys/data.key",
			PassphraseFile: "keys/passphrase",
			SigningKey:     "keys/gateway.key.pem",
			Certificate:    "keys/gateway.cert.pem",
		},
		Intake: Intake{MaxErrors: 1000, MaxBodyBytes: 1 << 30, MaxRecords: 2_000_000, ChunkRecords: 10000},
		Dispatcher: Dispatcher{
			PollInterval: time.Second, MaxAttempts: 8,
			BackoffInitial: 2 * time.Second, BackoffMax: 5 * time.Minute, ConcurrencyPerBank: 2,
			SealWorkers: 2,
		},
		Feedback:      Feedback{PollInterval: 2 * time.Second, MinFileAge: 2 * time.Second},
		Calendar:      []string{"calendar/cn-2026.yaml"},
		Log:           Log{Level: "info", Format: "json"},
		Replay:        Replay{ApprovalThresholdFen: 10_000_000},
		WebhookOutbox: WebhookOutbox{PollInterval: time.Second, BackoffInitial: 2 * time.Second, BackoffMax: 10 * time.Minute, AlarmAfter: 5},
		Banksim: Banksim{
			Listen: "127.0.0.1:2222", Root: "var/banksim",
			HostKey: "keys/banksim_host_ed25519", AuthorizedKeys: "keys/gateway_ssh.pub",
			Seed: 1, Delay: time.Second,
			SigningKey: "keys/bank-demo.key.pem", Certificate: "keys/bank-demo.cert.pem",
			GatewayCertificate: "keys/gateway.cert.pem", PassphraseFile: "keys/passphrase",
		},
		Reports: Reports{
			Sanwu: Sanwu{MissingName: true, MissingIDNumber: true, MissingAccount: true,
				BadAccountReasons: []string{"ACCOUNT_CLOSED", "ACCOUNT_DORMANT", "ACCOUNT_FROZEN"}},
			FullView: []string{"admin", "operator"},
		},
	}
}

// Load reads the YAML file at path over Default(), applies YKT_* environment
// overrides, and resolves every path key relative to the file's directory. Unknown
// keys are an error (a typo must not silently fall back to a default). Load does not
// call Validate.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	v := viper.New()
	v.SetConfigFile(abs)
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// AutomaticEnv only sees keys viper already knows: make every key of the struct
	// known (default + env binding), so YKT_X works even when the file omits x.
	for _, k := range leafKeys(reflect.TypeFor[Config](), "") {
		if err := v.BindEnv(k); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", k, err)
		}
	}
	setDefaults(v, reflect.ValueOf(Default()).Elem(), "")
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	c := &Config{}
	if err := v.UnmarshalExact(c); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.File = abs
	c.resolvePaths(filepath.Dir(abs))
	return c, nil
}

// leafKeys lists the dotted keys of every scalar (or []string) field reachable
// through nested structs. Slices of structs and maps are not addressable by an
// environment variable and are left out.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]():
			keys = append(keys, leafKeys(f.Type, key+".")...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String,
			f.Type.Kind() == reflect.Map:
			// not overridable from the environment
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

func setDefaults(v *viper.Viper, rv reflect.Value, prefix string) {
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		fv := rv.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			setDefaults(v, fv, key+".")
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String,
			f.Type.Kind() == reflect.Map:
		default:
			v.SetDefault(key, fv.Interface())
		}
	}
}

// resolvePaths makes every path key absolute against dir. Empty stays empty.
func (c *Config) resolvePaths(dir string) {
	for _, p := range c.pathKeys() {
		if *p.ptr != "" && !filepath.IsAbs(*p.ptr) {
			*p.ptr = filepath.Join(dir, *p.ptr)
		}
	}
}

type pathKey struct {
	key string
	ptr *string
}

// pathKeys lists every key holding a file or directory path, with its name.
func (c *Config) pathKeys() []pathKey {
	ps := []pathKey{
		{"tls.cert_file", &c.TLS.CertFile},
		{"tls.key_file", &c.TLS.KeyFile},
		{"tls.client_ca_file", &c.TLS.ClientCAFile},
		{"spool.path", &c.Spool.Path},
		{"spool.dir", &c.Spool.Dir},
		{"keys.data_key_file", &c.Keys.DataKeyFile},
		{"keys.passphrase_file", &c.Keys.PassphraseFile},
		{"keys.signing_key", &c.Keys.SigningKey},
		{"keys.certificate", &c.Keys.Certificate},
		{"banksim.root", &c.Banksim.Root},
		{"banksim.host_key", &c.Banksim.HostKey},
		{"banksim.authorized_keys", &c.Banksim.AuthorizedKeys},
		{"banksim.signing_key", &c.Banksim.SigningKey},
		{"banksim.certificate", &c.Banksim.Certificate},
		{"banksim.gateway_certificate", &c.Banksim.GatewayCertificate},
		{"banksim.passphrase_file", &c.Banksim.PassphraseFile},
	}
	for i := range c.Banks {
		b := &c.Banks[i]
		ps = append(ps,
			pathKey{"banks[" + strconv.Itoa(i) + "].profile", &b.Profile},
			pathKey{"banks[" + strconv.Itoa(i) + "].certificate", &b.Certificate})
	}
	for i := range c.Calendar {
		ps = append(ps, pathKey{"calendar[" + strconv.Itoa(i) + "]", &c.Calendar[i]})
	}
	for i := range c.Webhooks {
		ps = append(ps, pathKey{"webhooks[" + strconv.Itoa(i) + "].secret_file", &c.Webhooks[i].SecretFile})
	}
	return ps
}

// Subsidy returns the subsidy with the given code.
func (c *Config) Subsidy(code string) (Subsidy, bool) {
	for _, s := range c.Subsidies {
		if s.Code == code {
			return s, true
		}
	}
	return Subsidy{}, false
}

// Bank returns the bank with the given code.
func (c *Config) Bank(code string) (Bank, bool) {
	for _, b := range c.Banks {
		if b.Code == code {
			return b, true
		}
	}
	return Bank{}, false
}

// CapsFen returns the per-record cap of every subsidy, by code.
func (c *Config) CapsFen() map[string]int64 {
	m := make(map[string]int64, len(c.Subsidies))
	for _, s := range c.Subsidies {
		m[s.Code] = s.CapFen
	}
	return m
}

// ValidationError lists every problem found in a config, one line each, each
// naming its key.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "config: " + e.Problems[0]
	}
	return fmt.Sprintf("config: %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Validate checks every key without touching the file system and returns a
// *ValidationError listing all problems, or nil.
func (c *Config) Validate() error {
	var p problems
	p.hostPort("listen", c.Listen, true)
	if c.Replay.ApprovalThresholdFen < 0 {
		p.add("replay.approval_threshold_fen: must be 0 or more (fen)")
	}
	if c.TLS.Enabled() {
		if c.TLS.CertFile == "" {
			p.add("tls.cert_file: required when tls.key_file is set")
		}
		if c.TLS.KeyFile == "" {
			p.add("tls.key_file: required when tls.cert_file is set")
		}
	} else if c.TLS.ClientCAFile != "" {
		p.add("tls.client_ca_file: mTLS needs tls.cert_file and tls.key_file")
	}

	if c.Spool.Driver != "sqlite" {
		p.add(fmt.Sprintf("spool.driver: %q not supported (sqlite)", c.Spool.Driver))
	}
	p.required("spool.path", c.Spool.Path)
	p.required("spool.dir", c.Spool.Dir)

	p.required("keys.data_key_file", c.Keys.DataKeyFile)
	p.required("keys.signing_key", c.Keys.SigningKey)
	p.required("keys.certificate", c.Keys.Certificate)

	p.positive("intake.max_errors", int64(c.Intake.MaxErrors))
	p.positive("intake.max_body_bytes", c.Intake.MaxBodyBytes)
	p.positive("intake.max_records", int64(c.Intake.MaxRecords))
	p.positive("intake.chunk_records", int64(c.Intake.ChunkRecords))
	if c.Intake.ChunkRecords > c.Intake.MaxRecords && c.Intake.MaxRecords > 0 {
		p.add(fmt.Sprintf("intake.chunk_records: %d exceeds intake.max_records %d", c.Intake.ChunkRecords, c.Intake.MaxRecords))
	}

	if len(c.Subsidies) == 0 {
		p.add("subsidies: at least one subsidy is required")
	}
	seen := map[string]int{}
	for i, s := range c.Subsidies {
		k := "subsidies[" + strconv.Itoa(i) + "]"
		if !validCode(s.Code) {
			p.add(fmt.Sprintf("%s.code: %q must be 1-32 of A-Z 0-9 _", k, s.Code))
		} else if j, dup := seen[s.Code]; dup {
			p.add(fmt.Sprintf("%s.code: %q duplicates subsidies[%d]", k, s.Code, j))
		} else {
			seen[s.Code] = i
		}
		p.required(k+".name", s.Name)
		if s.CapFen <= 0 {
			p.add(fmt.Sprintf("%s.cap_fen: must be > 0 (got %d)", k, s.CapFen))
		}
	}

	if len(c.Banks) == 0 {
		p.add("banks: at least one bank is required")
	}
	seenBank := map[string]int{}
	for i, b := range c.Banks {
		k := "banks[" + strconv.Itoa(i) + "]"
		if !validCode(b.Code) {
			p.add(fmt.Sprintf("%s.code: %q must be 1-32 of A-Z 0-9 _", k, b.Code))
		} else if j, dup := seenBank[b.Code]; dup {
			p.add(fmt.Sprintf("%s.code: %q duplicates banks[%d]", k, b.Code, j))
		} else {
			seenBank[b.Code] = i
		}
		p.required(k+".profile", b.Profile)
		p.required(k+".certificate", b.Certificate)
		for name := range b.ChannelOptions {
			if name == "" {
				p.add(k + ".channel_options: empty option name")
			}
		}
	}

	p.positiveDur("dispatcher.poll_interval", c.Dispatcher.PollInterval)
	p.positive("dispatcher.max_attempts", int64(c.Dispatcher.MaxAttempts))
	p.positiveDur("dispatcher.backoff_initial", c.Dispatcher.BackoffInitial)
	p.positiveDur("dispatcher.backoff_max", c.Dispatcher.BackoffMax)
	if c.Dispatcher.BackoffInitial > c.Dispatcher.BackoffMax && c.Dispatcher.BackoffMax > 0 {
		p.add(fmt.Sprintf("dispatcher.backoff_initial: %s exceeds dispatcher.backoff_max %s", c.Dispatcher.BackoffInitial, c.Dispatcher.BackoffMax))
	}
	p.positive("dispatcher.concurrency_per_bank", int64(c.Dispatcher.ConcurrencyPerBank))
	p.positive("dispatcher.seal_workers", int64(c.Dispatcher.SealWorkers))

	p.positiveDur("feedback.poll_interval", c.Feedback.PollInterval)
	if c.Feedback.MinFileAge < 0 {
		p.add(fmt.Sprintf("feedback.min_file_age: must be >= 0 (got %s)", c.Feedback.MinFileAge))
	}

	if len(c.Calendar) == 0 {
		p.add("calendar: at least one calendar file is required (business days)")
	}
	for i, f := range c.Calendar {
		p.required("calendar["+strconv.Itoa(i)+"]", f)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add(fmt.Sprintf("log.level: %q must be debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add(fmt.Sprintf("log.format: %q must be text or json", c.Log.Format))
	}

	seenURL := map[string]int{}
	for i, w := range c.Webhooks {
		k := "webhooks[" + strconv.Itoa(i) + "]"
		if w.Tenant != "*" && !validDivision(w.Tenant) {
			p.add(fmt.Sprintf("%s.tenant: %q must be a division code of 6, 9 or 12 digits or \"*\"", k, w.Tenant))
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.add(fmt.Sprintf("%s.url: %q must be an http(s) URL", k, w.URL))
		} else if u.User != nil {
			p.add(fmt.Sprintf("%s.url: must not carry credentials (they would be logged); the secret comes from secret_file", k))
		} else if j, dup := seenURL[w.URL]; dup {
			p.add(fmt.Sprintf("%s.url: %q duplicates webhooks[%d] (one endpoint, one secret)", k, w.URL, j))
		} else {
			seenURL[w.URL] = i
		}
		p.required(k+".secret_file", w.SecretFile)
		if w.Timeout < 0 {
			p.add(fmt.Sprintf("%s.timeout: must be >= 0 (got %s)", k, w.Timeout))
		}
	}
	p.positiveDur("webhook_outbox.poll_interval", c.WebhookOutbox.PollInterval)
	p.positiveDur("webhook_outbox.backoff_initial", c.WebhookOutbox.BackoffInitial)
	p.positiveDur("webhook_outbox.backoff_max", c.WebhookOutbox.BackoffMax)
	if c.WebhookOutbox.BackoffInitial > c.WebhookOutbox.BackoffMax && c.WebhookOutbox.BackoffMax > 0 {
		p.add(fmt.Sprintf("webhook_outbox.backoff_initial: %s exceeds webhook_outbox.backoff_max %s", c.WebhookOutbox.BackoffInitial, c.WebhookOutbox.BackoffMax))
	}
	p.positive("webhook_outbox.alarm_after", int64(c.WebhookOutbox.AlarmAfter))

	// The simulator section is optional; when set it must be usable.
	if c.Banksim.Bank != "" {
		p.hostPort("banksim.listen", c.Banksim.Listen, true)
		p.required("banksim.root", c.Banksim.Root)
		p.required("banksim.host_key", c.Banksim.HostKey)
		p.required("banksim.authorized_keys", c.Banksim.AuthorizedKeys)
		p.required("banksim.signing_key", c.Banksim.SigningKey)
		p.required("banksim.certificate", c.Banksim.Certificate)
		p.required("banksim.gateway_certificate", c.Banksim.GatewayCertificate)
		if _, ok := seenBank[c.Banksim.Bank]; !ok {
			p.add(fmt.Sprintf("banksim.bank: %q is not a configured bank", c.Banksim.Bank))
		}
		if !(c.Banksim.FailRate >= 0 && c.Banksim.FailRate <= 1) {
			p.add(fmt.Sprintf("banksim.fail_rate: %v must be within 0..1", c.Banksim.FailRate))
		}
		if c.Banksim.Delay < 0 {
			p.add(fmt.Sprintf("banksim.delay: must be >= 0 (got %s)", c.Banksim.Delay))
		}
	}
	for i, r := range c.Reports.Sanwu.BadAccountReasons {
		if !validCode(r) {
			p.add(fmt.Sprintf("reports.sanwu.bad_account_reasons[%d]: %q must be a reason code such as ACCOUNT_CLOSED", i, r))
		}
	}
	for i, r := range c.Reports.FullView {
		switch r {
		case "submitter", "viewer", "operator", "approver", "admin":
		default:
			p.add(fmt.Sprintf("reports.full_view[%d]: %q is not a role (submitter, viewer, operator, approver, admin)", i, r))
		}
	}
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// CheckFiles reports, one line per problem naming its key, every configured file
// that does not exist or cannot be read. Empty optional keys are skipped. The
// spool path and directories are created by the daemon and are not checked.
func (c *Config) CheckFiles() []string {
	var p problems
	check := func(key, path string) {
		if path == "" {
			return
		}
		st, err := os.Stat(path)
		switch {
		case err != nil:
			p.add(fmt.Sprintf("%s: %s: %v", key, path, unwrapPathErr(err)))
		case st.IsDir():
			p.add(fmt.Sprintf("%s: %s: is a directory", key, path))
		}
	}
	check("tls.cert_file", c.TLS.CertFile)
	check("tls.key_file", c.TLS.KeyFile)
	check("tls.client_ca_file", c.TLS.ClientCAFile)
	check("keys.data_key_file", c.Keys.DataKeyFile)
	if os.Getenv(PassphraseEnv) == "" {
		if c.Keys.PassphraseFile == "" {
			p.add("keys.passphrase_file: not set and " + PassphraseEnv + " is empty")
		} else {
			check("keys.passphrase_file", c.Keys.PassphraseFile)
		}
	}
	check("keys.signing_key", c.Keys.SigningKey)
	check("keys.certificate", c.Keys.Certificate)
	for i, b := range c.Banks {
		k := "banks[" + strconv.Itoa(i) + "]"
		check(k+".profile", b.Profile)
		check(k+".certificate", b.Certificate)
	}
	for i, f := range c.Calendar {
		check("calendar["+strconv.Itoa(i)+"]", f)
	}
	for i, w := range c.Webhooks {
		check("webhooks["+strconv.Itoa(i)+"].secret_file", w.SecretFile)
	}
	if c.Banksim.Bank != "" {
		check("banksim.host_key", c.Banksim.HostKey)
		check("banksim.authorized_keys", c.Banksim.AuthorizedKeys)
		check("banksim.certificate", c.Banksim.Certificate)
		check("banksim.gateway_certificate", c.Banksim.GatewayCertificate)
	}
	return p
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type problems []string

func (p *problems) add(s string) { *p = append(*p, s) }

func (p *problems) required(key, v string) {
	if strings.TrimSpace(v) == "" {
		p.add(key + ": required")
	}
}

func (p *problems) positive(key string, n int64) {
	if n <= 0 {
		p.add(fmt.Sprintf("%s: must be > 0 (got %d)", key, n))
	}
}

func (p *problems) positiveDur(key string, d time.Duration) {
	if d <= 0 {
		p.add(fmt.Sprintf("%s: must be > 0 (got %s)", key, d))
	}
}

func (p *problems) hostPort(key, v string, required bool) {
	if v == "" {
		if required {
			p.add(key + ": required (host:port)")
		}
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		p.add(fmt.Sprintf("%s: %q is not host:port", key, v))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add(fmt.Sprintf("%s: %q has a bad port", key, v))
	}
}

// validDivision accepts an administrative division code: 6, 9 or 12 digits.
func validDivision(s string) bool {
	if len(s) != 6 && len(s) != 9 && len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validCode accepts 1-32 characters of A-Z, 0-9 and _.
func validCode(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
