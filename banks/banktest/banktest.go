// Package banktest is the conformance suite every bank channel plugin
// passes: Run drives a banks.Channel against a far side the test can also
// see directly (BankSide), and checks the contract written on
// banks.Channel, banks.Prober and the sentinel errors.
//
// It owns no plugin code and starts no servers: each plugin's own test
// starts its servers (in-process and real) and calls Run once per server.
package banktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
)

// Opts configures one run of the suite.
type Opts struct {
	// New returns a fresh channel to the far side; Run closes it. Each
	// case calls New once.
	New func(t *testing.T) banks.Channel
	// Bank is the far side as the test sees it.
	Bank BankSide
	// MinAge is how old feedback must be before the channel lists it (its
	// min_age option); it must be > 0 so "too young" can be tested, unless
	// Messages is set. The channel must list feedback named
	// "FB_<anything>.txt".
	MinAge time.Duration
	// Messages says the far side takes messages, not files (AMQP). Then
	// the cases that need a file system on the far side are skipped with
	// their reason: a channel cannot see what a bank's consumer already
	// holds under a name (no ErrConflict; a re-sent message carries the
	// same message id and the bank takes it once), and feedback messages
	// have no age (no min_age). Acknowledged feedback is checked through
	// Archived after the channel is closed (a held, unacknowledged message
	// is invisible to the far side until then). Everything else runs as
	// for files: exact bytes, no leftovers, bad sources refused, the probe
	// lifecycle (Replace changes what the bank recorded), cancellation,
	// feedback listing, opening, acknowledgement and ErrNotFound.
	Messages bool
	// IgnoredFeedbackName, when set, is an old-enough feedback name the
	// channel's pattern must not list.
	IgnoredFeedbackName string
	// BigSize is the size of the large-file case (default 5 MB).
	BigSize int
}

// BankSide gives the test direct access to the far side, e.g. the
// directories an SFTP server serves.
type BankSide interface {
	// Received returns every file in the delivery area (final names and
	// anything else a plugin left there, such as temporary files).
	Received(t *testing.T) map[string][]byte
	// Replace overwrites a delivered file as if the bank had changed it.
	Replace(t *testing.T, name string, data []byte)
	// PutFeedback makes a return file (or message) available now.
	PutFeedback(t *testing.T, name string, data []byte)
	// Backdate makes the feedback item look age old.
	Backdate(t *testing.T, name string, age time.Duration)
	// Archived lists the names of the acknowledged feedback items.
	Archived(t *testing.T) []string
}

// NewOutbound builds an Outbound over data held in memory.
func NewOutbound(bank, name string, data []byte) *banks.Outbound {
	var sum [32]byte
	h := sm3.New()
	h.Write(data)
	h.Sum(sum[:0])
	return &banks.Outbound{
		Bank:        bank,
		BankBatchNo: strings.TrimSuffix(name, ".dat"),
		Name:        name,
		Size:        int64(len(data)),
		SM3:         sum,
		Open:        func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}

// RandomBytes returns n random bytes.
func RandomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

type suite struct {
	opts Opts
	// token makes names unique per Run, so that several runs may share a
	// far side.
	token string
}

// Run runs every case as a subtest. Cases run one after the other.
func Run(t *testing.T, opts Opts) {
	if opts.New == nil || opts.Bank == nil {
		t.Fatal("banktest: Opts.New and Opts.Bank are required")
	}
	if opts.MinAge <= 0 && !opts.Messages {
		t.Fatal("banktest: Opts.MinAge must be > 0")
	}
	if opts.BigSize == 0 {
		opts.BigSize = 5 << 20
	}
	s := &suite{opts: opts, token: fmt.Sprintf("%x", RandomBytes(t, 3))}
	cases := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"SendExactBytesNoLeftovers", s.sendExact},
		{"SendTwiceSameIsSafe", s.sendTwice},
		{"SendOtherBytesSameNameConflicts", s.sendConflict},
		{"SendBadSourceRefused", s.sendBadSource},
		{"ProbeLifecycle", s.probe},
		{"BigFile", s.bigFile},
		{"ConcurrentSends", s.concurrent},
		{"CancelledContext", s.cancelled},
		{"CancelMidSend", s.cancelMidSend},
		{"FeedbackLifecycle", s.feedback},
		{"FeedbackNotFound", s.feedbackNotFound},
		{"Closed", s.closed},
	}
	for _, c := range cases {
		t.Run(c.name, c.fn)
	}
}

func (s *suite) channel(t *testing.T) banks.Channel {
	t.Helper()
	ch := s.opts.New(t)
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func (s *suite) name(base string) string { return fmt.Sprintf("%s_%s.dat", base, s.token) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkDelivered asserts the far side holds exactly data under name and
// nothing else whose name mentions name's stem (no temporary leftovers).
func (s *suite) checkDelivered(t *testing.T, name string, data []byte) {
	t.Helper()
	got := s.opts.Bank.Received(t)
	b, ok := got[name]
	if !ok {
		t.Fatalf("far side lacks %q; has %v", name, keys(got))
	}
	if !bytes.Equal(b, data) {
		t.Fatalf("far side %q: %d bytes, differ from the %d sent", name, len(b), len(data))
	}
	stem := strings.TrimSuffix(name, ".dat")
	for k := range got {
		if k != name && strings.Contains(k, stem) {
			t.Errorf("leftover %q next to %q", k, name)
		}
	}
}

func (s *suite) checkAbsent(t *testing.T, name string) {
	t.Helper()
	if _, ok := s.opts.Bank.Received(t)[name]; ok {
		t.Fatalf("far side has final name %q, want none", name)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *suite) sendExact(t *testing.T) {
	ch := s.channel(t)
	data := RandomBytes(t, 70_001)
	o := NewOutbound("TEST", s.name("exact"), data)
	r, err := ch.Send(ctxT(t), o)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r.Size != o.Size || r.Ref == "" {
		t.Errorf("Receipt = %+v, want Size %d and a Ref", r, o.Size)
	}
	s.checkDelivered(t, o.Name, data)

	empty := NewOutbound("TEST", s.name("empty"), nil)
	if _, err := ch.Send(ctxT(t), empty); err != nil {
		t.Fatalf("Send of an empty file: %v", err)
	}
	s.checkDelivered(t, empty.Name, []byte{})
}

func (s *suite) sendTwice(t *testing.T) {
	ch := s.channel(t)
	data := RandomBytes(t, 4096)
	o := NewOutbound("TEST", s.name("twice"), data)
	r1, err := ch.Send(ctxT(t), o)
	if err != nil {
		t.Fatalf("first Send: %v", err)
	}
	r2, err := ch.Send(ctxT(t), o)
	if err != nil {
		t.Fatalf("second Send of the same Outbound: %v (documented: returns the existing delivery)", err)
	}
	if r1.Ref != r2.Ref || r2.Size != o.Size {
		t.Errorf("receipts differ: %+v then %+v", r1, r2)
	}
	s.checkDelivered(t, o.Name, data)
}

func (s *suite) sendConflict(t *testing.T) {
	if s.opts.Messages {
		t.Skip("message channel: the channel cannot see what the bank's consumer holds under a name; " +
			"a second message with the same message id is the bank's duplicate to refuse, and Probe reports mismatch")
	}
	ch := s.channel(t)
	name := s.name("conflict")
	first := RandomBytes(t, 1000)
	if _, err := ch.Send(ctxT(t), NewOutbound("TEST", name, first)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for _, other := range [][]byte{RandomBytes(t, 1000), RandomBytes(t, 999)} {
		_, err := ch.Send(ctxT(t), NewOutbound("TEST", name, other))
		if !errors.Is(err, banks.ErrConflict) {
			t.Errorf("Send of other bytes (%d) under a delivered name: err = %v, want ErrConflict", len(other), err)
		}
	}
	s.checkDelivered(t, name, first)
}

func (s *suite) sendBadSource(t *testing.T) {
	ch := s.channel(t)
	// A source whose bytes do not match Size/SM3 is refused before anything
	// lands under the final name.
	bad := NewOutbound("TEST", s.name("badsource"), RandomBytes(t, 100))
	bad.SM3[0] ^= 1
	if _, err := ch.Send(ctxT(t), bad); err == nil {
		t.Error("Send with a wrong SM3 succeeded")
	}
	s.checkAbsent(t, bad.Name)
}

func (s *suite) prober(t *testing.T, ch banks.Channel) banks.Prober {
	p, ok := ch.(banks.Prober)
	if !ok {
		t.Skip("channel does not implement banks.Prober")
	}
	return p
}

func (s *suite) probe(t *testing.T) {
	ch := s.channel(t)
	p := s.prober(t, ch)
	data := RandomBytes(t, 33_333)
	o := NewOutbound("TEST", s.name("probe"), data)
	want := func(step string, w banks.ProbeResult) {
		t.Helper()
		got, err := p.Probe(ctxT(t), o)
		if err != nil || got != w {
			t.Fatalf("%s: Probe = %v, %v; want %v", step, got, err, w)
		}
	}
	want("before", banks.ProbeNotArrived)
	if _, err := ch.Send(ctxT(t), o); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want("after", banks.ProbeArrived)
	changed := slices.Clone(data)
	changed[100] ^= 0xff
	s.opts.Bank.Replace(t, o.Name, changed)
	want("same size, other bytes", banks.ProbeMismatch)
	s.opts.Bank.Replace(t, o.Name, data[:1000])
	want("other size", banks.ProbeMismatch)
}

func (s *suite) bigFile(t *testing.T) {
	ch := s.channel(t)
	data := RandomBytes(t, s.opts.BigSize)
	o := NewOutbound("TEST", s.name("big"), data)
	if _, err := ch.Send(ctxT(t), o); err != nil {
		t.Fatalf("Send %d bytes: %v", len(data), err)
	}
	s.checkDelivered(t, o.Name, data)
	if p, ok := ch.(banks.Prober); ok {
		if r, err := p.Probe(ctxT(t), o); err != nil || r != banks.ProbeArrived {
			t.Errorf("Probe = %v, %v; want arrived", r, err)
		}
	}
}

func (s *suite) concurrent(t *testing.T) {
	ch := s.channel(t)
	const n = 8
	outs := make([]*banks.Outbound, n)
	datas := make([][]byte, n)
	for i := range outs {
		datas[i] = RandomBytes(t, 20_000+i)
		outs[i] = NewOutbound("TEST", s.name(fmt.Sprintf("conc%d", i)), datas[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ch.Send(ctxT(t), outs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Send %d: %v", i, err)
			continue
		}
		s.checkDelivered(t, outs[i].Name, datas[i])
	}
}

// quick asserts that f returns within a few seconds with an error
// wrapping want.
func quick(t *testing.T, what string, want error, f func() error) {
	t.Helper()
	start := time.Now()
	err := f()
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("%s took %s after cancel, want prompt", what, el)
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func (s *suite) cancelled(t *testing.T) {
	ch := s.channel(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := NewOutbound("TEST", s.name("cancelled"), RandomBytes(t, 100))
	quick(t, "Send", context.Canceled, func() error { _, err := ch.Send(ctx, o); return err })
	quick(t, "ListFeedback", context.Canceled, func() error { _, err := ch.ListFeedback(ctx); return err })
	ref := banks.FeedbackRef{ID: "FB_none.txt"}
	quick(t, "OpenFeedback", context.Canceled, func() error { _, err := ch.OpenFeedback(ctx, ref); return err })
	quick(t, "AckFeedback", context.Canceled, func() error { return ch.AckFeedback(ctx, ref) })
	if p, ok := ch.(banks.Prober); ok {
		quick(t, "Probe", context.Canceled, func() error { _, err := p.Probe(ctx, o); return err })
	}
	if p, ok := ch.(banks.Pinger); ok {
		quick(t, "Ping", context.Canceled, func() error { return p.Ping(ctx) })
	}
	s.checkAbsent(t, o.Name)
	// The channel still works afterwards.
	if _, err := ch.Send(ctxT(t), o); err != nil {
		t.Fatalf("Send after cancelled calls: %v", err)
	}
}

// stallingReader yields head, then blocks until release is closed.
type stallingReader struct {
	head    []byte
	release <-chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	<-r.release
	return 0, errors.New("banktest: source released")
}

func (r *stallingReader) Close() error { return nil }

func (s *suite) cancelMidSend(t *testing.T) {
	ch := s.channel(t)
	data := RandomBytes(t, 256<<10)
	o := NewOutbound("TEST", s.name("midsend"), data)
	stalled := *o
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stalled.Open = func() (io.ReadCloser, error) {
		return &stallingReader{head: slices.Clone(data[:100<<10]), release: release}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	quick(t, "Send with a stalled source", context.Canceled, func() error {
		_, err := ch.Send(ctx, &stalled)
		if errors.Is(err, banks.ErrOutcomeUnknown) {
			t.Errorf("cancel before the bytes were complete: %v, want a known outcome", err)
		}
		return err
	})
	s.checkAbsent(t, o.Name)
	if p, ok := ch.(banks.Prober); ok {
		if r, err := p.Probe(ctxT(t), o); err != nil || r != banks.ProbeNotArrived {
			t.Errorf("Probe after cancelled Send = %v, %v; want not_arrived", r, err)
		}
	}
	// A retry replaces whatever the cancelled attempt left behind.
	if _, err := ch.Send(ctxT(t), o); err != nil {
		t.Fatalf("Send after cancelled Send: %v", err)
	}
	s.checkDelivered(t, o.Name, data)
}

func listed(t *testing.T, ch banks.Channel, id string) (banks.FeedbackRef, bool) {
	t.Helper()
	refs, err := ch.ListFeedback(ctxT(t))
	if err != nil {
		t.Fatalf("ListFeedback: %v", err)
	}
	for _, r := range refs {
		if r.ID == id {
			return r, true
		}
	}
	return banks.FeedbackRef{}, false
}

func (s *suite) feedback(t *testing.T) {
	ch := s.channel(t)
	bank := s.opts.Bank
	id := fmt.Sprintf("FB_%s.txt", s.token)
	data := []byte("1|6222****0123|10000|S|成功\n2|6222****0456|2000|F|户名与账号不符\n")
	bank.PutFeedback(t, id, data)
	if s.opts.Messages {
		t.Log("message channel: feedback messages have no age; the min_age check is skipped")
	} else if _, ok := listed(t, ch, id); ok {
		t.Fatalf("feedback younger than MinAge %s was listed", s.opts.MinAge)
	}
	old := s.opts.MinAge + time.Minute
	bank.Backdate(t, id, old)
	if s.opts.IgnoredFeedbackName != "" {
		bank.PutFeedback(t, s.opts.IgnoredFeedbackName, []byte("not ours"))
		bank.Backdate(t, s.opts.IgnoredFeedbackName, old)
	}
	ref, ok := listed(t, ch, id)
	if !ok {
		t.Fatalf("old enough feedback %q not listed", id)
	}
	if ref.Size != int64(len(data)) {
		t.Errorf("ref.Size = %d, want %d", ref.Size, len(data))
	}
	if s.opts.IgnoredFeedbackName != "" {
		if _, ok := listed(t, ch, s.opts.IgnoredFeedbackName); ok {
			t.Errorf("%q listed though the pattern excludes it", s.opts.IgnoredFeedbackName)
		}
	}
	rc, err := ch.OpenFeedback(ctxT(t), ref)
	if err != nil {
		t.Fatalf("OpenFeedback: %v", err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("OpenFeedback bytes = %q, %v; want %q", got, err, data)
	}
	if err := ch.AckFeedback(ctxT(t), ref); err != nil {
		t.Fatalf("AckFeedback: %v", err)
	}
	if !s.opts.Messages && !slices.Contains(bank.Archived(t), id) {
		t.Errorf("Archived() = %v, lacks %q", bank.Archived(t), id)
	}
	if _, ok := listed(t, ch, id); ok {
		t.Error("acknowledged feedback listed again")
	}
	if err := ch.AckFeedback(ctxT(t), ref); err != nil {
		t.Errorf("second AckFeedback: %v, want nil (idempotent)", err)
	}
	if s.opts.Messages {
		// Unacknowledged messages go back to the queue when the channel
		// closes: only then does the far side show that the ack held.
		if err := ch.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !slices.Contains(bank.Archived(t), id) {
			t.Errorf("Archived() after Close = %v, lacks %q", bank.Archived(t), id)
		}
	}
}

func (s *suite) feedbackNotFound(t *testing.T) {
	ch := s.channel(t)
	ref := banks.FeedbackRef{ID: fmt.Sprintf("FB_missing_%s.txt", s.token)}
	if _, err := ch.OpenFeedback(ctxT(t), ref); !errors.Is(err, banks.ErrNotFound) {
		t.Errorf("OpenFeedback(missing): err = %v, want ErrNotFound", err)
	}
	if err := ch.AckFeedback(ctxT(t), ref); !errors.Is(err, banks.ErrNotFound) {
		t.Errorf("AckFeedback(missing): err = %v, want ErrNotFound", err)
	}
}

func (s *suite) closed(t *testing.T) {
	ch := s.opts.New(t)
	if err := ch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ch.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	o := NewOutbound("TEST", s.name("closed"), []byte("x"))
	if _, err := ch.Send(ctxT(t), o); !errors.Is(err, banks.ErrClosed) {
		t.Errorf("Send after Close: err = %v, want ErrClosed", err)
	}
	if _, err := ch.ListFeedback(ctxT(t)); !errors.Is(err, banks.ErrClosed) {
		t.Errorf("ListFeedback after Close: err = %v, want ErrClosed", err)
	}
	s.checkAbsent(t, o.Name)
}
