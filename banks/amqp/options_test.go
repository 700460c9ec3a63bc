package amqp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yktgw/banks"
)

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "url")
	if err := os.WriteFile(urlFile, []byte("amqp://u:s3cret@127.0.0.1:5672/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts banks.Options
		errs []string // substrings, all of them
	}{
		{"ok", banks.Options{"url": "amqp://u:s3cret@h:5672/", "outbound_queue": "q", "feedback_queue": "f"}, nil},
		{"url file", banks.Options{"url_file": urlFile, "outbound_queue": "q", "feedback_queue": "f"}, nil},
		{"every problem at once", banks.Options{"url": "http://u:s3cret@h/", "outbound_queue": "q", "feedback_queue": "q",
			"prefetch": "0", "timeout": "soon", "declare": "maybe", "exchange_type": "x-weird", "feedback_pattern": "["},
			[]string{"scheme must be amqp", "must differ", "prefetch", "timeout", "declare", "exchange_type", "feedback_pattern"}},
		{"missing", banks.Options{}, []string{`"outbound_queue"`, `"feedback_queue"`}},
		{"no url", banks.Options{"outbound_queue": "q", "feedback_queue": "f"}, []string{"url: required"}},
		{"both", banks.Options{"url": "amqp://h/", "url_file": urlFile, "outbound_queue": "q", "feedback_queue": "f"}, []string{"not both"}},
		{"tls files on plain amqp", banks.Options{"url": "amqp://h/", "ca_file": "/x.pem", "outbound_queue": "q", "feedback_queue": "f"}, []string{"only for an amqps"}},
		{"half a client pair", banks.Options{"url": "amqps://h/", "cert_file": "/x.crt", "outbound_queue": "q", "feedback_queue": "f"}, []string{"go together"}},
		{"relative file", banks.Options{"url_file": "url", "outbound_queue": "q", "feedback_queue": "f"}, []string{"absolute"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), tc.opts)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want errors %v", tc.errs)
			}
			for _, w := range tc.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the password: %q", err)
			}
		})
	}
}

func TestRegistryWrapsProbe(t *testing.T) {
	base := banks.Options{"url": "amqp://h/", "outbound_queue": "q", "feedback_queue": "f"}
	for _, probe := range []string{"true", "false"} {
		o := banks.Options{"probe": probe}
		for k, v := range base {
			o[k] = v
		}
		ch, err := banks.New(context.Background(), Kind, o)
		if err != nil {
			t.Fatal(err)
		}
		_, isProber := ch.(banks.Prober)
		if isProber != (probe == "true") {
			t.Errorf("probe=%s: implements Prober = %v", probe, isProber)
		}
		ch.Close()
	}
}

func TestBadCredentialsIsErrAuth(t *testing.T) {
	u := needBroker(t)
	bad := strings.Replace(u, "guest:guest", "guest:wrong-password", 1)
	if bad == u {
		t.Skip("broker URL has no guest:guest to spoil")
	}
	ch := newChannel(t, bad, randName(t, "out"), randName(t, "fb"), nil)
	err := ch.(banks.Pinger).Ping(context.Background())
	if !errors.Is(err, banks.ErrAuth) || banks.IsRetryable(err) {
		t.Fatalf("Ping with a wrong password: %v, want permanent ErrAuth", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error quotes the password: %v", err)
	}
}

func TestUnreachableBrokerBacksOff(t *testing.T) {
	ch := newChannel(t, "amqp://guest:guest@127.0.0.1:1/", "q", "f", map[string]string{"timeout": "1s"})
	ctx := context.Background()
	err := ch.(banks.Pinger).Ping(ctx)
	if !banks.IsRetryable(err) {
		t.Fatalf("Ping of a closed port: %v, want retryable", err)
	}
	err = ch.(banks.Pinger).Ping(ctx)
	if !banks.IsRetryable(err) || !strings.Contains(err.Error(), "next attempt") {
		t.Fatalf("second Ping right away: %v, want the backoff's retryable error", err)
	}
}
