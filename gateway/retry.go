package gateway

import (
	"context"
	"io"
	"time"

	"yktgw/banks"
)

// withRetry decorates a channel: the idempotent calls (ListFeedback,
// OpenFeedback, AckFeedback, Probe, Ping) are retried a few times with
// backoff on retryable errors, so a network blip does not cost a whole poll
// round. Send is passed through untouched: a delivery's retries are durable
// state in the dispatcher (recorded attempts, backoff, probe before any
// re-send), never a loop in memory. The decorator keeps exactly the optional
// abilities of what it wraps: a Prober stays a Prober, a channel without
// one does not gain one.
func withRetry(ch banks.Channel, attempts int, base time.Duration) banks.Channel {
	r := &retrying{ch: ch, attempts: max(attempts, 1), base: base}
	p, isProber := ch.(banks.Prober)
	g, isPinger := ch.(banks.Pinger)
	switch {
	case isProber && isPinger:
		return &struct {
			*retrying
			retryProber
			retryPinger
		}{r, retryProber{r, p}, retryPinger{r, g}}
	case isProber:
		return &struct {
			*retrying
			retryProber
		}{r, retryProber{r, p}}
	case isPinger:
		return &struct {
			*retrying
			retryPinger
		}{r, retryPinger{r, g}}
	}
	return r
}

type retrying struct {
	ch       banks.Channel
	attempts int
	base     time.Duration
}

// Unwrap returns the decorated channel.
func (r *retrying) Unwrap() banks.Channel { return r.ch }

func (r *retrying) retry(ctx context.Context, fn func() error) error {
	var err error
	wait := r.base
	for i := 0; i < r.attempts; i++ {
		if err = fn(); err == nil || !banks.IsRetryable(err) || i == r.attempts-1 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
	return err
}

func (r *retrying) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	return r.ch.Send(ctx, o)
}

func (r *retrying) ListFeedback(ctx context.Context) (refs []banks.FeedbackRef, err error) {
	err = r.retry(ctx, func() error { refs, err = r.ch.ListFeedback(ctx); return err })
	return refs, err
}

func (r *retrying) OpenFeedback(ctx context.Context, ref banks.FeedbackRef) (rc io.ReadCloser, err error) {
	err = r.retry(ctx, func() error { rc, err = r.ch.OpenFeedback(ctx, ref); return err })
	return rc, err
}

func (r *retrying) AckFeedback(ctx context.Context, ref banks.FeedbackRef) error {
	return r.retry(ctx, func() error { return r.ch.AckFeedback(ctx, ref) })
}

func (r *retrying) Close() error { return r.ch.Close() }

type retryProber struct {
	r *retrying
	p banks.Prober
}

func (p retryProber) Probe(ctx context.Context, o *banks.Outbound) (res banks.ProbeResult, err error) {
	err = p.r.retry(ctx, func() error { res, err = p.p.Probe(ctx, o); return err })
	return res, err
}

type retryPinger struct {
	r *retrying
	p banks.Pinger
}

func (p retryPinger) Ping(ctx context.Context) error {
	return p.r.retry(ctx, func() error { return p.p.Ping(ctx) })
}
