// Package sftp is the "sftp" bank channel: it delivers sealed files into a
// bank's SFTP directory and fetches the bank's return files, over one
// pinned, key-authenticated SSH connection (pkg/sftp over x/crypto/ssh).
//
// It owns the remote protocol only: temporary name then rename, size and
// SM3 checks, the "did it arrive" probe, feedback listing and archiving.
// It must not keep delivery state, retry, or decide what to re-send: that
// is gateway's job. It never connects to a server whose host key is not
// pinned, and never overwrites a final-named file.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"yktgw/banks"
	"yktgw/internal/failpoint"
)

// Kind is the channel kind name this package registers.
const Kind = "sftp"

func init() {
	banks.Register(banks.Plugin{
		Name: Kind,
		New: func(ctx context.Context, o banks.Options) (banks.Channel, error) {
			c, err := New(ctx, o)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Options: OptionSpecs,
	})
}

var (
	_ banks.Channel = (*Channel)(nil)
	_ banks.Prober  = (*Channel)(nil)
	_ banks.Pinger  = (*Channel)(nil)
)

// Channel is an SFTP bank channel. It keeps one SSH connection, dialled on
// first use and re-dialled after a failure, and runs at most max_conns
// operations on it at once. It is safe for concurrent use.
//
// A call whose ctx ends, or that makes no progress for the timeout option,
// closes that shared connection (so that nothing more of it can reach the
// server) and returns at once; other calls in flight on it then fail with
// retryable errors, and the next call re-dials.
type Channel struct {
	cfg *config
	log *slog.Logger
	sem chan struct{}

	mu     sync.Mutex
	cur    *conn
	closed bool
	done   chan struct{} // closed by Close

	// noPosixRename makes Send use plain SFTP rename even where the server
	// offers posix-rename@openssh.com (tests of the fallback path).
	noPosixRename bool
	// defaultPacket keeps SFTP's default 32 KiB requests even where the
	// server states larger limits (tests and the benchmark's comparison).
	defaultPacket bool
	// hook, when set, is called at named steps of Send ("before-rename",
	// "after-rename") so tests can break the connection exactly there.
	hook func(step string)
}

// New checks the options (see OptionSpecs; call through banks.New to get
// defaults filled in) and reads the key files. It does not connect: the
// first operation (or Ping) dials, so a gateway can start while a bank is
// down; a wrong host key then shows as banks.ErrHostKey on that call. The
// channel logs to banks.LoggerFrom(ctx).
func New(ctx context.Context, o banks.Options) (*Channel, error) {
	full, err := pluginSpec().Validate(o)
	if err != nil {
		return nil, err
	}
	cfg, err := parseOptions(full)
	if err != nil {
		return nil, err
	}
	return &Channel{
		cfg:  cfg,
		log:  banks.LoggerFrom(ctx).With("channel", Kind, "addr", cfg.addr),
		sem:  make(chan struct{}, cfg.maxConns),
		done: make(chan struct{}),
	}, nil
}

func pluginSpec() banks.Plugin {
	return banks.Plugin{Name: Kind, New: func(context.Context, banks.Options) (banks.Channel, error) { return nil, nil }, Options: OptionSpecs}
}

// conn is one SSH connection with its SFTP session.
type conn struct {
	ssh    *ssh.Client
	sftp   *sftp.Client
	dead   chan struct{} // closed when the SSH connection has ended
	packet int           // data bytes per SFTP read or write request
	killed atomic.Bool
	once   sync.Once
}

func (c *conn) kill() {
	c.killed.Store(true)
	c.once.Do(func() {
		_ = c.sftp.Close()
		_ = c.ssh.Close()
	})
}

func (c *conn) alive() bool {
	if c.killed.Load() {
		return false
	}
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

func (c *conn) has(ext string) bool {
	v, ok := c.sftp.HasExtension(ext)
	return ok && v == "1"
}

// get returns the live connection, dialling a new one if needed.
func (ch *Channel) get(ctx context.Context) (*conn, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return nil, fmt.Errorf("sftp: %w", banks.ErrClosed)
	}
	if ch.cur != nil && ch.cur.alive() {
		return ch.cur, nil
	}
	if ch.cur != nil {
		ch.cur.kill()
		ch.cur = nil
	}
	cn, err := ch.dial(ctx)
	if err != nil {
		return nil, err
	}
	ch.cur = cn
	return cn, nil
}

func (ch *Channel) dial(parent context.Context) (*conn, error) {
	cfg := ch.cfg
	ctx, cancel := context.WithTimeout(parent, cfg.timeout)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		if parentErr(parent) != nil {
			return nil, fmt.Errorf("sftp: dial %s: %w", cfg.addr, parentErr(parent))
		}
		return nil, banks.Transient(fmt.Errorf("sftp: dial %s: %w", cfg.addr, err))
	}
	// The handshake and SFTP init are bounded by the same deadline; a
	// cancelled ctx closes the socket so the handshake returns at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	cconn, chans, reqs, err := ssh.NewClientConn(nc, cfg.addr, &ssh.ClientConfig{
		User:              cfg.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(cfg.signer)},
		HostKeyCallback:   cfg.pins.Check,
		HostKeyAlgorithms: cfg.pins.Algorithms(),
		Timeout:           cfg.timeout,
	})
	if err != nil {
		stop()
		_ = nc.Close()
		switch {
		case errors.Is(err, banks.ErrHostKey):
			return nil, fmt.Errorf("sftp: connect %s: %w", cfg.addr, err)
		case strings.Contains(err.Error(), "ssh: unable to authenticate"):
			// x/crypto/ssh has no typed error for a refused client key.
			return nil, fmt.Errorf("sftp: connect %s as %s: %w (%v)", cfg.addr, cfg.user, banks.ErrAuth, err)
		case parentErr(parent) != nil:
			return nil, fmt.Errorf("sftp: connect %s: %w", cfg.addr, parentErr(parent))
		}
		return nil, banks.Transient(fmt.Errorf("sftp: connect %s: %w", cfg.addr, err))
	}
	sc := ssh.NewClient(cconn, chans, reqs)
	fc, err := sftp.NewClient(sc, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
	packet := defaultPacket
	if err == nil {
		packet = ch.requestSize(sc, fc)
	}
	stopped := stop()
	if err != nil || !stopped {
		_ = sc.Close()
		if err == nil {
			err = ctx.Err()
		}
		if parentErr(parent) != nil {
			return nil, fmt.Errorf("sftp: start sftp session on %s: %w", cfg.addr, parentErr(parent))
		}
		return nil, banks.Transient(fmt.Errorf("sftp: start sftp session on %s: %w", cfg.addr, err))
	}
	_ = nc.SetDeadline(time.Time{})
	cn := &conn{ssh: sc, sftp: fc, dead: make(chan struct{}), packet: packet}
	go func() {
		_ = sc.Wait()
		close(cn.dead)
	}()
	ch.log.Debug("connected", "request_size", packet, "posix_rename", cn.has("posix-rename@openssh.com"), "fsync", cn.has("fsync@openssh.com"))
	return cn, nil
}

// parentErr is parent.Err(), also when parent's deadline has passed but its
// timer has not fired yet (the socket deadline, set from the same instant,
// can win that race).
func parentErr(parent context.Context) error {
	if err := parent.Err(); err != nil {
		return err
	}
	if dl, ok := parent.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// settled marks an error as already classified: do passes it through.
type settled struct{ err error }

func (e *settled) Error() string { return e.err.Error() }
func (e *settled) Unwrap() error { return e.err }

func final(err error) error {
	if err == nil {
		return nil
	}
	return &settled{err: err}
}

// errNoProgress is the cause when an operation made no progress within
// the timeout option.
var errNoProgress = errors.New("no progress within timeout")

// do runs fn with a connection, within the concurrency bound, honouring
// ctx and the progress timeout. fn calls touch whenever it makes progress
// (bytes moved); an operation silent for longer than the timeout, or whose
// ctx ends, has its connection closed so that nothing more of it can reach
// the server, and do returns at once. Errors from fn are classified: a
// server reply (a status such as "no such file") is returned as is; any
// other failure closes the connection (the next call re-dials) and is
// returned as banks.Transient.
func (ch *Channel) do(ctx context.Context, op string, fn func(ctx context.Context, cn *conn, touch func()) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sftp: %s: %w", op, err)
	}
	select {
	case ch.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sftp: %s: %w", op, ctx.Err())
	case <-ch.done:
		return fmt.Errorf("sftp: %s: %w", op, banks.ErrClosed)
	}
	cn, err := ch.get(ctx)
	if err != nil {
		<-ch.sem
		return err
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	touch := func() { last.Store(time.Now().UnixNano()) }
	res := make(chan error, 1)
	go func() {
		// The slot is held until fn really ends, even when do returned
		// early: the bound counts work in flight, not callers waiting.
		defer func() { <-ch.sem }()
		res <- fn(ctx, cn, touch)
	}()
	tick := time.NewTicker(max(ch.cfg.timeout/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case err := <-res:
			return ch.classify(cn, op, err)
		case <-ctx.Done():
			select {
			case err := <-res:
				return ch.classify(cn, op, err)
			default:
			}
			cn.kill()
			return fmt.Errorf("sftp: %s: %w", op, ctx.Err())
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > ch.cfg.timeout {
				cn.kill()
				return banks.Transient(fmt.Errorf("sftp: %s: %w (%s)", op, errNoProgress, ch.cfg.timeout))
			}
		}
	}
}

func (ch *Channel) classify(cn *conn, op string, err error) error {
	if err == nil {
		return nil
	}
	var s *settled
	if errors.As(err, &s) {
		return s.err
	}
	var status *sftp.StatusError
	if errors.As(err, &status) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("sftp: %s: %w", op, err)
	}
	if ch.isClosed() {
		return fmt.Errorf("sftp: %s: %w (%v)", op, banks.ErrClosed, err)
	}
	// No answer from the server: the connection is suspect; drop it.
	cn.kill()
	return banks.Transient(fmt.Errorf("sftp: %s: %w", op, err))
}

func (ch *Channel) isClosed() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.closed
}

// Close closes the connection. Operations in flight fail; later calls
// return banks.ErrClosed.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return nil
	}
	ch.closed = true
	close(ch.done)
	if ch.cur != nil {
		ch.cur.kill()
		ch.cur = nil
	}
	return nil
}

// Ping connects if needed and stats the outbound and inbound directories.
func (ch *Channel) Ping(ctx context.Context) error {
	return ch.do(ctx, "ping", func(_ context.Context, cn *conn, _ func()) error {
		for _, d := range []string{ch.cfg.outDir, ch.cfg.inDir} {
			fi, err := cn.sftp.Stat(d)
			if err != nil {
				return fmt.Errorf("stat %q: %w", d, err)
			}
			if !fi.IsDir() {
				return final(fmt.Errorf("sftp: ping: %q is not a directory", d))
			}
		}
		return nil
	})
}

// checkName refuses names that could leave the configured directory.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("sftp: %s name %q is not a plain file name", what, name)
	}
	return nil
}

// tempName is the name a file is uploaded under before the rename. The dot
// hides it from the usual bank pickup patterns.
func tempName(name string) string { return "." + name + ".part" }

// Send uploads o to outbound_dir: first under ".<name>.part" (a leftover
// from an earlier attempt is replaced), checked against o.Size and o.SM3
// while streaming, fsynced where the server offers fsync@openssh.com,
// then renamed to the final name (posix-rename@openssh.com where offered,
// after checking the final name is free; plain rename otherwise, which
// refuses to overwrite) and stat'ed to check the size.
//
// If the final name already exists: same size and SM3 (or same size where
// the server refuses reading it back) returns its Receipt without sending;
// anything else is banks.ErrConflict.
//
// A connection failure, timeout or cancelled ctx once all bytes are
// written returns an error wrapping banks.ErrOutcomeUnknown: Probe
// before re-sending. Earlier failures leave at most the temporary file,
// never a final-named one, and are banks.Transient.
func (ch *Channel) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	if err := checkName("outbound", o.Name); err != nil {
		return banks.Receipt{}, err
	}
	if o.Open == nil {
		return banks.Receipt{}, fmt.Errorf("sftp: send %s: Outbound.Open is nil", o.Name)
	}
	dst := path.Join(ch.cfg.outDir, o.Name)
	tmp := path.Join(ch.cfg.outDir, tempName(o.Name))
	var committing atomic.Bool
	var rcpt banks.Receipt
	op := "send " + o.Name
	err := ch.do(ctx, op, func(ctx context.Context, cn *conn, touch func()) error {
		fc := cn.sftp
		// 1. Already delivered (an earlier attempt whose reply was lost)?
		if fi, err := fc.Stat(dst); err == nil {
			r, perr := ch.compare(ctx, cn, dst, fi, o, touch)
			switch {
			case perr != nil:
				return perr
			case r == banks.ProbeArrived:
				rcpt = banks.Receipt{Ref: dst, Size: fi.Size(), At: fi.ModTime()}
				ch.log.Info("already delivered; not sent again", "out", o)
				return nil
			default:
				return final(fmt.Errorf("sftp: %s: %q exists with other content: %w", op, dst, banks.ErrConflict))
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stat %q: %w", dst, err)
		}
		// 2. Upload to the temporary name.
		if err := fc.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove leftover %q: %w", tmp, err)
		}
		f, err := fc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("create %q: %w", tmp, err)
		}
		src, err := o.Open()
		if err != nil {
			_ = f.Close()
			_ = fc.Remove(tmp)
			return final(fmt.Errorf("sftp: %s: open source: %w", op, err))
		}
		h := sm3.New()
		sr := &sourceReader{ctx: ctx, r: io.TeeReader(src, h), touch: touch, half: o.Size / 2}
		n, err := f.ReadFromWithConcurrency(sr, 0)
		_ = src.Close()
		if err != nil {
			_ = f.Close()
			if sr.err != nil { // the source (or ctx), not the server
				_ = fc.Remove(tmp)
				return final(fmt.Errorf("sftp: %s: read source: %w", op, sr.err))
			}
			return fmt.Errorf("write %q: %w", tmp, err)
		}
		var sum [32]byte
		h.Sum(sum[:0])
		if n != o.Size || sum != o.SM3 {
			_ = f.Close()
			_ = fc.Remove(tmp)
			return final(fmt.Errorf("sftp: %s: source has %d bytes (want %d) or another SM3; nothing sent", op, n, o.Size))
		}
		// 3. Commit: from here a lost connection leaves the outcome unknown.
		committing.Store(true)
		touch()
		if cn.has("fsync@openssh.com") {
			if err := f.Sync(); err != nil {
				_ = f.Close()
				return fmt.Errorf("fsync %q: %w", tmp, err)
			}
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %q: %w", tmp, err)
		}
		touch()
		ch.step("before-rename")
		if err := ch.rename(cn, tmp, dst, o.Size); err != nil {
			return err
		}
		ch.step("after-rename")
		touch()
		fi, err := fc.Stat(dst)
		if err != nil {
			return fmt.Errorf("stat %q after rename: %w", dst, err)
		}
		if fi.Size() != o.Size {
			return final(fmt.Errorf("sftp: %s: %q has %d bytes after rename, want %d: %w", op, dst, fi.Size(), o.Size, banks.ErrOutcomeUnknown))
		}
		rcpt = banks.Receipt{Ref: dst, Size: fi.Size(), At: fi.ModTime()}
		return nil
	})
	if err != nil {
		// committing is read after do returned, i.e. after the connection
		// was closed on a timeout or cancel: if it is still false, no
		// rename can have been sent.
		if committing.Load() && !errors.Is(err, banks.ErrOutcomeUnknown) && !errors.Is(err, banks.ErrConflict) &&
			(banks.IsRetryable(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, banks.ErrClosed)) {
			err = fmt.Errorf("%w: %w", banks.ErrOutcomeUnknown, err)
		}
		return banks.Receipt{}, err
	}
	ch.log.Debug("delivered", "out", o, "ref", rcpt.Ref)
	return rcpt, nil
}

func (ch *Channel) step(name string) {
	if name == "before-rename" {
		failpoint.Hit(failpoint.UploadedBeforeRename)
	}
	if ch.hook != nil {
		ch.hook(name)
	}
}

// rename moves tmp to dst without ever overwriting dst.
func (ch *Channel) rename(cn *conn, tmp, dst string, size int64) error {
	fc := cn.sftp
	if cn.has("posix-rename@openssh.com") && !ch.noPosixRename {
		// posix-rename overwrites; Send checked dst was free just before,
		// and final names are ours alone (unique bank batch numbers).
		if err := fc.PosixRename(tmp, dst); err != nil {
			return fmt.Errorf("posix-rename %q: %w", tmp, err)
		}
		return nil
	}
	err := fc.Rename(tmp, dst)
	if err == nil {
		return nil
	}
	var status *sftp.StatusError
	if !errors.As(err, &status) && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("rename %q: %w", tmp, err) // no answer: classified by do
	}
	// The server refused. Either dst appeared meanwhile ("exists"), or an
	// earlier identical request already did it. Look before deciding.
	_, terr := fc.Stat(tmp)
	fi, derr := fc.Stat(dst)
	if errors.Is(terr, os.ErrNotExist) && derr == nil && fi.Size() == size {
		return nil
	}
	if derr == nil {
		_ = fc.Remove(tmp)
		return final(fmt.Errorf("sftp: rename %q: %q appeared meanwhile: %w", tmp, dst, banks.ErrConflict))
	}
	return fmt.Errorf("rename %q: %w", tmp, err)
}

// sourceReader reads the sealed bytes, notes progress and remembers its
// own errors so Send can tell a bad source from a bad connection.
type sourceReader struct {
	ctx   context.Context
	r     io.Reader
	touch func()
	err   error
	half  int64 // the mid-upload crash point fires past this many bytes
	n     int64
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.touch()
	if s.n += int64(n); s.n > s.half && s.half > 0 {
		failpoint.Hit(failpoint.MidUpload)
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// compare tells whether the remote file at p holds o's bytes: by size,
// then by SM3 of a read-back. Where the server refuses reading it back
// (permission denied), a size match counts as arrived.
func (ch *Channel) compare(ctx context.Context, cn *conn, p string, fi os.FileInfo, o *banks.Outbound, touch func()) (banks.ProbeResult, error) {
	if !fi.Mode().IsRegular() || fi.Size() != o.Size {
		return banks.ProbeMismatch, nil
	}
	f, err := cn.sftp.Open(p)
	if errors.Is(err, os.ErrPermission) {
		ch.log.Warn("remote file not readable; arrival judged by size only", "out", o)
		return banks.ProbeArrived, nil
	}
	if err != nil {
		return banks.ProbeUnknown, fmt.Errorf("open %q: %w", p, err)
	}
	defer f.Close()
	h := sm3.New()
	n, err := f.WriteTo(&progressWriter{ctx: ctx, w: h, touch: touch})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			ch.log.Warn("remote file not readable; arrival judged by size only", "out", o)
			return banks.ProbeArrived, nil
		}
		return banks.ProbeUnknown, fmt.Errorf("read back %q: %w", p, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if n != o.Size || sum != o.SM3 {
		return banks.ProbeMismatch, nil
	}
	return banks.ProbeArrived, nil
}

type progressWriter struct {
	ctx   context.Context
	w     io.Writer
	touch func()
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	p.touch()
	return p.w.Write(b)
}

// Probe asks whether o is in outbound_dir under its final name:
// banks.ProbeNotArrived when absent (a leftover temporary file does not
// count), banks.ProbeMismatch when present with another size or SM3,
// banks.ProbeArrived when the size and the SM3 of the read-back match, or
// when the size matches and the server refuses reading it back (the bank
// may make delivered files write-only; then size is all we can know).
// A bank that moves delivered files away at once makes NotArrived
// unreliable: such banks need a status query, not this probe.
func (ch *Channel) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	if err := checkName("outbound", o.Name); err != nil {
		return banks.ProbeUnknown, err
	}
	dst := path.Join(ch.cfg.outDir, o.Name)
	res := banks.ProbeUnknown
	err := ch.do(ctx, "probe "+o.Name, func(ctx context.Context, cn *conn, touch func()) error {
		fi, err := cn.sftp.Stat(dst)
		if errors.Is(err, os.ErrNotExist) {
			res = banks.ProbeNotArrived
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat %q: %w", dst, err)
		}
		r, err := ch.compare(ctx, cn, dst, fi, o, touch)
		res = r
		return err
	})
	if err != nil {
		return banks.ProbeUnknown, err
	}
	return res, nil
}

// ListFeedback lists regular files in inbound_dir whose name matches
// feedback_pattern, does not start with "." (uploads in progress by
// convention), whose remote modification time is at least min_age old,
// and whose size and modification time did not change across settle. The
// age uses the server's clock for the file and ours for now: keep clocks
// in sync (NTP) or min_age generous.
func (ch *Channel) ListFeedback(ctx context.Context) ([]banks.FeedbackRef, error) {
	var out []banks.FeedbackRef
	err := ch.do(ctx, "list feedback", func(ctx context.Context, cn *conn, touch func()) error {
		infos, err := cn.sftp.ReadDirContext(ctx, ch.cfg.inDir)
		if err != nil {
			return fmt.Errorf("read dir %q: %w", ch.cfg.inDir, err)
		}
		now := time.Now()
		var cands []os.FileInfo
		for _, fi := range infos {
			name := fi.Name()
			if !fi.Mode().IsRegular() || strings.HasPrefix(name, ".") {
				continue
			}
			if ok, _ := path.Match(ch.cfg.pattern, name); !ok {
				continue
			}
			if now.Sub(fi.ModTime()) < ch.cfg.minAge {
				continue
			}
			cands = append(cands, fi)
		}
		if len(cands) > 0 && ch.cfg.settle > 0 {
			t := time.NewTimer(ch.cfg.settle)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return final(fmt.Errorf("sftp: list feedback: %w", ctx.Err()))
			}
			touch()
		}
		for _, fi := range cands {
			again, err := cn.sftp.Stat(path.Join(ch.cfg.inDir, fi.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("stat %q: %w", fi.Name(), err)
			}
			touch()
			if ch.cfg.settle > 0 && (again.Size() != fi.Size() || !again.ModTime().Equal(fi.ModTime())) {
				ch.log.Info("return file still changing; skipped this round", "file", fi.Name())
				continue
			}
			out = append(out, banks.FeedbackRef{ID: fi.Name(), Size: again.Size(), ModTime: again.ModTime()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// OpenFeedback opens inbound_dir/ref.ID; banks.ErrNotFound when it is not
// there. The reader stops with ctx's error once ctx ends and with a
// banks.Transient error on connection failure; it does not hold one of the
// max_conns slots.
func (ch *Channel) OpenFeedback(ctx context.Context, ref banks.FeedbackRef) (io.ReadCloser, error) {
	if err := checkName("feedback", ref.ID); err != nil {
		return nil, err
	}
	p := path.Join(ch.cfg.inDir, ref.ID)
	var f *sftp.File
	err := ch.do(ctx, "open feedback "+ref.ID, func(ctx context.Context, cn *conn, _ func()) error {
		h, err := cn.sftp.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return final(fmt.Errorf("sftp: open feedback %q: %w", ref.ID, banks.ErrNotFound))
		}
		if err != nil {
			return fmt.Errorf("open %q: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			// do has given up on us: nobody will close h but us.
			_ = h.Close()
			return final(fmt.Errorf("sftp: open feedback %q: %w", ref.ID, err))
		}
		f = h
		return nil
	})
	if err != nil {
		// f is not read here: after a cancel, fn may still be running.
		return nil, err
	}
	return &feedbackReader{ctx: ctx, f: f, name: ref.ID}, nil
}

type feedbackReader struct {
	ctx  context.Context
	f    *sftp.File
	name string
}

func (r *feedbackReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("sftp: read feedback %q: %w", r.name, err)
	}
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		return n, banks.Transient(fmt.Errorf("sftp: read feedback %q: %w", r.name, err))
	}
	return n, err
}

func (r *feedbackReader) Close() error { return r.f.Close() }

// AckFeedback moves inbound_dir/ref.ID into archive_dir (created when
// missing). Already archived (gone from inbound_dir, present in the
// archive) is success; gone from both is banks.ErrNotFound. If the archive
// already holds an older file of the same name, the new one is archived
// as "<name>.<unix nanoseconds>" so neither is lost.
func (ch *Channel) AckFeedback(ctx context.Context, ref banks.FeedbackRef) error {
	if err := checkName("feedback", ref.ID); err != nil {
		return err
	}
	src := path.Join(ch.cfg.inDir, ref.ID)
	dst := path.Join(ch.cfg.archiveDir, ref.ID)
	return ch.do(ctx, "ack feedback "+ref.ID, func(_ context.Context, cn *conn, _ func()) error {
		fc := cn.sftp
		if err := fc.MkdirAll(ch.cfg.archiveDir); err != nil {
			return fmt.Errorf("mkdir %q: %w", ch.cfg.archiveDir, err)
		}
		if _, err := fc.Stat(src); errors.Is(err, os.ErrNotExist) {
			if _, err := fc.Stat(dst); err == nil {
				return nil
			} else if errors.Is(err, os.ErrNotExist) {
				return final(fmt.Errorf("sftp: ack feedback %q: %w", ref.ID, banks.ErrNotFound))
			} else {
				return fmt.Errorf("stat %q: %w", dst, err)
			}
		} else if err != nil {
			return fmt.Errorf("stat %q: %w", src, err)
		}
		target := dst
		if _, err := fc.Stat(dst); err == nil {
			target = fmt.Sprintf("%s.%d", dst, time.Now().UnixNano())
		}
		if err := fc.Rename(src, target); err != nil {
			// A concurrent ack may have won the race.
			if _, serr := fc.Stat(src); errors.Is(serr, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("rename %q to %q: %w", src, target, err)
		}
		return nil
	})
}
