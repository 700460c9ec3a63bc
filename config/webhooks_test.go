package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateWebhooks(t *testing.T) {
	ok := Webhook{Tenant: "210000", URL: "https://platform.example/hook", SecretFile: "/k/s"}
	c := valid()
	c.Webhooks = []Webhook{ok, {Tenant: "*", URL: "http://127.0.0.1:9/x", SecretFile: "/k/t"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid webhooks: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"tenant", func(c *Config) { w := ok; w.Tenant = "21"; c.Webhooks = []Webhook{w} }, "webhooks[0].tenant:"},
		{"url scheme", func(c *Config) { w := ok; w.URL = "ftp://x/y"; c.Webhooks = []Webhook{w} }, "webhooks[0].url:"},
		{"url empty", func(c *Config) { w := ok; w.URL = ""; c.Webhooks = []Webhook{w} }, "webhooks[0].url:"},
		{"url credentials", func(c *Config) { w := ok; w.URL = "https://u:p@platform.example/h"; c.Webhooks = []Webhook{w} }, "webhooks[0].url: must not carry credentials"},
		{"url dup", func(c *Config) { c.Webhooks = []Webhook{ok, ok} }, "webhooks[1].url: \"https://platform.example/hook\" duplicates webhooks[0]"},
		{"secret", func(c *Config) { w := ok; w.SecretFile = ""; c.Webhooks = []Webhook{w} }, "webhooks[0].secret_file: required"},
		{"timeout", func(c *Config) { w := ok; w.Timeout = -time.Second; c.Webhooks = []Webhook{w} }, "webhooks[0].timeout:"},
		{"backoff", func(c *Config) { c.WebhookOutbox.BackoffInitial = time.Hour }, "webhook_outbox.backoff_initial:"},
		{"alarm", func(c *Config) { c.WebhookOutbox.AlarmAfter = 0 }, "webhook_outbox.alarm_after:"},
		{"poll", func(c *Config) { c.WebhookOutbox.PollInterval = 0 }, "webhook_outbox.poll_interval:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			var ve *ValidationError
			if err := c.Validate(); !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if !strings.Contains(strings.Join(ve.Problems, "\n"), tc.want) {
				t.Fatalf("problems %q lack %q", ve.Problems, tc.want)
			}
		})
	}
}

func TestLoadWebhooks(t *testing.T) {
	dir := t.TempDir()
	body := `webhooks:
  - tenant: "210102"
    url: https://p.example/h
    secret_file: keys/hook.secret
    timeout: 3s
webhook_outbox:
  alarm_after: 3
`
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("YKT_WEBHOOK_OUTBOX_BACKOFF_MAX", "1m")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Webhooks) != 1 || c.Webhooks[0].Timeout != 3*time.Second || c.Webhooks[0].SecretFile != filepath.Join(dir, "keys/hook.secret") {
		t.Fatalf("webhooks %+v", c.Webhooks)
	}
	if w := c.WebhookOutbox; w.AlarmAfter != 3 || w.BackoffMax != time.Minute || w.BackoffInitial != 2*time.Second || w.PollInterval != time.Second {
		t.Fatalf("outbox %+v", w)
	}
	if p := c.CheckFiles(); !strings.Contains(strings.Join(p, "\n"), "webhooks[0].secret_file:") {
		t.Fatalf("CheckFiles %q does not name the missing secret file", p)
	}
}
