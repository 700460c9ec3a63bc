package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadExample(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example.yaml does not validate: %v", err)
	}
	dir, _ := filepath.Abs(".")
	checks := []struct{ name, got, want string }{
		{"listen", c.Listen, "127.0.0.1:8470"},
		{"spool.path", c.Spool.Path, filepath.Join(dir, "var/spool.db")},
		{"keys.data_key_file", c.Keys.DataKeyFile, filepath.Join(dir, "keys/data.key")},
		{"banks[0].profile", c.Banks[0].Profile, filepath.Join(dir, "../testdata/banks/demo/profile.yaml")},
		{"banks[0].channel_options.port", c.Banks[0].ChannelOptions["port"], "2222"},
		{"calendar[0]", c.Calendar[0], filepath.Join(dir, "calendar/cn-2026.yaml")},
		{"banksim.bank", c.Banksim.Bank, "DEMO"},
		{"tls.cert_file", c.TLS.CertFile, ""},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.name, ck.got, ck.want)
		}
	}
	if c.Dispatcher.BackoffMax != 5*time.Minute || c.Feedback.MinFileAge != 2*time.Second {
		t.Errorf("durations: %+v %+v", c.Dispatcher, c.Feedback)
	}
	if s, ok := c.Subsidy("GDZL"); !ok || s.CapFen != 5000000 || s.Name != "耕地地力保护补贴" {
		t.Errorf("subsidy GDZL = %+v, %v", s, ok)
	}
	if caps := c.CapsFen(); caps["GDZL"] != 5000000 {
		t.Errorf("CapsFen = %v", caps)
	}
	if _, err := LoadCalendar(c.Calendar...); err != nil {
		t.Errorf("example calendar: %v", err)
	}
}

const minimal = `
subsidies: [{code: GDZL, name: 耕地, cap_fen: 100, department: agri}]
banks: [{code: DEMO, profile: p.yaml, certificate: /abs/bank.pem}]
`

func TestLoadDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "c.yaml")
	writeFile(t, path, minimal)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Listen != d.Listen || c.Intake != d.Intake || c.Dispatcher != d.Dispatcher || c.Log != d.Log {
		t.Errorf("defaults not applied: %+v", c)
	}
	base := filepath.Join(dir, "sub")
	if c.Spool.Path != filepath.Join(base, "var/spool.db") {
		t.Errorf("spool.path = %q", c.Spool.Path)
	}
	if c.Banks[0].Profile != filepath.Join(base, "p.yaml") || c.Banks[0].Certificate != "/abs/bank.pem" {
		t.Errorf("bank paths = %+v", c.Banks[0])
	}
	if c.Calendar[0] != filepath.Join(base, "calendar/cn-2026.yaml") {
		t.Errorf("calendar = %v", c.Calendar)
	}
	if c.File != path {
		t.Errorf("File = %q", c.File)
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, minimal+"listen: 0.0.0.0:1\n")
	t.Setenv("YKT_LISTEN", "127.0.0.1:9999")          // key present in the file
	t.Setenv("YKT_SPOOL_PATH", "/data/s.db")          // key absent from the file
	t.Setenv("YKT_KEYS_DATA_KEY_FILE", "k/d.key")     // relative: resolved against the file's dir
	t.Setenv("YKT_DISPATCHER_POLL_INTERVAL", "250ms") // duration
	t.Setenv("YKT_INTAKE_MAX_ERRORS", "7")            // int
	t.Setenv("YKT_CALENDAR", "a.yaml,b.yaml")         // []string
	t.Setenv("YKT_LOG_FORMAT", "text")                // nested string
	t.Setenv("YKT_BANKSIM_FAIL_RATE", "0.5")          // float
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" {
		t.Errorf("listen = %q", c.Listen)
	}
	if c.Spool.Path != "/data/s.db" {
		t.Errorf("spool.path = %q", c.Spool.Path)
	}
	if c.Keys.DataKeyFile != filepath.Join(dir, "k/d.key") {
		t.Errorf("keys.data_key_file = %q", c.Keys.DataKeyFile)
	}
	if c.Dispatcher.PollInterval != 250*time.Millisecond {
		t.Errorf("dispatcher.poll_interval = %v", c.Dispatcher.PollInterval)
	}
	if c.Intake.MaxErrors != 7 {
		t.Errorf("intake.max_errors = %d", c.Intake.MaxErrors)
	}
	if len(c.Calendar) != 2 || c.Calendar[1] != filepath.Join(dir, "b.yaml") {
		t.Errorf("calendar = %v", c.Calendar)
	}
	if c.Log.Format != "text" || c.Banksim.FailRate != 0.5 {
		t.Errorf("log/banksim = %+v %+v", c.Log, c.Banksim)
	}
}

func TestLoadNoEnvExpansion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, minimal+"listen: ${SECRET}\n")
	t.Setenv("SECRET", "127.0.0.1:1")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "${SECRET}" {
		t.Errorf("listen = %q: variables must not be expanded inside the file", c.Listen)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"unknown key", minimal + "listne: x\n", "listne"},
		{"unknown nested key", minimal + "spool: {paht: x}\n", "paht"},
		{"bad duration", minimal + "dispatcher: {poll_interval: soon}\n", "poll_interval"},
		{"bad yaml", "listen: [\n", "read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			writeFile(t, path, tc.body)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func valid() *Config {
	c := Default()
	c.Subsidies = []Subsidy{{Code: "GDZL", Name: "耕地", CapFen: 100, Department: "agri"}}
	c.Banks = []Bank{{Code: "DEMO", Profile: "p.yaml", Certificate: "c.pem"}}
	c.Banksim.Bank = "DEMO"
	return c
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"listen", func(c *Config) { c.Listen = "8470" }, "listen:"},
		{"listen port", func(c *Config) { c.Listen = "x:99999" }, "listen:"},
		{"tls half", func(c *Config) { c.TLS.CertFile = "c" }, "tls.key_file:"},
		{"mtls without tls", func(c *Config) { c.TLS.ClientCAFile = "ca" }, "tls.client_ca_file:"},
		{"driver", func(c *Config) { c.Spool.Driver = "mysql" }, "spool.driver:"},
		{"spool path", func(c *Config) { c.Spool.Path = "" }, "spool.path: required"},
		{"data key", func(c *Config) { c.Keys.DataKeyFile = "" }, "keys.data_key_file: required"},
		{"max errors", func(c *Config) { c.Intake.MaxErrors = 0 }, "intake.max_errors:"},
		{"chunk", func(c *Config) { c.Intake.ChunkRecords = c.Intake.MaxRecords + 1 }, "intake.chunk_records:"},
		{"no subsidies", func(c *Config) { c.Subsidies = nil }, "subsidies: at least one"},
		{"subsidy code", func(c *Config) { c.Subsidies[0].Code = "gd zl" }, "subsidies[0].code:"},
		{"subsidy dup", func(c *Config) { c.Subsidies = append(c.Subsidies, c.Subsidies[0]) }, "subsidies[1].code: \"GDZL\" duplicates subsidies[0]"},
		{"cap", func(c *Config) { c.Subsidies[0].CapFen = 0 }, "subsidies[0].cap_fen:"},
		{"no banks", func(c *Config) { c.Banks = nil }, "banks: at least one"},
		{"bank dup", func(c *Config) { c.Banks = append(c.Banks, c.Banks[0]) }, "banks[1].code:"},
		{"bank profile", func(c *Config) { c.Banks[0].Profile = "" }, "banks[0].profile: required"},
		{"backoff order", func(c *Config) { c.Dispatcher.BackoffInitial = time.Hour }, "dispatcher.backoff_initial:"},
		{"attempts", func(c *Config) { c.Dispatcher.MaxAttempts = 0 }, "dispatcher.max_attempts:"},
		{"feedback age", func(c *Config) { c.Feedback.MinFileAge = -1 }, "feedback.min_file_age:"},
		{"no calendar", func(c *Config) { c.Calendar = nil }, "calendar:"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level:"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format:"},
		{"banksim bank", func(c *Config) { c.Banksim.Bank = "NOPE" }, "banksim.bank:"},
		{"banksim rate", func(c *Config) { c.Banksim.FailRate = 1.5 }, "banksim.fail_rate:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			found := false
			for _, p := range ve.Problems {
				if strings.Contains(p, tc.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("problems %q lack %q", ve.Problems, tc.want)
			}
		})
	}
}

func TestValidateReportsAllAtOnce(t *testing.T) {
	c := valid()
	c.Listen = ""
	c.Spool.Driver = "x"
	c.Subsidies[0].CapFen = -1
	c.Log.Level = "x"
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	if len(ve.Problems) != 4 {
		t.Fatalf("got %d problems, want 4: %q", len(ve.Problems), ve.Problems)
	}
	if !strings.Contains(ve.Error(), "4 problems") {
		t.Errorf("Error() = %q", ve.Error())
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, minimal)
	t.Setenv(PassphraseEnv, "")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Banks[0].Certificate = filepath.Join(dir, "bank.pem")
	probs := c.CheckFiles()
	want := []string{"keys.data_key_file", "keys.passphrase_file", "keys.signing_key", "keys.certificate",
		"banks[0].profile", "banks[0].certificate", "calendar[0]"}
	if len(probs) != len(want) {
		t.Fatalf("problems = %q", probs)
	}
	for i, w := range want {
		if !strings.HasPrefix(probs[i], w+": ") {
			t.Errorf("problem %d = %q, want key %s", i, probs[i], w)
		}
	}
	for _, f := range []string{"keys/data.key", "keys/passphrase", "keys/gateway.key.pem", "keys/gateway.cert.pem",
		"p.yaml", "bank.pem", "calendar/cn-2026.yaml"} {
		writeFile(t, filepath.Join(dir, f), "x\n")
	}
	if probs := c.CheckFiles(); len(probs) != 0 {
		t.Fatalf("all files present, still: %q", probs)
	}
	pw, err := c.Keys.Passphrase()
	if err != nil || string(pw) != "x" {
		t.Fatalf("Passphrase = %q, %v", pw, err)
	}
}

func TestPassphraseEnv(t *testing.T) {
	k := Keys{PassphraseFile: filepath.Join(t.TempDir(), "absent")}
	t.Setenv(PassphraseEnv, "")
	if _, err := k.Passphrase(); err == nil {
		t.Fatal("no file, no env: no error")
	}
	t.Setenv(PassphraseEnv, "s3cret")
	if pw, err := k.Passphrase(); err != nil || string(pw) != "s3cret" {
		t.Fatalf("Passphrase = %q, %v", pw, err)
	}
}
