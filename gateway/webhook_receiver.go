package gateway

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Errors of WebhookReceiver.Verify.
var (
	ErrWebhookSignature = errors.New("webhook: bad or missing signature")
	ErrWebhookStale     = errors.New("webhook: timestamp outside the window")
	ErrWebhookReplay    = errors.New("webhook: event already received")
)

// WebhookReceiver is the reference receiver of yktgw's webhooks, for the
// platform's developers and for tests: it checks the HMAC-SM3 signature
// over the timestamp and the body, refuses a timestamp outside Window (a
// captured request cannot be replayed later) and hands each event id to
// Handle once (a replay, or yktgw's at-least-once redelivery, is answered
// 200 without handling it again). A real receiver keeps the seen event ids
// in its database, in the same transaction that stores the results.
type WebhookReceiver struct {
	Secret []byte
	Window time.Duration    // accepted clock difference either way; 0: 5 minutes
	Now    func() time.Time // nil: time.Now
	// Handle processes a verified, new event. An error answers 500 and
	// yktgw retries later.
	Handle func(ctx context.Context, eventID, eventType string, body []byte) error

	mu   sync.Mutex
	seen map[string]bool
}

// Verify checks a request's headers and body and returns its event id.
// ErrWebhookReplay means the signature is good but the id was handled before.
func (r *WebhookReceiver) Verify(h http.Header, body []byte) (string, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	window := r.Window
	if window <= 0 {
		window = 5 * time.Minute
	}
	ts, err := strconv.ParseInt(h.Get(HeaderWebhookTimestamp), 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: %s missing or not a number", ErrWebhookSignature, HeaderWebhookTimestamp)
	}
	want := WebhookSignature(r.Secret, ts, body)
	if !hmac.Equal([]byte(h.Get(HeaderWebhookSignature)), []byte(want)) {
		return "", ErrWebhookSignature
	}
	if d := now().Sub(time.Unix(ts, 0)); d > window || d < -window {
		return "", fmt.Errorf("%w: %s off by %s", ErrWebhookStale, HeaderWebhookTimestamp, d.Round(time.Second))
	}
	// The id header is not signed; the body's is.
	var ev struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" || ev.EventID != h.Get(HeaderWebhookEventID) {
		return "", fmt.Errorf("%w: event id header does not match the signed body", ErrWebhookSignature)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[ev.EventID] {
		return ev.EventID, ErrWebhookReplay
	}
	return ev.EventID, nil
}

// ServeHTTP answers 401 for a bad signature or a stale timestamp, 200 for an
// event handled now or before, 500 when Handle fails.
func (r *WebhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 64<<20))
	if err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	id, err := r.Verify(req.Header, body)
	switch {
	case errors.Is(err, ErrWebhookReplay):
		writeJSON(w, 200, map[string]string{"event_id": id, "status": "duplicate"})
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	// One event at a time: the seen check and the handling are atomic.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		writeJSON(w, 200, map[string]string{"event_id": id, "status": "duplicate"})
		return
	}
	if r.Handle != nil {
		if err := r.Handle(req.Context(), id, req.Header.Get(HeaderWebhookEventType), body); err != nil {
			http.Error(w, "handler: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[id] = true
	writeJSON(w, 200, map[string]string{"event_id": id, "status": "accepted"})
}
