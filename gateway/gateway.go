package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/spool"
)

// warnCalendar says loudly, once per year, that a year has no calendar data.
func (g *Gateway) warnCalendar(t time.Time) {
	if _, seen := g.calWarned.LoadOrStore(t.Year(), true); !seen {
		g.log.Warn("no business calendar for this year: falling back to plain weekdays; add calendar/cn-YEAR.yaml", "year", t.Year())
	}
}

// Gateway ties the spool, the keys and the bank profiles together.
type Gateway struct {
	cfg      *config.Config
	store    spool.Store
	fields   FieldCipher
	profiles map[string]*banks.Profile
	banks    map[string]*Bank // banks with a channel (the daemon's); intake needs only profiles
	party    crypto.Party
	calendar *config.Calendar
	caps     map[string]int64
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics

	calWarned sync.Map // years already warned about
	// dispatchKick wakes the dispatcher (intake queued a batch); it holds
	// one kick, more are dropped.
	dispatchKick chan struct{}
}

// Deps are what a Gateway is built from.
type Deps struct {
	Config   *config.Config
	Store    spool.Store
	Fields   FieldCipher
	Profiles map[string]*banks.Profile
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
	// For delivery (the daemon): our signing party, the banks with their
	// certificates and channels, the business calendar.
	Party    crypto.Party
	Banks    map[string]*Bank
	Calendar *config.Calendar
}

// New builds a Gateway.
func New(d Deps) (*Gateway, error) {
	if d.Config == nil || d.Store == nil || d.Fields == nil {
		return nil, errors.New("gateway: config, store and field cipher required")
	}
	g := &Gateway{cfg: d.Config, store: d.Store, fields: d.Fields, profiles: d.Profiles, caps: d.Config.CapsFen(), log: d.Log, now: d.Now,
		party: d.Party, banks: d.Banks, calendar: d.Calendar, metrics: newMetrics(), dispatchKick: make(chan struct{}, 1)}
	if ls, ok := d.Store.(spool.LogStatter); ok {
		g.metrics.logStats(ls)
	}
	if g.banks == nil {
		g.banks = map[string]*Bank{}
	}
	for _, b := range g.banks {
		n := g.cfg.Dispatcher.ConcurrencyPerBank
		if n <= 0 {
			n = 2
		}
		b.sem = make(chan struct{}, n)
	}
	if g.cfg.Dispatcher.MaxAttempts <= 0 {
		g.cfg.Dispatcher.MaxAttempts = 8
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.profiles == nil {
		g.profiles = map[string]*banks.Profile{}
	}
	if g.cfg.Intake.ChunkRecords <= 0 {
		g.cfg.Intake.ChunkRecords = 10000
	}
	if g.cfg.Intake.MaxRecords <= 0 {
		g.cfg.Intake.MaxRecords = 2_000_000
	}
	return g, nil
}

// Profile returns a bank profile (nil if unknown).
func (g *Gateway) Profile(code string) *banks.Profile { return g.profiles[code] }

// Config returns the configuration in use.
func (g *Gateway) Config() *config.Config { return g.cfg }

// Store returns the spool.
func (g *Gateway) Store() spool.Store { return g.store }

// Recover finishes what a crash interrupted at start-up: batches committed but
// not yet queued are queued.
func (g *Gateway) Recover(ctx context.Context) error {
	for {
		bs, err := g.store.Batches(ctx, spool.BatchFilter{State: spool.BatchReceived, Limit: 1000})
		if err != nil {
			return fmt.Errorf("gateway: recover: %w", err)
		}
		if len(bs) == 0 {
			if err := g.sweepBodies(ctx); err != nil {
				g.log.Warn("start-up: sweeping rendered bodies", "err", err) // only disk space is at stake
			}
			return nil
		}
		for _, b := range bs {
			if err := g.store.TransitionBatch(ctx, b.BatchID, spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "system", Reason: "recovered at start-up"}); err != nil && !errors.Is(err, spool.ErrStale) {
				return fmt.Errorf("gateway: recover %s: %w", b.BatchID, err)
			}
		}
	}
}

// LoadProfiles loads every bank profile the config names, applying the
// config's channel option overrides.
func LoadProfiles(cfg *config.Config) (map[string]*banks.Profile, error) {
	out := map[string]*banks.Profile{}
	var errs []error
	for _, b := range cfg.Banks {
		p, err := banks.LoadProfile(b.Profile)
		if err != nil {
			errs = append(errs, fmt.Errorf("bank %s: %w", b.Code, err))
			continue
		}
		if p.Code != b.Code {
			errs = append(errs, fmt.Errorf("bank %s: profile %s has code %q", b.Code, b.Profile, p.Code))
			continue
		}
		if p.Channel.Options == nil {
			p.Channel.Options = map[string]string{}
		}
		for k, v := range b.ChannelOptions {
			p.Channel.Options[k] = v
		}
		out[b.Code] = p
	}
	return out, errors.Join(errs...)
}
