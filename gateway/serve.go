package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/spool/sqlite"
)

// NewLogger builds the slog logger the config asks for.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenStore opens the spool the config names.
func OpenStore(ctx context.Context, cfg *config.Config) (*sqlite.Store, error) {
	if cfg.Spool.Driver != "sqlite" {
		return nil, fmt.Errorf("gateway: spool driver %q not supported (sqlite)", cfg.Spool.Driver)
	}
	return sqlite.Open(ctx, cfg.Spool.Path)
}

// Open builds a Gateway from a config: spool, data keys, bank profiles.
// The caller closes the returned Gateway.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	profiles, err := LoadProfiles(cfg)
	if err != nil {
		return nil, err
	}
	ring, err := OpenLiveKeyring(cfg.Keys.DataKeyFile)
	if err != nil {
		return nil, err
	}
	cal, err := config.LoadCalendar(cfg.Calendar...)
	if err != nil {
		return nil, err
	}
	pass, err := cfg.Keys.Passphrase()
	if err != nil {
		return nil, err
	}
	key, err := crypto.LoadPrivateKey(cfg.Keys.SigningKey, pass)
	clear(pass)
	if err != nil {
		return nil, fmt.Errorf("gateway: signing key: %w", err)
	}
	cert, err := crypto.LoadCertificate(cfg.Keys.Certificate)
	if err != nil {
		return nil, fmt.Errorf("gateway: certificate: %w", err)
	}
	if !crypto.KeyMatchesCert(key, cert) {
		return nil, errors.New("gateway: keys.signing_key does not belong to keys.certificate")
	}
	bankMap := map[string]*Bank{}
	closeAll := func() {
		for _, b := range bankMap {
			b.Channel.Close()
		}
	}
	for _, bc := range cfg.Banks {
		p := profiles[bc.Code]
		bcert, err := crypto.LoadCertificate(bc.Certificate)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("gateway: bank %s certificate: %w", bc.Code, err)
		}
		opts := banks.Options{}
		for k, v := range p.Channel.Options {
			if strings.HasSuffix(k, "_file") && v != "" && !filepath.IsAbs(v) {
				v = filepath.Join(filepath.Dir(cfg.File), v)
			}
			opts[k] = v
		}
		if _, set := opts["feedback_pattern"]; !set && p.FeedbackPattern != "" {
			opts["feedback_pattern"] = p.FeedbackPattern
		}
		ch, err := banks.New(banks.WithLogger(ctx, log.With("bank", bc.Code)), p.Channel.Type, opts)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("gateway: bank %s channel: %w", bc.Code, err)
		}
		bankMap[bc.Code] = &Bank{Profile: p, Cert: bcert, Channel: withRetry(ch, 3, 200*time.Millisecond)}
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	g, err := New(Deps{Config: cfg, Store: st, Fields: ring, Profiles: profiles, Log: log,
		Party: crypto.Party{Key: key, Cert: cert}, Banks: bankMap, Calendar: cal})
	if err != nil {
		closeAll()
		st.Close()
		return nil, err
	}
	// The report rules come from the config: refuse a bad one at start-up,
	// not at the first request.
	if _, err := NewReportBuilder(cfg, st, ring); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.Recover(ctx); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Close releases the channels and the spool.
func (g *Gateway) Close() error {
	for _, b := range g.banks {
		b.Channel.Close()
	}
	return g.store.Close()
}

// Serve runs the daemon until ctx ends: the HTTP API (TLS and mTLS when
// configured) and the background workers. ready, if set, is called with the
// listening address once requests are accepted.
func (g *Gateway) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	if t := g.cfg.TLS; t.Enabled() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("gateway: tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		if t.ClientCAFile != "" {
			pem, err := os.ReadFile(t.ClientCAFile)
			if err != nil {
				ln.Close()
				return fmt.Errorf("gateway: client ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				ln.Close()
				return errors.New("gateway: client ca: no certificate found")
			}
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		ln = tls.NewListener(ln, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("yktgw serving", "addr", ln.Addr().String(), "tls", g.cfg.TLS.Enabled(), "banks", len(g.profiles), "sm4", crypto.SM4Path())
	if !crypto.SM4ConstantTime() {
		g.log.Warn("this CPU has no AES-NI: single-block SM4 is not constant time here")
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	workers := g.startWorkers(ctx)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	workers.Wait()
	return err
}
