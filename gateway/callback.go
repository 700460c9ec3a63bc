package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	bankhttps "yktgw/banks/https"
	"yktgw/spool"
)

// NonceStore is the optional ability of a spool to remember the nonces of
// signed bank callbacks durably, so that a replay is refused even after a
// restart (an in-memory set would forget). *sqlite.Store has it.
type NonceStore interface {
	// UseNonce records nonce for bank and reports whether it was fresh.
	UseNonce(ctx context.Context, bank, nonce string, at time.Time) (fresh bool, err error)
}

// ErrFeedbackEarly: a return file (or pushed message) answers a delivery
// the spool does not yet know as sent (its send is still waiting for the
// bank's answer, or its outcome is unknown and not yet probed). It is not
// an anomaly and nothing is recorded: it is applied when it comes again
// (next poll, the bank's next push) after the delivery is SENT.
var ErrFeedbackEarly = errors.New("gateway: feedback for a delivery not yet known as sent; try again later")

// feedbackEarly returns ErrFeedbackEarly (wrapped) when bank's delivery
// bankBatchNo is still SEALED or SENDING, or DEAD.
func (g *Gateway) feedbackEarly(ctx context.Context, bank, bankBatchNo string) error {
	// DEAD too: the bank answered a delivery we gave up on, so it has the
	// file; the return waits at the bank until ops replay it (the probe then
	// finds it arrived, marks it SENT, and the return applies).
	ds, err := g.store.Deliveries(ctx, spool.DeliveryFilter{Bank: bank, States: []spool.DeliveryState{spool.DeliverySealed, spool.DeliverySending, spool.DeliveryDead}})
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.BankBatchNo == bankBatchNo {
			return fmt.Errorf("%w (%s is %s)", ErrFeedbackEarly, bankBatchNo, d.State)
		}
	}
	return nil
}

// DefaultCallbackWindow is how far a callback's timestamp may be from our
// clock when the bank's channel options set no max_clock_skew.
const DefaultCallbackWindow = 5 * time.Minute

// callbackAnswer is the body of every callback answer.
type callbackAnswer struct {
	Status  string `json:"status"` // applied | duplicate | refused | error
	Message string `json:"message,omitempty"`
}

// bankCallback receives a return file pushed by a bank whose channel is
// https with feedback: push (POST /v1/banks/{code}/callback?name=<file>).
// It is not behind bearer tokens: the bank authenticates by its SM2
// signature (banks/https RequestString) checked against the bank's
// certificate from the config. Stale timestamps (outside the channel's
// max_clock_skew, default 5m) and replayed nonces (remembered in the spool)
// are refused. It answers 200, signed with our key, only after the return
// file is committed in the spool (applied now or before); 422 when it is
// refused (alarm raised, nothing applied), 401 bad signature or timestamp,
// 409 replayed nonce, 503 spool trouble (the bank retries).
func (g *Gateway) bankCallback(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	bank := g.banks[code]
	if bank == nil || bank.Profile.Channel.Type != bankhttps.Kind || bank.Profile.Channel.Options["feedback"] != bankhttps.FeedbackPush {
		apiError(w, 404, "code", "not_found", "该银行不推送回盘 (no push callback for this bank)")
		return
	}
	opts := bank.Profile.Channel.Options
	uid := []byte(opts["signer_id"])
	window := DefaultCallbackWindow
	if v := opts["max_clock_skew"]; v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			window = d
		}
	}
	log := g.log.With("bank", code, "remote", r.RemoteAddr)
	answer := func(status int, a callbackAnswer) {
		body, _ := json.Marshal(a)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		bankhttps.WriteSigned(w, r, g.party.Key, uid, g.now(), status, body)
	}
	// Cheap refusals before the body is read.
	if r.ContentLength > maxFeedbackBytes {
		answer(413, callbackAnswer{Status: "error", Message: "body too large"})
		return
	}
	if _, err := bankhttps.CheckTimestamp(r.Header.Get(bankhttps.HeaderTimestamp), g.now(), window); err != nil {
		log.Warn("callback refused: timestamp", "err", err)
		answer(401, callbackAnswer{Status: "error", Message: "signature, timestamp or nonce not valid"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFeedbackBytes+1))
	if err != nil {
		answer(400, callbackAnswer{Status: "error", Message: "body not read"})
		return
	}
	if len(body) > maxFeedbackBytes {
		answer(413, callbackAnswer{Status: "error", Message: "body too large"})
		return
	}
	sr, err := bankhttps.VerifyRequest(r, body, bank.Cert, uid, g.now(), window)
	if err != nil {
		log.Warn("callback refused: signature or timestamp", "err", err)
		answer(401, callbackAnswer{Status: "error", Message: "signature, timestamp or nonce not valid"})
		return
	}
	name := r.URL.Query().Get("name")
	if name == "" || len(name) > 200 || path.Base(name) != name || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "\\\x00") {
		answer(400, callbackAnswer{Status: "error", Message: "name query parameter must be a plain file name"})
		return
	}
	log = log.With("file", name)
	ns, ok := g.store.(NonceStore)
	if !ok {
		log.Error("callback: the spool cannot remember nonces")
		answer(503, callbackAnswer{Status: "error", Message: "spool unavailable"})
		return
	}
	fresh, err := ns.UseNonce(r.Context(), code, sr.Nonce, sr.Time)
	if err != nil {
		log.Error("callback: nonce not recorded", "err", err)
		answer(503, callbackAnswer{Status: "error", Message: "spool unavailable"})
		return
	}
	if !fresh {
		log.Warn("callback refused: replayed nonce")
		answer(409, callbackAnswer{Status: "error", Message: "nonce already used"})
		return
	}
	outcome, err := g.ApplyFeedback(r.Context(), code, name, body)
	switch {
	case errors.Is(err, ErrFeedbackEarly):
		log.Info("callback: the delivery is not yet known as sent; the bank will push again", "err", err)
		answer(503, callbackAnswer{Status: "error", Message: "not applied yet; send again later"})
	case err != nil && errors.Is(err, context.Canceled):
		answer(503, callbackAnswer{Status: "error", Message: "not applied; send again"})
	case err != nil:
		log.Error("callback: not applied", "err", err)
		answer(503, callbackAnswer{Status: "error", Message: "not applied; send again"})
	case outcome == FeedbackRefused:
		answer(422, callbackAnswer{Status: "refused", Message: "return file refused; nothing applied; ops alerted"})
	default:
		// Committed: the acknowledgement may go now, never before.
		hit(FPFeedbackBeforeArchive)
		st := "applied"
		if outcome == FeedbackDuplicate {
			st = "duplicate"
		}
		answer(200, callbackAnswer{Status: st})
	}
}
