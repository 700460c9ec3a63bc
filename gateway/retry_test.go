package gateway

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"yktgw/banks"
)

type fakeChannel struct {
	fails     int // the first fails calls fail
	permanent bool
	calls     map[string]int
}

func (f *fakeChannel) fail(op string) error {
	f.calls[op]++
	if f.calls[op] <= f.fails {
		if f.permanent {
			return errors.New("permanent")
		}
		return banks.Transient(errors.New("blip"))
	}
	return nil
}

func (f *fakeChannel) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	return banks.Receipt{}, f.fail("send")
}
func (f *fakeChannel) ListFeedback(ctx context.Context) ([]banks.FeedbackRef, error) {
	return []banks.FeedbackRef{{ID: "x"}}, f.fail("list")
}
func (f *fakeChannel) OpenFeedback(ctx context.Context, ref banks.FeedbackRef) (io.ReadCloser, error) {
	if err := f.fail("open"); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("x")), nil
}
func (f *fakeChannel) AckFeedback(ctx context.Context, ref banks.FeedbackRef) error {
	return f.fail("ack")
}
func (f *fakeChannel) Close() error { return nil }

type fakeProber struct{ *fakeChannel }

func (f fakeProber) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	return banks.ProbeArrived, f.fail("probe")
}

type fakePinger struct{ *fakeChannel }

func (f fakePinger) Ping(ctx context.Context) error { return f.fail("ping") }

type fakeBoth struct{ *fakeChannel }

func (f fakeBoth) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	return banks.ProbeArrived, f.fail("probe")
}
func (f fakeBoth) Ping(ctx context.Context) error { return f.fail("ping") }

// The decorator keeps every optional ability of what it wraps, and adds none.
func TestRetryKeepsAbilities(t *testing.T) {
	for _, c := range []struct {
		name           string
		ch             banks.Channel
		prober, pinger bool
	}{
		{"plain", &fakeChannel{calls: map[string]int{}}, false, false},
		{"prober", fakeProber{&fakeChannel{calls: map[string]int{}}}, true, false},
		{"pinger", fakePinger{&fakeChannel{calls: map[string]int{}}}, false, true},
		{"both", fakeBoth{&fakeChannel{calls: map[string]int{}}}, true, true},
	} {
		w := withRetry(c.ch, 3, time.Millisecond)
		_, isProber := w.(banks.Prober)
		_, isPinger := w.(banks.Pinger)
		if isProber != c.prober || isPinger != c.pinger {
			t.Errorf("%s: wrapped prober=%v pinger=%v, want %v %v", c.name, isProber, isPinger, c.prober, c.pinger)
		}
	}
}

func TestRetryRetriesIdempotentCallsOnly(t *testing.T) {
	ctx := context.Background()
	f := &fakeChannel{fails: 2, calls: map[string]int{}}
	w := withRetry(fakeBoth{f}, 3, time.Millisecond)
	if _, err := w.ListFeedback(ctx); err != nil || f.calls["list"] != 3 {
		t.Fatalf("list: %v after %d calls", err, f.calls["list"])
	}
	if rc, err := w.OpenFeedback(ctx, banks.FeedbackRef{}); err != nil || f.calls["open"] != 3 {
		t.Fatalf("open: %v after %d calls", err, f.calls["open"])
	} else {
		rc.Close()
	}
	if err := w.AckFeedback(ctx, banks.FeedbackRef{}); err != nil || f.calls["ack"] != 3 {
		t.Fatalf("ack: %v", err)
	}
	if res, err := w.(banks.Prober).Probe(ctx, &banks.Outbound{}); err != nil || res != banks.ProbeArrived || f.calls["probe"] != 3 {
		t.Fatalf("probe: %v %v", res, err)
	}
	if err := w.(banks.Pinger).Ping(ctx); err != nil || f.calls["ping"] != 3 {
		t.Fatalf("ping: %v", err)
	}
	// Send is never retried here: delivery retries are durable, in the dispatcher.
	if _, err := w.Send(ctx, &banks.Outbound{}); err == nil || f.calls["send"] != 1 {
		t.Fatalf("send: %v after %d calls", err, f.calls["send"])
	}
	// A permanent error is not retried; too many transient ones give up.
	p := &fakeChannel{fails: 5, permanent: true, calls: map[string]int{}}
	if _, err := withRetry(p, 3, time.Millisecond).ListFeedback(ctx); err == nil || p.calls["list"] != 1 {
		t.Fatalf("permanent: %v after %d calls", err, p.calls["list"])
	}
	q := &fakeChannel{fails: 5, calls: map[string]int{}}
	if _, err := withRetry(q, 3, time.Millisecond).ListFeedback(ctx); !banks.IsRetryable(err) || q.calls["list"] != 3 {
		t.Fatalf("gave up: %v after %d calls", err, q.calls["list"])
	}
}
