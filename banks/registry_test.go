package banks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// fakeChannel is the smallest Channel, for registry tests only.
type fakeChannel struct{ opts Options }

func (f *fakeChannel) Send(context.Context, *Outbound) (Receipt, error) { return Receipt{}, nil }
func (f *fakeChannel) ListFeedback(context.Context) ([]FeedbackRef, error) {
	return nil, nil
}
func (f *fakeChannel) OpenFeedback(context.Context, FeedbackRef) (io.ReadCloser, error) {
	return nil, ErrNotFound
}
func (f *fakeChannel) AckFeedback(context.Context, FeedbackRef) error { return nil }
func (f *fakeChannel) Close() error                                   { return nil }

var testPlugin = Plugin{
	Name: "registry-test",
	New: func(_ context.Context, opts Options) (Channel, error) {
		if opts["mode"] == "fail" {
			return nil, fmt.Errorf("cannot log in with %s: %w", opts["secret"], ErrAuth)
		}
		return &fakeChannel{opts: opts}, nil
	},
	Options: []OptionSpec{
		{Name: "host", Help: "bank host", Required: true},
		{Name: "port", Help: "port", Default: "22"},
		{Name: "secret", Help: "a secret", Sensitive: true},
		{Name: "mode", Help: "test mode"},
	},
}

func init() { Register(testPlugin) }

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr []string // substrings, all must appear
		want    Options
	}{
		{name: "defaults filled", opts: Options{"host": "h"},
			want: Options{"host": "h", "port": "22", "secret": "", "mode": ""}},
		{name: "explicit wins", opts: Options{"host": "h", "port": "2222"},
			want: Options{"host": "h", "port": "2222", "secret": "", "mode": ""}},
		{name: "all problems listed", opts: Options{"bogus": "1", "other": "2"},
			wantErr: []string{`unknown option "bogus"`, `unknown option "other"`, `missing required option "host"`}},
		{name: "blank required", opts: Options{"host": "  "},
			wantErr: []string{`missing required option "host"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := New(context.Background(), "registry-test", tt.opts)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("New: no error, want %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got := ch.(*fakeChannel).opts
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("options = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewUnknownKind(t *testing.T) {
	_, err := New(context.Background(), "no-such-kind", nil)
	if err == nil || !strings.Contains(err.Error(), "registry-test") {
		t.Fatalf("err = %v, want unknown kind listing registered ones", err)
	}
}

func TestSensitiveMasked(t *testing.T) {
	opts := Options{"host": "h", "secret": "hunter2-very-secret", "mode": "fail"}
	_, err := New(context.Background(), "registry-test", opts)
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the secret: %q", err)
	}
	if !errors.Is(err, ErrAuth) {
		t.Errorf("masking lost the sentinel: %v", err)
	}
	m := testPlugin.Mask(opts)
	if m["secret"] != Masked || m["host"] != "h" || opts["secret"] != "hunter2-very-secret" {
		t.Errorf("Mask = %v (input %v)", m, opts)
	}
	if s := testPlugin.Masked(opts).LogValue().String(); strings.Contains(s, "hunter2") {
		t.Errorf("LogValue leaks: %s", s)
	}
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		p    Plugin
	}{
		{"duplicate name", Plugin{Name: "registry-test", New: testPlugin.New}},
		{"no name", Plugin{New: testPlugin.New}},
		{"no constructor", Plugin{Name: "x-no-new"}},
		{"duplicate option", Plugin{Name: "x-dup-opt", New: testPlugin.New,
			Options: []OptionSpec{{Name: "a"}, {Name: "a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Register did not panic")
				}
			}()
			Register(tt.p)
		})
	}
	if _, ok := Lookup("x-dup-opt"); ok {
		t.Error("a rejected plugin was registered")
	}
}

func TestRetryable(t *testing.T) {
	base := errors.New("connection reset")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"transient", Transient(base), true},
		{"wrapped transient", fmt.Errorf("sftp: put: %w", Transient(base)), true},
		{"outcome unknown and transient", fmt.Errorf("%w: %w", ErrOutcomeUnknown, Transient(base)), true},
		{"sentinel", ErrHostKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsRetryable(tt.err); got != tt.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if Transient(nil) != nil {
		t.Error("Transient(nil) != nil")
	}
	if !errors.Is(Transient(base), base) {
		t.Error("Transient hides the cause")
	}
}

func TestProbeResultString(t *testing.T) {
	for r, want := range map[ProbeResult]string{ProbeUnknown: "unknown", ProbeNotArrived: "not_arrived",
		ProbeArrived: "arrived", ProbeMismatch: "mismatch", 9: "ProbeResult(9)"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), want)
		}
	}
}

func TestLoggerFrom(t *testing.T) {
	if LoggerFrom(context.Background()) != slog.Default() {
		t.Error("no logger in ctx: want slog.Default()")
	}
	l := slog.New(slog.DiscardHandler)
	if LoggerFrom(WithLogger(context.Background(), l)) != l {
		t.Error("logger from ctx not returned")
	}
}
