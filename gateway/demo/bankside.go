package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"yktgw/banks"
	"yktgw/banks/sim"
)

// Side is a simulated bank reachable over one kind of channel, as the demo
// and the tests of the real binary use it.
type Side interface {
	// Profile is the bank profile file the gateway must use for this bank
	// (its channel type is this side's kind).
	Profile() string
	// Options are the gateway's channel options for this bank (paths absolute).
	Options() map[string]string
	// Stats are the bank's own counts (what it accepted, paid, failed).
	Stats() sim.Stats
	// SetFaults injects faults on the bank side.
	SetFaults(sim.Faults)
	Close() error
}

// SideEnv is what a bank side is started with.
type SideEnv struct {
	Dir      string      // a directory of its own
	Keys     *sim.KeySet // both parties' keys (sim.SetupKeys)
	Root     string      // the repository root (for testdata profiles)
	FailRate float64
	Seed     int64
	Delay    time.Duration // before the bank answers
	Log      *slog.Logger
	// Gateway, when set, returns the gateway's API base URL
	// ("http://127.0.0.1:port"), "" until it listens; a side that pushes
	// feedback (https) uses it for the callback.
	Gateway func() string
}

// sides are the bank side kinds; each channel plugin's simulator adds its own.
var sides = map[string]func(ctx context.Context, e SideEnv) (Side, error){
	"sftp": startSFTPSide,
}

// RegisterSide adds a simulated bank side for a channel kind.
func RegisterSide(kind string, start func(ctx context.Context, e SideEnv) (Side, error)) {
	if _, dup := sides[kind]; dup {
		panic("demo: bank side registered twice: " + kind)
	}
	sides[kind] = start
}

// Kinds lists the channel kinds the demo can simulate.
func Kinds() []string {
	var out []string
	for k := range sides {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StartSide starts a simulated bank of the given channel kind.
func StartSide(ctx context.Context, kind string, e SideEnv) (Side, error) {
	start := sides[kind]
	if start == nil {
		return nil, fmt.Errorf("demo: no simulated bank for channel %q (have %v)", kind, Kinds())
	}
	if e.Log == nil {
		e.Log = slog.Default()
	}
	if e.Delay == 0 {
		e.Delay = 200 * time.Millisecond
	}
	return start(ctx, e)
}

type sftpSide struct {
	s       *sim.Sim
	profile string
	opts    map[string]string
}

func startSFTPSide(ctx context.Context, e SideEnv) (Side, error) {
	profile := filepath.Join(e.Root, "testdata/banks/demo/profile.yaml")
	p, err := banks.LoadProfile(profile)
	if err != nil {
		return nil, err
	}
	s, err := sim.New(sim.Config{Listen: "127.0.0.1:0", Root: filepath.Join(e.Dir, "bank"), HostKey: e.Keys.HostKey,
		AuthorizedKeys: []ssh.PublicKey{e.Keys.ClientKey.PublicKey()}, User: "ykt", Profile: p, Bank: e.Keys.Bank,
		Gateway: e.Keys.Gateway.Cert, FailRate: e.FailRate, Seed: e.Seed, Delay: e.Delay, Log: e.Log})
	if err != nil {
		return nil, err
	}
	addr, err := s.Start(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	return &sftpSide{s: s, profile: profile, opts: map[string]string{
		"host": host, "port": port, "user": "ykt", "key_file": e.Keys.ClientKeyFile, "host_key": e.Keys.KnownHostsLine,
		"min_age": "300ms", "settle": "100ms",
	}}, nil
}

func (s *sftpSide) Profile() string            { return s.profile }
func (s *sftpSide) Options() map[string]string { return s.opts }
func (s *sftpSide) Stats() sim.Stats           { return s.s.Stats() }
func (s *sftpSide) SetFaults(f sim.Faults)     { s.s.SetFaults(f) }
func (s *sftpSide) Close() error               { return s.s.Close() }
