package demo

import (
	"context"
	"path/filepath"

	"yktgw/banks"
	bankhttps "yktgw/banks/https"
	"yktgw/banks/sim"
)

func init() { RegisterSide("https", startHTTPSSide) }

type httpsSide struct {
	b       *sim.HTTPSBank
	profile string
	opts    map[string]string
}

// startHTTPSSide starts the simulator's HTTPS bank (test CA and TLS
// certificates beside the key set). With e.Gateway set the bank pushes its
// return files to the gateway's callback; without, the gateway polls.
func startHTTPSSide(ctx context.Context, e SideEnv) (Side, error) {
	profile := filepath.Join(e.Root, "testdata/banks/demo_https/profile.yaml")
	p, err := banks.LoadProfile(profile)
	if err != nil {
		return nil, err
	}
	tl, err := sim.SetupHTTPSTLS(e.Keys.Dir)
	if err != nil {
		return nil, err
	}
	cfg := sim.HTTPSConfig{
		Config: sim.Config{Listen: "127.0.0.1:0", Root: filepath.Join(e.Dir, "bank"), Profile: p, Bank: e.Keys.Bank,
			Gateway: e.Keys.Gateway.Cert, FailRate: e.FailRate, Seed: e.Seed, Delay: e.Delay, Log: e.Log},
		TLS:      tl,
		SignerID: p.Channel.Options["signer_id"],
	}
	mode := bankhttps.FeedbackPoll
	if e.Gateway != nil {
		mode = bankhttps.FeedbackPush
		cfg.Callback = func() string {
			base := e.Gateway()
			if base == "" {
				return ""
			}
			return base + "/v1/banks/" + p.Code + "/callback"
		}
	}
	b, err := sim.NewHTTPS(cfg)
	if err != nil {
		return nil, err
	}
	addr, err := b.Start(ctx)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &httpsSide{b: b, profile: profile, opts: map[string]string{
		"base_url": "https://" + addr, "ca_file": tl.CAFile, "cert_file": tl.ClientCertFile, "key_file": tl.ClientKeyFile,
		"sign_key_file": e.Keys.GatewayKeyFile, "passphrase_file": e.Keys.PassphraseFile, "bank_cert_file": e.Keys.BankCertFile,
		"feedback": mode, "min_age": "0s",
	}}, nil
}

func (s *httpsSide) Profile() string            { return s.profile }
func (s *httpsSide) Options() map[string]string { return s.opts }
func (s *httpsSide) Stats() sim.Stats           { return s.b.Stats() }
func (s *httpsSide) SetFaults(f sim.Faults)     { s.b.SetFaults(f) }
func (s *httpsSide) Close() error               { return s.b.Close() }

// HTTPSBank returns the simulator behind an "https" side (for tests that
// inject HTTPS faults or read its counters).
func HTTPSBank(s Side) (*sim.HTTPSBank, bool) {
	h, ok := s.(*httpsSide)
	if !ok {
		return nil, false
	}
	return h.b, true
}
