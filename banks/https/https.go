// Package https is the "https" bank channel: a bank's direct-connect API
// over mutual TLS. Every request carries an SM2 signature (over method,
// request URI, timestamp, nonce and the body's SM3, see RequestString) and
// every answer of the bank must carry the bank's SM2 signature (see
// ResponseString), checked against its pinned certificate. A batch is
// POSTed with an idempotency key equal to our bank batch number; whether
// it arrived is asked from the bank's query endpoint; return files are
// either polled from the bank (list, fetch, ack) or pushed by the bank to
// the gateway's callback (gateway/callback.go verifies those with Verify*
// from this package).
//
// The bank API this channel speaks (paths under the base_url option):
//
//	POST <base>/batches/{bank_batch_no}?name={file name}   body: sealed bytes
//	     200/201 DeliveryStatus | 409 same key, other content | 5xx/429 retry
//	GET  <base>/batches/{bank_batch_no}    200 DeliveryStatus | 404 unknown
//	GET  <base>/feedback                   200 FeedbackList (ready return files)
//	GET  <base>/feedback/{id}              200 sealed bytes | 404
//	POST <base>/feedback/{id}/ack          200 | 404 never existed
//	GET  <base>/ping                       200
//
// It owns that protocol only. It must not keep delivery state, retry, or
// decide what to re-send (gateway's job); it never talks to a server whose
// certificate does not chain to the pinned CA, never trusts an unsigned
// answer, and never uses plain HTTP. Go's crypto/tls speaks no SM2/TLCP
// (GB/T 38636): the transport certificates are ordinary ECDSA/RSA ones, the
// national algorithms are in the application-level signatures and in the
// sealed payload.
package https

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
)

// Kind is the channel kind name this package registers.
const Kind = "https"

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

// DeliveryStatus is the bank's word on one delivery (answer to Send and to
// the query endpoint).
type DeliveryStatus struct {
	Ref         string    `json:"ref"`
	BankBatchNo string    `json:"bank_batch_no"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	SM3         string    `json:"sm3"` // hex
	ReceivedAt  time.Time `json:"received_at"`
}

// FeedbackItem is one return file ready at the bank.
type FeedbackItem struct {
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	ReadyAt time.Time `json:"ready_at"`
}

// FeedbackList is the answer of GET <base>/feedback.
type FeedbackList struct {
	Items []FeedbackItem `json:"items"`
}

// APIError is the body of a bank's error answer.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Limits on what is read of an answer.
const (
	maxAnswer   = 1 << 20
	maxFeedback = 512 << 20
)

// Channel is an HTTPS bank channel. It is safe for concurrent use and runs
// at most max_conns requests at once.
type Channel struct {
	cfg    *config
	log    *slog.Logger
	client *http.Client
	tr     *http.Transport
	sem    chan struct{}
	now    func() time.Time

	mu     sync.Mutex
	closed bool
}

// New checks the options (see OptionSpecs; call through banks.New to get
// defaults filled in) and loads the keys and certificates. It does not
// connect: the first request (or Ping) does. The channel logs to
// banks.LoggerFrom(ctx).
func New(ctx context.Context, o banks.Options) (*Channel, error) {
	full, err := pluginSpec().Validate(o)
	if err != nil {
		return nil, err
	}
	cfg, err := parseOptions(full)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       cfg.tls,
		TLSHandshakeTimeout:   cfg.timeout,
		ResponseHeaderTimeout: cfg.timeout,
		MaxConnsPerHost:       cfg.maxConns,
		MaxIdleConnsPerHost:   cfg.maxConns,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	return &Channel{
		cfg:    cfg,
		log:    banks.LoggerFrom(ctx).With("channel", Kind, "base_url", cfg.base.String()),
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		tr:     tr,
		sem:    make(chan struct{}, cfg.maxConns),
		now:    time.Now,
	}, nil
}

func pluginSpec() banks.Plugin {
	return banks.Plugin{Name: Kind, New: func(context.Context, banks.Options) (banks.Channel, error) { return nil, nil }, Options: OptionSpecs}
}

// FeedbackMode is the feedback option: FeedbackPoll or FeedbackPush.
func (ch *Channel) FeedbackMode() string { return ch.cfg.feedback }

// Close drops idle connections; later calls return banks.ErrClosed.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.closed {
		ch.closed = true
		ch.tr.CloseIdleConnections()
	}
	return nil
}

// enter checks the channel is open and ctx alive, and takes a slot.
func (ch *Channel) enter(ctx context.Context) (func(), error) {
	ch.mu.Lock()
	closed := ch.closed
	ch.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("https: %w", banks.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	select {
	case ch.sem <- struct{}{}:
		return func() { <-ch.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("https: %w", ctx.Err())
	}
}

func (ch *Channel) url(p string, q url.Values) string {
	u := *ch.cfg.base
	u.Path = ch.cfg.base.Path + p
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}

// answer is a response read in full, signature checked.
type answer struct {
	status int
	body   []byte
	signed bool // the bank's signature verified
	sigErr error
}

// do sends a signed request and reads and verifies the answer. body is
// nil for no body. A transport failure is returned as is (the caller
// classifies it).
func (ch *Channel) do(ctx context.Context, method, u string, body io.Reader, size int64, sum [32]byte, hdr http.Header, limit int64) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	if body == nil || size == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if err := SignRequest(req, ch.cfg.signKey, ch.cfg.uid, ch.now(), sum); err != nil {
		return nil, fmt.Errorf("https: %w", err)
	}
	res, err := ch.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("https: %s %s: answer larger than %d bytes", method, req.URL.Path, limit)
	}
	a := &answer{status: res.StatusCode, body: b}
	a.sigErr = VerifyResponse(res, req.URL.RequestURI(), req.Header.Get(HeaderNonce), b, ch.cfg.bankCert, ch.cfg.uid, ch.now(), ch.cfg.skew)
	a.signed = a.sigErr == nil
	return a, nil
}

// transportErr classifies a failed round trip: the context's own error,
// a pinning failure (ErrHostKey), a refused client certificate (ErrAuth),
// else a transient network error.
func (ch *Channel) transportErr(ctx context.Context, what string, err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("https: %s: %w", what, ctx.Err())
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		return fmt.Errorf("https: %s: the bank's TLS certificate is not the pinned one: %w (%v)", what, banks.ErrHostKey, err)
	case strings.Contains(err.Error(), "tls: bad certificate"), strings.Contains(err.Error(), "tls: certificate required"),
		strings.Contains(err.Error(), "tls: unknown certificate authority"), strings.Contains(err.Error(), "tls: unknown certificate"):
		// crypto/tls has no exported type for an alert received from the peer.
		return fmt.Errorf("https: %s: the bank refused our client certificate: %w (%v)", what, banks.ErrAuth, err)
	}
	return banks.Transient(fmt.Errorf("https: %s: %w", what, err))
}

// statusErr turns a signed non-2xx answer into an error.
func statusErr(what string, a *answer) error {
	var e APIError
	_ = json.Unmarshal(a.body, &e)
	msg := fmt.Sprintf("https: %s: bank answered %d %s %s", what, a.status, e.Code, e.Message)
	switch {
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return fmt.Errorf("%s: %w", msg, banks.ErrAuth)
	case a.status == http.StatusTooManyRequests || a.status >= 500:
		return banks.Transient(errors.New(msg))
	}
	return errors.New(msg)
}

// sourceReader streams an Outbound's bytes into the request, checking them
// against Size and SM3 as they pass: at the end a mismatch fails the read
// (so the request is aborted), a match marks the body complete.
type sourceReader struct {
	r        io.Reader
	h        hash.Hash
	n, size  int64
	want     [32]byte
	complete *atomic.Bool
	bad      *atomic.Bool
}

var errSource = errors.New("https: the spool file does not match the delivery's size and SM3")

func (s *sourceReader) Read(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.size+1 {
		p = p[:s.size+1-s.n]
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if s.n > s.size {
		s.bad.Store(true)
		return n, errSource
	}
	if err == io.EOF {
		var got [32]byte
		s.h.Sum(got[:0])
		if s.n != s.size || got != s.want {
			s.bad.Store(true)
			return n, errSource
		}
		s.complete.Store(true)
	}
	return n, err
}

// Send POSTs the sealed bytes with our bank batch number as the
// idempotency key. The bank keeps it under that key: the same key with the
// same bytes again answers the first delivery (no second delivery), with
// other bytes 409 (banks.ErrConflict). A failure after every byte was
// handed to the connection (a timeout waiting for the answer, a dropped
// connection, a cancelled ctx, an answer whose signature does not verify)
// is banks.ErrOutcomeUnknown: the gateway probes before re-sending.
func (ch *Channel) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	release, err := ch.enter(ctx)
	if err != nil {
		return banks.Receipt{}, err
	}
	defer release()
	what := "send " + o.BankBatchNo
	var complete, bad atomic.Bool
	var body io.Reader
	if o.Size > 0 {
		src, err := o.Open()
		if err != nil {
			return banks.Receipt{}, fmt.Errorf("https: %s: open source: %w", what, err)
		}
		// The source is read through a pipe so that a cancelled ctx ends the
		// request even while a read of the source blocks (net/http waits for
		// its body writer before returning).
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, src)
			src.Close()
			pw.CloseWithError(err)
		}()
		stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
		defer stop()
		defer pr.Close()
		body = &sourceReader{r: pr, h: sm3.New(), size: o.Size, want: o.SM3, complete: &complete, bad: &bad}
	} else {
		if sm3.Sum(nil) != o.SM3 {
			return banks.Receipt{}, fmt.Errorf("https: %s: %w", what, errSource)
		}
		complete.Store(true)
	}
	hdr := http.Header{}
	hdr.Set(HeaderIdempotencyKey, o.BankBatchNo)
	u := ch.url("/batches/"+url.PathEscape(o.BankBatchNo), url.Values{"name": {o.Name}})
	a, err := ch.do(ctx, http.MethodPost, u, body, o.Size, o.SM3, hdr, maxAnswer)
	switch {
	case err != nil && bad.Load():
		return banks.Receipt{}, fmt.Errorf("https: %s: %w", what, errSource)
	case err != nil && complete.Load():
		// Every byte went out; the bank may have it.
		cause := ch.transportErr(ctx, what, err)
		return banks.Receipt{}, fmt.Errorf("%w: %w", banks.ErrOutcomeUnknown, cause)
	case err != nil:
		return banks.Receipt{}, ch.transportErr(ctx, what, err)
	case bad.Load():
		// The bank cannot have accepted it (our signature covers o.SM3).
		return banks.Receipt{}, fmt.Errorf("https: %s: %w (bank answered %d)", what, errSource, a.status)
	}
	if !a.signed {
		if a.status >= 500 || a.status == http.StatusTooManyRequests {
			// An unsigned failure (a proxy in front of the bank, say): it
			// accepted nothing it would sign for; retry.
			return banks.Receipt{}, banks.Transient(fmt.Errorf("https: %s: unsigned answer %d: %v", what, a.status, a.sigErr))
		}
		return banks.Receipt{}, fmt.Errorf("https: %s: answer %d not trusted: %w: %w", what, a.status, banks.ErrOutcomeUnknown, a.sigErr)
	}
	switch {
	case a.status == http.StatusOK || a.status == http.StatusCreated:
	case a.status == http.StatusConflict:
		return banks.Receipt{}, fmt.Errorf("https: %s: the bank holds other content under this idempotency key: %w", what, banks.ErrConflict)
	default:
		return banks.Receipt{}, statusErr(what, a)
	}
	var st DeliveryStatus
	if err := json.Unmarshal(a.body, &st); err != nil {
		return banks.Receipt{}, fmt.Errorf("https: %s: receipt: %w: %v", what, banks.ErrOutcomeUnknown, err)
	}
	if st.Size != o.Size || !strings.EqualFold(st.SM3, hex.EncodeToString(o.SM3[:])) || st.BankBatchNo != o.BankBatchNo {
		return banks.Receipt{}, fmt.Errorf("https: %s: the bank's receipt names %s, %d bytes, SM3 %.16s: %w", what, st.BankBatchNo, st.Size, st.SM3, banks.ErrConflict)
	}
	ref := st.Ref
	if ref == "" {
		ref = st.BankBatchNo + "/" + st.Name
	}
	at := st.ReceivedAt
	if at.IsZero() {
		at = ch.now()
	}
	ch.log.Info("delivered", "bank_batch_no", o.BankBatchNo, "name", o.Name, "size", o.Size, "status", a.status)
	return banks.Receipt{Ref: ref, Size: st.Size, At: at}, nil
}

// get runs a signed GET (or bodiless POST) and insists on a signed answer.
func (ch *Channel) get(ctx context.Context, method, what, u string, limit int64) (*answer, error) {
	release, err := ch.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := ch.do(ctx, method, u, nil, 0, sm3.Sum(nil), nil, limit)
	if err != nil {
		return nil, ch.transportErr(ctx, what, err)
	}
	if !a.signed {
		if a.status >= 500 || a.status == http.StatusTooManyRequests {
			return nil, banks.Transient(fmt.Errorf("https: %s: unsigned answer %d: %v", what, a.status, a.sigErr))
		}
		return nil, fmt.Errorf("https: %s: answer %d not trusted: %w", what, a.status, a.sigErr)
	}
	return a, nil
}

// Probe asks the bank's query endpoint about o's bank batch number:
// unknown there -> ProbeNotArrived; held with o's size and SM3 ->
// ProbeArrived; held with other bytes -> ProbeMismatch.
func (ch *Channel) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	what := "probe " + o.BankBatchNo
	a, err := ch.get(ctx, http.MethodGet, what, ch.url("/batches/"+url.PathEscape(o.BankBatchNo), nil), maxAnswer)
	if err != nil {
		return banks.ProbeUnknown, err
	}
	switch a.status {
	case http.StatusNotFound:
		return banks.ProbeNotArrived, nil
	case http.StatusOK:
	default:
		return banks.ProbeUnknown, statusErr(what, a)
	}
	var st DeliveryStatus
	if err := json.Unmarshal(a.body, &st); err != nil {
		return banks.ProbeUnknown, fmt.Errorf("https: %s: %w", what, err)
	}
	if st.Size == o.Size && strings.EqualFold(st.SM3, hex.EncodeToString(o.SM3[:])) {
		return banks.ProbeArrived, nil
	}
	return banks.ProbeMismatch, nil
}

// Ping checks the bank answers, signed, over the pinned mutual TLS.
func (ch *Channel) Ping(ctx context.Context) error {
	a, err := ch.get(ctx, http.MethodGet, "ping", ch.url("/ping", nil), maxAnswer)
	if err != nil {
		return err
	}
	if a.status != http.StatusOK {
		return statusErr("ping", a)
	}
	return nil
}

// ListFeedback lists the return files ready at the bank and at least
// min_age old, by ID. In push mode it lists nothing (the bank pushes to
// the gateway's callback).
func (ch *Channel) ListFeedback(ctx context.Context) ([]banks.FeedbackRef, error) {
	if ch.cfg.feedback == FeedbackPush {
		release, err := ch.enter(ctx)
		if err != nil {
			return nil, err
		}
		release()
		return nil, nil
	}
	a, err := ch.get(ctx, http.MethodGet, "list feedback", ch.url("/feedback", nil), maxAnswer)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, statusErr("list feedback", a)
	}
	var l FeedbackList
	if err := json.Unmarshal(a.body, &l); err != nil {
		return nil, fmt.Errorf("https: list feedback: %w", err)
	}
	cutoff := ch.now().Add(-ch.cfg.minAge)
	var out []banks.FeedbackRef
	for _, it := range l.Items {
		if ok, _ := path.Match(ch.cfg.pattern, it.ID); !ok || it.ReadyAt.After(cutoff) {
			continue
		}
		out = append(out, banks.FeedbackRef{ID: it.ID, Size: it.Size, ModTime: it.ReadyAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// OpenFeedback fetches one return file (whole: its signature covers it).
func (ch *Channel) OpenFeedback(ctx context.Context, ref banks.FeedbackRef) (io.ReadCloser, error) {
	what := "fetch feedback " + ref.ID
	a, err := ch.get(ctx, http.MethodGet, what, ch.url("/feedback/"+url.PathEscape(ref.ID), nil), maxFeedback)
	if err != nil {
		return nil, err
	}
	switch a.status {
	case http.StatusOK:
		return io.NopCloser(bytes.NewReader(a.body)), nil
	case http.StatusNotFound:
		return nil, fmt.Errorf("https: %s: %w", what, banks.ErrNotFound)
	}
	return nil, statusErr(what, a)
}

// AckFeedback tells the bank a return file is applied; acknowledging again
// is fine, one it never had is banks.ErrNotFound.
func (ch *Channel) AckFeedback(ctx context.Context, ref banks.FeedbackRef) error {
	what := "ack feedback " + ref.ID
	a, err := ch.get(ctx, http.MethodPost, what, ch.url("/feedback/"+url.PathEscape(ref.ID)+"/ack", nil), maxAnswer)
	if err != nil {
		return err
	}
	switch a.status {
	case http.StatusOK, http.StatusNoContent:
		ch.log.Info("feedback acknowledged", "id", ref.ID)
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("https: %s: %w", what, banks.ErrNotFound)
	}
	return statusErr(what, a)
}
