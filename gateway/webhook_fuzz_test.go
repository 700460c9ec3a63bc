package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// FuzzWebhookVerify feeds the reference receiver arbitrary timestamps,
// signatures, event ids and bodies. It must never panic, and it may accept
// only what carries the right HMAC-SM3 over exactly those bytes with a
// matching event id inside the window.
func FuzzWebhookVerify(f *testing.F) {
	secret := []byte("fuzz-secret-0123456789")
	now := time.Unix(1_800_000_000, 0)
	good := []byte(`{"event_id":"ev_1","type":"batch.settled","pages":1,"page_size":1000}`)
	f.Add("1800000000", WebhookSignature(secret, 1_800_000_000, good), "ev_1", good)
	f.Add("1800000000", WebhookSignature(secret, 1_800_000_000, good), "ev_2", good)
	f.Add("1799999000", WebhookSignature(secret, 1_799_999_000, good), "ev_1", good)
	f.Add("abc", "hmac-sm3=", "", []byte(`{`))
	f.Add("-1", "hmac-sm3=00", "ev_1", []byte(`{"event_id":1}`))
	f.Add("99999999999999999999", "", "x", []byte(nil))
	f.Fuzz(func(t *testing.T, ts, sig, id string, body []byte) {
		r := &WebhookReceiver{Secret: secret, Now: func() time.Time { return now }}
		h := http.Header{}
		h.Set(HeaderWebhookTimestamp, ts)
		h.Set(HeaderWebhookSignature, sig)
		h.Set(HeaderWebhookEventID, id)
		got, err := r.Verify(h, body)
		if err != nil {
			if !errors.Is(err, ErrWebhookSignature) && !errors.Is(err, ErrWebhookStale) && !errors.Is(err, ErrWebhookReplay) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		n, perr := strconv.ParseInt(h.Get(HeaderWebhookTimestamp), 10, 64)
		if perr != nil || WebhookSignature(secret, n, body) != h.Get(HeaderWebhookSignature) {
			t.Fatalf("accepted a request without the right signature: ts %q sig %q", ts, sig)
		}
		var ev struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(body, &ev) != nil || ev.EventID != got || got != h.Get(HeaderWebhookEventID) {
			t.Fatalf("accepted event id %q for body %q", got, body)
		}
		if d := now.Sub(time.Unix(n, 0)); d > 5*time.Minute || d < -5*time.Minute {
			t.Fatalf("accepted a stale timestamp %d", n)
		}
	})
}
