package banks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Plugin describes one channel kind ("sftp", "https", "amqp"). Plugins
// call Register from init().
type Plugin struct {
	// Name is the channel kind as written in bank profiles.
	Name string
	// New builds a Channel from validated options (defaults filled in).
	// It must not leave goroutines or connections behind on error.
	New func(ctx context.Context, opts Options) (Channel, error)
	// Options lists every option the plugin accepts.
	Options []OptionSpec
}

// OptionSpec describes one option of a plugin.
type OptionSpec struct {
	Name string
	Help string
	// Default is used when the option is absent or empty.
	Default string
	// Required: absent or empty with no default is an error.
	Required bool
	// Sensitive values are masked in errors, logs and Mask.
	Sensitive bool
}

// Options are a plugin's settings, name to value. File paths are given
// absolute by the caller (config resolves them against the config file).
type Options map[string]string

// Masked is the replacement text for sensitive option values.
const Masked = "******"

var (
	regMu   sync.RWMutex
	plugins = map[string]Plugin{}
)

// Register makes a plugin available by name. It panics on an empty name, a
// nil constructor, a duplicate option or a duplicate plugin name: those are
// programming errors found at start-up.
func Register(p Plugin) {
	if p.Name == "" || p.New == nil {
		panic("banks: Register: plugin needs a name and a constructor")
	}
	seen := map[string]bool{}
	for _, o := range p.Options {
		if o.Name == "" || seen[o.Name] {
			panic(fmt.Sprintf("banks: Register %q: empty or duplicate option %q", p.Name, o.Name))
		}
		seen[o.Name] = true
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := plugins[p.Name]; dup {
		panic(fmt.Sprintf("banks: Register: duplicate plugin %q", p.Name))
	}
	plugins[p.Name] = p
}

// Lookup returns the plugin registered under name.
func Lookup(name string) (Plugin, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := plugins[name]
	return p, ok
}

// Names returns the registered plugin names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(plugins))
	for n := range plugins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// New validates opts against the plugin's specs and builds a Channel.
func New(ctx context.Context, name string, opts Options) (Channel, error) {
	p, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("banks: unknown channel kind %q (registered: %s)", name, strings.Join(Names(), ", "))
	}
	full, err := p.Validate(opts)
	if err != nil {
		return nil, err
	}
	ch, err := p.New(ctx, full)
	if err != nil {
		return nil, p.scrub(fmt.Errorf("banks: %s: %w", p.Name, err), full)
	}
	return ch, nil
}

// scrub is a safety net: a plugin error that quotes a sensitive value has
// it replaced by Masked in its text; errors.Is/As still see the original.
func (p Plugin) scrub(err error, opts Options) error {
	msg := err.Error()
	changed := false
	for _, s := range p.Options {
		if v := opts[s.Name]; s.Sensitive && v != "" && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, Masked)
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Validate checks opts against the specs and returns a copy with defaults
// filled in. The error lists every problem (unknown keys, missing required
// options), one per line, sorted, and never shows a value.
func (p Plugin) Validate(opts Options) (Options, error) {
	specs := make(map[string]OptionSpec, len(p.Options))
	for _, s := range p.Options {
		specs[s.Name] = s
	}
	var problems []string
	for k := range opts {
		if _, ok := specs[k]; !ok {
			problems = append(problems, fmt.Sprintf("unknown option %q", k))
		}
	}
	full := make(Options, len(p.Options))
	for _, s := range p.Options {
		v := strings.TrimSpace(opts[s.Name])
		if v == "" {
			v = s.Default
		}
		if v == "" && s.Required {
			problems = append(problems, fmt.Sprintf("missing required option %q (%s)", s.Name, s.Help))
			continue
		}
		full[s.Name] = v
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		errs := make([]error, len(problems))
		for i, pr := range problems {
			errs[i] = fmt.Errorf("banks: %s: %s", p.Name, pr)
		}
		return nil, errors.Join(errs...)
	}
	return full, nil
}

// Mask returns a copy of opts with sensitive values replaced by Masked,
// fit for logs and error messages.
func (p Plugin) Mask(opts Options) Options {
	out := make(Options, len(opts))
	for k, v := range opts {
		out[k] = v
	}
	for _, s := range p.Options {
		if _, ok := out[s.Name]; ok && s.Sensitive {
			out[s.Name] = Masked
		}
	}
	return out
}

// Masked returns opts as a slog.LogValuer with sensitive values masked:
// logger.Info("...", "opts", p.Masked(opts)).
func (p Plugin) Masked(opts Options) slog.LogValuer { return maskedOptions(p.Mask(opts)) }

type maskedOptions Options

func (m maskedOptions) LogValue() slog.Value {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, len(keys))
	for i, k := range keys {
		attrs[i] = slog.String(k, m[k])
	}
	return slog.GroupValue(attrs...)
}

type loggerKey struct{}

// WithLogger returns a context carrying l, for plugin constructors: New
// (and Plugin.New) take the channel's logger from their ctx with
// LoggerFrom, so the gateway injects one already scoped with the bank code.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// LoggerFrom returns the logger set by WithLogger, or slog.Default().
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}
