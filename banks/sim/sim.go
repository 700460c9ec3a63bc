package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"yktgw/banks"
	"yktgw/crypto"
)

// Faults are failures the simulator injects on demand (SetFaults). The zero
// value is a well-behaved bank. Counters (DropMidUpload, MalformedReturn)
// are used up one by one; the others stay until changed.
type Faults struct {
	// DropMidUpload: the next N uploads into the outbound directory have
	// their SSH connection closed during their first write request, after
	// half of that request's bytes were written to the (temporary) file.
	// For a file that fits one SFTP write request (32 KiB) that is half the
	// upload.
	DropMidUpload int
	// SlowWrites: sleep this long before each write request of an upload
	// into the outbound directory.
	SlowWrites time.Duration
	// DuplicateReturn: each return file is written twice, the second copy
	// under another name matching the feedback pattern, with the same bytes.
	DuplicateReturn bool
	// MalformedReturn: the next N return files are malformed (the summary
	// disagrees with the lines and the last line is cut short), yet sealed
	// and signed properly.
	MalformedReturn int
	// LateReturn: extra delay before a return file is written (to go past
	// the gateway's feedback deadline).
	LateReturn time.Duration
	// WithholdReturns: accepted files are never answered.
	WithholdReturns bool
}

// Config configures a simulator.
type Config struct {
	// Listen is the SSH address ("127.0.0.1:0" picks a free port).
	Listen string
	// Root is the directory served (created if missing). The gateway's
	// channel paths (outbound, feedback and archive directories) are
	// relative to it; "/" is Root. The simulator also keeps
	// Root/sim-stats.json, Root/rejected/ and Root/.sim/ there.
	Root string
	// OutboundDir and FeedbackDir are the bank's directories relative to
	// Root (default "upload" and "feedback"); both are created at Start.
	OutboundDir, FeedbackDir string
	// HostKey is the SSH host key.
	HostKey ssh.Signer
	// AuthorizedKeys are the public keys allowed to log in (the gateway's).
	AuthorizedKeys []ssh.PublicKey
	// User is the only login name accepted.
	User string
	// Profile is the bank played: layouts, paid and failure codes, file
	// names, envelope and signer id.
	Profile *banks.Profile
	// Bank is the bank's SM2 key and certificate: it opens what it
	// receives and signs the returns.
	Bank crypto.Party
	// Gateway is the gateway's certificate: it must have signed what the
	// bank receives; returns are sealed to it.
	Gateway *smx509.Certificate
	// FailRate is the share of records failed (0..1). A probability, never
	// money.
	FailRate float64
	// Seed makes outcomes deterministic: the same (Seed, bank batch number,
	// seq) always gives the same outcome, code and bank serial.
	Seed int64
	// Reasons are the bank failure codes drawn from. Default: the profile's
	// code map keys (sorted), else DefaultReasons.
	Reasons []string
	// Delay is the time between accepting a file and writing its return.
	Delay time.Duration
	// Log receives the simulator's events (default slog.Default()).
	Log *slog.Logger
}

// DefaultReasons are failure codes used when neither Config.Reasons nor the
// profile's code map gives any; their texts (see messageFor) classify
// through the default message patterns of banks.
var DefaultReasons = []string{"E101", "E103", "E104", "E105", "E107"}

// Stats counts what the simulator saw and did. Sums are over the return
// files written (a duplicate copy of a return file is not counted twice).
type Stats struct {
	Accepted       int `json:"accepted"`        // files opened, parsed and accepted (a new bank batch number)
	Duplicates     int `json:"duplicates"`      // files whose bank batch number was accepted before: never paid again
	Rejected       int `json:"rejected"`        // files that did not open, verify or parse: moved to rejected/
	ReturnsWritten int `json:"returns_written"` // return files written (one per accepted file; copies not counted)

	AcceptedByBatchNo   map[string]int `json:"accepted_by_batch_no"`
	DuplicatesByBatchNo map[string]int `json:"duplicates_by_batch_no"`

	Records       int   `json:"records"` // records in the return files written
	PaidRecords   int   `json:"paid_records"`
	FailedRecords int   `json:"failed_records"`
	PaidFen       int64 `json:"paid_fen"`
	FailedFen     int64 `json:"failed_fen"`

	DuplicateReturns int `json:"duplicate_returns"` // extra copies written by the DuplicateReturn fault
	MalformedReturns int `json:"malformed_returns"` // return files written malformed (counted in the sums too)
	WithheldReturns  int `json:"withheld_returns"`  // accepted files never answered (WithholdReturns fault)
	DroppedUploads   int `json:"dropped_uploads"`   // connections dropped by the DropMidUpload fault

	// Files maps each outbound file name seen to accepted, duplicate or
	// rejected (the latest outcome for that name).
	Files map[string]string `json:"files"`
}

func (st Stats) clone() Stats {
	c := st
	c.AcceptedByBatchNo = cloneMap(st.AcceptedByBatchNo)
	c.DuplicatesByBatchNo = cloneMap(st.DuplicatesByBatchNo)
	c.Files = cloneMap(st.Files)
	return c
}

func cloneMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// StatsFile is the name of the stats snapshot under Root.
const StatsFile = "sim-stats.json"

// ReadStats reads the stats snapshot a simulator (possibly another
// process) keeps under root.
func ReadStats(root string) (Stats, error) {
	b, err := os.ReadFile(filepath.Join(root, StatsFile))
	if err != nil {
		return Stats{}, fmt.Errorf("sim: %w", err)
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		return Stats{}, fmt.Errorf("sim: %s: %w", StatsFile, err)
	}
	return st, nil
}

// persisted is what sim-stats.json holds: the stats, plus the SM3 of each
// outbound file processed, so a restarted simulator on the same root keeps
// the bank's idempotency.
type persisted struct {
	Stats
	FileSM3 map[string]string `json:"file_sm3"`
}

// Sim is a running (or ready) bank simulator.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	root    *os.Root
	outDir  string // relative to root
	fbDir   string
	reasons []string
	sealOpt crypto.SealOptions
	sshCfg  *ssh.ServerConfig
	nameBBN func(string) string

	lastFaults string // content of the faults file last applied (scanner goroutine only)

	mu      sync.Mutex
	f       Faults
	st      Stats
	fileSM3 map[string]string
	queued  map[string]bool
	started bool
	closed  bool
	conns   map[*ssh.ServerConn]struct{}

	work   chan string
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and opens Root. It does not listen: Start does.
func New(cfg Config) (*Sim, error) { return newSim(cfg, true) }

// newSim is New; withSSH false leaves out the SSH server (a bank reached by
// another channel, e.g. NewHTTPS, shares the rest: processing, returns,
// stats, faults).
func newSim(cfg Config, withSSH bool) (*Sim, error) {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("sim: "+f, a...)) }
	if cfg.Listen == "" {
		bad("listen address required")
	}
	if cfg.Root == "" {
		bad("root directory required")
	}
	if withSSH && cfg.HostKey == nil {
		bad("host key required")
	}
	if withSSH && len(cfg.AuthorizedKeys) == 0 {
		bad("at least one authorized key required")
	}
	if withSSH && cfg.User == "" {
		bad("user required")
	}
	if cfg.Profile == nil || cfg.Profile.Outbound == nil || cfg.Profile.Return == nil {
		bad("bank profile with outbound and return layouts required")
	} else if len(cfg.Profile.PaidCodes) == 0 {
		bad("profile %s has no paid code", cfg.Profile.Code)
	}
	if cfg.Bank.Key == nil || cfg.Bank.Cert == nil {
		bad("bank key and certificate required")
	} else if !crypto.KeyMatchesCert(cfg.Bank.Key, cfg.Bank.Cert) {
		bad("bank key does not belong to the bank certificate")
	}
	if cfg.Gateway == nil {
		bad("gateway certificate required")
	}
	if !(cfg.FailRate >= 0 && cfg.FailRate <= 1) {
		bad("fail rate %v must be within 0..1", cfg.FailRate)
	}
	if cfg.Delay < 0 {
		bad("delay must be >= 0")
	}
	if cfg.OutboundDir == "" {
		cfg.OutboundDir = "upload"
	}
	if cfg.FeedbackDir == "" {
		cfg.FeedbackDir = "feedback"
	}
	outDir, fbDir := rel(cfg.OutboundDir), rel(cfg.FeedbackDir)
	if outDir == "." || fbDir == "." || outDir == fbDir {
		bad("outbound dir %q and feedback dir %q must be distinct subdirectories of the root", cfg.OutboundDir, cfg.FeedbackDir)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := cfg.Profile
	if _, err := returnName(p.FeedbackPattern, "X"); err != nil {
		return nil, err
	}
	reasons := cfg.Reasons
	if len(reasons) == 0 {
		for c := range p.CodeMap {
			reasons = append(reasons, c)
		}
		sort.Strings(reasons)
	}
	if len(reasons) == 0 {
		reasons = DefaultReasons
	}
	for _, r := range reasons {
		if p.IsPaid(r) {
			return nil, fmt.Errorf("sim: failure code %q is a paid code of profile %s", r, p.Code)
		}
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("sim: root: %w", err)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("sim: root: %w", err)
	}
	s := &Sim{
		cfg:     cfg,
		log:     cfg.Log.With("bank", p.Code, "component", "banksim"),
		root:    root,
		outDir:  outDir,
		fbDir:   fbDir,
		reasons: reasons,
		sealOpt: crypto.SealOptions{Cipher: p.Envelope.Cipher, CFCA: p.Envelope.CFCA, SignerID: []byte(p.SignerID)},
		nameBBN: batchNoFromName(p.FileName),
		st:      Stats{AcceptedByBatchNo: map[string]int{}, DuplicatesByBatchNo: map[string]int{}, Files: map[string]string{}},
		fileSM3: map[string]string{},
		queued:  map[string]bool{},
		conns:   map[*ssh.ServerConn]struct{}{},
		work:    make(chan string, 1024),
	}
	want := make(map[string]bool, len(cfg.AuthorizedKeys))
	for _, k := range cfg.AuthorizedKeys {
		want[string(k.Marshal())] = true
	}
	s.sshCfg = &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == cfg.User && want[string(key.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sim: key not authorized")
		},
		MaxAuthTries: 6,
	}
	if withSSH {
		s.sshCfg.AddHostKey(cfg.HostKey)
	}
	return s, nil
}

// Start creates the bank's directories, loads the stats a previous run left
// under Root, listens, and serves SSH/SFTP and processes uploads in the
// background until ctx ends or Close. It returns the listen address.
func (s *Sim) Start(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("sim: listen: %w", err)
	}
	if err := s.startLocked(ctx, ln); err != nil {
		ln.Close()
		return "", err
	}
	s.wg.Add(1)
	go s.accept()
	s.log.Info("bank simulator listening", "addr", ln.Addr().String(), "root", s.cfg.Root,
		"outbound_dir", s.outDir, "feedback_dir", s.fbDir, "fail_rate", s.cfg.FailRate, "seed", s.cfg.Seed)
	return ln.Addr().String(), nil
}

// startLocked creates the bank's directories, loads the stats a previous
// run left, and starts processing; ln is the listener of the channel
// server (closed by Close).
func (s *Sim) startLocked(ctx context.Context, ln net.Listener) error {
	if s.started || s.closed {
		return errors.New("sim: Start called twice or after Close")
	}
	for _, d := range []string{s.outDir, s.fbDir, "rejected", ".sim/pending"} {
		if err := s.root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("sim: mkdir %s: %w", d, err)
		}
	}
	if err := s.loadLocked(); err != nil {
		return err
	}
	s.started = true
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.saveLocked()
	s.wg.Add(2)
	go s.worker()
	go s.scanner()
	s.resumePending()
	return nil
}

// Addr is the listen address after Start ("" before).
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// SetFaults replaces the faults in force.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f = f
	s.log.Info("faults set", "drop_mid_upload", f.DropMidUpload, "slow_writes", f.SlowWrites,
		"duplicate_return", f.DuplicateReturn, "malformed_return", f.MalformedReturn,
		"late_return", f.LateReturn, "withhold_returns", f.WithholdReturns)
}

func (s *Sim) faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

// takeDrop uses up one DropMidUpload.
func (s *Sim) takeDrop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.DropMidUpload > 0 {
		s.f.DropMidUpload--
		return true
	}
	return false
}

func (s *Sim) noteDrop(name string, written int64) {
	s.mu.Lock()
	s.st.DroppedUploads++
	s.saveLocked()
	s.mu.Unlock()
	s.log.Warn("fault: connection dropped mid-upload", "file", path.Base(name), "bytes_written", written)
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.clone()
}

// Close stops listening, drops every connection, stops processing and
// waits for the background work. Return files still waiting for their delay
// stay under Root/.sim/pending and are written by the next Start on the same
// Root. Close is idempotent.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.root.Close()
}

func (s *Sim) accept() {
	defer s.wg.Done()
	go func() {
		<-s.ctx.Done()
		_ = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	}()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
		}()
	}
}

func (s *Sim) serveConn(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		_ = nc.Close()
		s.log.Warn("ssh handshake refused", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.closed || s.ctx.Err() != nil {
		s.mu.Unlock()
		_ = sc.Close()
		return
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		_ = sc.Close()
	}()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if !ok {
					continue
				}
				go ssh.DiscardRequests(creqs)
				h := &handlers{s: s, sc: sc}
				srv := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
					sftp.WithStartDirectory("/"))
				_ = srv.Serve()
				_ = srv.Close()
				return
			}
		}()
	}
}

// inOutbound reports whether name (relative to root) is directly inside
// the outbound directory.
func (s *Sim) inOutbound(name string) bool {
	return path.Dir(name) == s.outDir
}

// isFinalOutbound: a file directly in the outbound directory whose name
// does not start with "." (temporary names such as .X.part are ignored).
func (s *Sim) isFinalOutbound(name string) bool {
	return s.inOutbound(name) && !strings.HasPrefix(path.Base(name), ".")
}

// arrived is told of every file completed or renamed by a client.
func (s *Sim) arrived(name string) {
	if s.isFinalOutbound(name) {
		s.enqueue(path.Base(name))
	}
}

func (s *Sim) enqueue(base string) {
	s.mu.Lock()
	if s.queued[base] || s.closed {
		s.mu.Unlock()
		return
	}
	s.queued[base] = true
	s.mu.Unlock()
	select {
	case s.work <- base:
	default:
		// The queue is full: the periodic scan picks the file up later.
		s.mu.Lock()
		delete(s.queued, base)
		s.mu.Unlock()
	}
}

func (s *Sim) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case name := <-s.work:
			s.mu.Lock()
			delete(s.queued, name)
			s.mu.Unlock()
			s.process(name)
		}
	}
}

// scanner applies the faults file and picks up files that appeared in the
// outbound directory by other means than this simulator's SFTP server (or
// while it was stopped).
func (s *Sim) scanner() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		s.checkFaultsFile()
		s.scan()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sim) scan() {
	d, err := s.root.Open(s.outDir)
	if err != nil {
		return
	}
	ents, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") {
			continue
		}
		s.mu.Lock()
		_, seen := s.st.Files[n]
		s.mu.Unlock()
		if !seen {
			s.enqueue(n)
		}
	}
}

// loadLocked reads the stats a previous run left under Root.
func (s *Sim) loadLocked() error {
	b, err := s.root.ReadFile(StatsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sim: %s: %w", StatsFile, err)
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("sim: %s: %w", StatsFile, err)
	}
	st := p.Stats
	if st.AcceptedByBatchNo == nil {
		st.AcceptedByBatchNo = map[string]int{}
	}
	if st.DuplicatesByBatchNo == nil {
		st.DuplicatesByBatchNo = map[string]int{}
	}
	if st.Files == nil {
		st.Files = map[string]string{}
	}
	if p.FileSM3 == nil {
		p.FileSM3 = map[string]string{}
	}
	s.st, s.fileSM3 = st, p.FileSM3
	return nil
}

// saveLocked writes the stats snapshot atomically (temporary file, rename)
// so that another process never reads half of it.
func (s *Sim) saveLocked() {
	b, err := json.MarshalIndent(persisted{Stats: s.st, FileSM3: s.fileSM3}, "", "  ")
	if err == nil {
		tmp := "." + StatsFile + ".tmp"
		if err = s.root.WriteFile(tmp, append(b, '\n'), 0o644); err == nil {
			err = s.root.Rename(tmp, StatsFile)
		}
	}
	if err != nil {
		s.log.Error("stats snapshot not written", "err", err)
	}
}

// readAll reads a file under the root, at most limit bytes.
func (s *Sim) readAll(name string, limit int64) ([]byte, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil && fi.Size() < limit {
		buf.Grow(int(fi.Size()))
	}
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}
