package gateway

// Result webhooks: signed events pushed to the platform from the spool's
// durable outbox (spool.Outbox). The spool writes a batch's events in the
// transaction that settles it; the worker here routes each event to the
// webhooks whose tenant covers the batch, renders the body from the spool
// (no personal data: seq, status, amounts, reasons, bank code/message/serial),
// signs it with HMAC-SM3 and posts it, retrying with exponential backoff and
// jitter until a 2xx answer. Delivery is at least once; the event id is
// stable, so receivers dedupe on it. An item that failed
// webhook_outbox.alarm_after times becomes FAILING and raises an alarm.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/spool"
)

// Webhook request headers.
const (
	HeaderWebhookTimestamp = "X-Ykt-Timestamp"  // unix seconds of this attempt
	HeaderWebhookSignature = "X-Ykt-Signature"  // "hmac-sm3=" + lower-case hex
	HeaderWebhookEventID   = "X-Ykt-Event-Id"   // stable across retries
	HeaderWebhookEventType = "X-Ykt-Event-Type" // batch.settled | batch.results
)

// minWebhookSecret is the shortest HMAC key accepted.
const minWebhookSecret = 16

// WebhookSignature is the value of X-Ykt-Signature: HMAC-SM3 keyed with the
// webhook's secret over the decimal timestamp, a full stop, and the body
// bytes exactly as sent.
func WebhookSignature(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sm3.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "hmac-sm3=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookEvent is the JSON body of every webhook. batch.settled carries the
// batch's totals and the number of result pages; batch.results carries one
// page of record results.
type WebhookEvent struct {
	EventID     string           `json:"event_id"`
	Type        string           `json:"type"`
	CreatedAt   time.Time        `json:"created_at"`
	BatchID     string           `json:"batch_id"`
	Tenant      string           `json:"tenant"`
	Bank        string           `json:"bank,omitempty"`
	SubsidyCode string           `json:"subsidy_code,omitempty"`
	Period      string           `json:"period,omitempty"`
	State       spool.BatchState `json:"state,omitempty"`
	TotalCount  int              `json:"total_count,omitempty"`
	TotalFen    int64            `json:"total_fen,omitempty"`
	Totals      []StateCountJSON `json:"totals,omitempty"`
	Page        int              `json:"page,omitempty"`
	Pages       int              `json:"pages"`
	PageSize    int              `json:"page_size"`
	Results     []WebhookResult  `json:"results,omitempty"`
}

// WebhookResult is one record's outcome. No name, ID or account number: the
// platform maps seq back to its own data.
type WebhookResult struct {
	Seq         int        `json:"seq"`
	Status      string     `json:"status"`
	AmountFen   int64      `json:"amount_fen"`
	Reason      string     `json:"reason,omitempty"`
	ReasonLabel string     `json:"reason_label,omitempty"`
	ReasonClass string     `json:"reason_class,omitempty"`
	BankCode    string     `json:"bank_code,omitempty"`
	BankMessage string     `json:"bank_message,omitempty"`
	BankSerial  string     `json:"bank_serial,omitempty"`
	ResultAt    *time.Time `json:"result_at,omitempty"`
}

// renderWebhook builds an event's body from the spool. A settled batch's
// records are final, so every attempt renders the same content.
func (g *Gateway) renderWebhook(ctx context.Context, ev spool.OutboxEvent) ([]byte, error) {
	b, err := g.store.Batch(ctx, ev.BatchID)
	if err != nil {
		return nil, err
	}
	out := WebhookEvent{EventID: ev.EventID, Type: ev.Kind, CreatedAt: ev.CreatedAt, BatchID: ev.BatchID, Tenant: ev.Tenant,
		Pages: ev.Pages, PageSize: spool.OutboxPageSize}
	switch ev.Kind {
	case spool.EventBatchSettled:
		out.Bank, out.SubsidyCode, out.Period, out.State = b.Bank, b.SubsidyCode, b.Period, spool.BatchSettled
		out.TotalCount, out.TotalFen = b.TotalCount, b.TotalFen
		counts, err := g.store.RecordCounts(ctx, ev.BatchID)
		if err != nil {
			return nil, err
		}
		out.Totals = []StateCountJSON{}
		for _, c := range counts {
			out.Totals = append(out.Totals, StateCountJSON{Status: string(c.State), Count: c.Count, Fen: c.Fen})
		}
	case spool.EventBatchResults:
		out.Page = ev.Page
		out.Results = make([]WebhookResult, 0, ev.LastSeq-ev.FirstSeq+1)
		err := g.store.RecordRange(ctx, ev.BatchID, ev.FirstSeq, ev.LastSeq, func(r *spool.Record) error {
			wr := WebhookResult{Seq: r.Seq, Status: string(r.State), AmountFen: r.AmountFen, Reason: r.Reason,
				BankCode: r.BankCode, BankMessage: r.BankMessage, BankSerial: r.BankSerial}
			if r.Reason != "" {
				wr.ReasonLabel = banks.Reason(r.Reason).LabelZH()
				wr.ReasonClass = string(banks.Reason(r.Reason).Class())
			}
			if !r.ResultAt.IsZero() {
				t := r.ResultAt
				wr.ResultAt = &t
			}
			out.Results = append(out.Results, wr)
			return nil
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("gateway: webhook: unknown event kind %q", ev.Kind)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// webhookEndpoint is one configured webhook with its secret loaded.
type webhookEndpoint struct {
	cfg    config.Webhook
	secret []byte
	err    error // the secret could not be loaded: every attempt fails with it
	client *http.Client
}

// webhooker delivers the outbox.
type webhooker struct {
	g         *Gateway
	ob        spool.Outbox
	endpoints map[string]*webhookEndpoint // by URL
	list      []*webhookEndpoint
}

func loadWebhookSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: webhook secret: %w", err)
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) < minWebhookSecret {
		return nil, fmt.Errorf("gateway: webhook secret %s: %d bytes, want at least %d", path, len(b), minWebhookSecret)
	}
	return b, nil
}

// newWebhooker returns nil when the spool has no outbox.
func newWebhooker(g *Gateway) *webhooker {
	ob, ok := g.store.(spool.Outbox)
	if !ok {
		return nil
	}
	w := &webhooker{g: g, ob: ob, endpoints: map[string]*webhookEndpoint{}}
	for _, c := range g.cfg.Webhooks {
		e := &webhookEndpoint{cfg: c}
		e.secret, e.err = loadWebhookSecret(c.SecretFile)
		if e.err != nil {
			g.log.Error("webhook secret unusable: its events will fail until fixed", "url", c.URL, "err", e.err)
		}
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		e.client = &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		w.endpoints[c.URL] = e
		w.list = append(w.list, e)
	}
	return w
}

// route lists the endpoints whose tenant covers a batch's tenant.
func (w *webhooker) route(tenant string) []spool.OutboxTarget {
	var out []spool.OutboxTarget
	for _, e := range w.list {
		p := Principal{Tenants: []string{e.cfg.Tenant}}
		if p.Covers(tenant) {
			out = append(out, spool.OutboxTarget{URL: e.cfg.URL, Tenant: e.cfg.Tenant})
		}
	}
	return out
}

// tick routes new events and delivers what is due: each endpoint's items in
// order, one endpoint per goroutine; an endpoint that fails is left alone
// for the rest of the round.
func (w *webhooker) tick(ctx context.Context) {
	g := w.g
	for {
		n, err := w.ob.RouteOutbox(ctx, w.route, 500)
		if err != nil {
			g.log.Error("webhook: route", "err", err)
			return
		}
		if n < 500 {
			break
		}
	}
	items, err := w.ob.OutboxItems(ctx, spool.OutboxFilter{States: []spool.OutboxState{spool.OutboxPending, spool.OutboxFailing}, DueBy: g.now(), Limit: 500})
	if err != nil {
		g.log.Error("webhook: list due", "err", err)
		return
	}
	byURL := map[string][]spool.OutboxItem{}
	var order []string
	for _, it := range items {
		if _, ok := byURL[it.URL]; !ok {
			order = append(order, it.URL)
		}
		byURL[it.URL] = append(byURL[it.URL], it)
	}
	var wg sync.WaitGroup
	for _, u := range order {
		wg.Add(1)
		go func(list []spool.OutboxItem) {
			defer wg.Done()
			for _, it := range list {
				if ctx.Err() != nil || !w.deliver(ctx, it) {
					return
				}
			}
		}(byURL[u])
	}
	wg.Wait()
}

// deliver makes one attempt and records it; it reports success.
func (w *webhooker) deliver(ctx context.Context, it spool.OutboxItem) bool {
	g := w.g
	log := g.log.With("url", it.URL, "event", it.Event.EventID, "batch", it.Event.BatchID)
	status, err := w.post(ctx, it)
	if ctx.Err() != nil {
		return false // shutting down: not an attempt the receiver can be blamed for
	}
	if err == nil {
		if err := w.ob.OutboxDelivered(ctx, it.ID, status); err != nil {
			log.Error("webhook: record delivery", "err", err)
			return false
		}
		g.metrics.webhookAttempt("delivered")
		if it.State == spool.OutboxFailing {
			log.Info("webhook recovered", "attempts", it.Attempts+1)
		}
		return true
	}
	g.metrics.webhookAttempt("failed")
	next := g.now().Add(w.backoff(it.Attempts + 1))
	alarmed, rerr := w.ob.OutboxFailed(ctx, spool.OutboxFailure{ID: it.ID, Status: status, Error: err.Error(), NextAttempt: next,
		AlarmAfter: g.cfg.WebhookOutbox.AlarmAfter})
	if rerr != nil {
		log.Error("webhook: record failure", "err", rerr)
		return false
	}
	if alarmed {
		log.Error("ALARM webhook failing: the platform is not receiving results", "attempts", it.Attempts+1, "err", err)
	} else {
		log.Warn("webhook failed, will retry", "attempt", it.Attempts+1, "next", next, "err", err)
	}
	return false
}

func (w *webhooker) post(ctx context.Context, it spool.OutboxItem) (int, error) {
	e := w.endpoints[it.URL]
	if e == nil {
		return 0, errors.New("no webhook configured for this url any more")
	}
	if e.err != nil {
		return 0, e.err
	}
	body, err := w.g.renderWebhook(ctx, it.Event)
	if err != nil {
		return 0, fmt.Errorf("render: %w", err)
	}
	ts := w.g.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, it.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "yktgw-webhook/1")
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderWebhookSignature, WebhookSignature(e.secret, ts, body))
	req.Header.Set(HeaderWebhookEventID, it.Event.EventID)
	req.Header.Set(HeaderWebhookEventType, it.Event.Kind)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return resp.StatusCode, nil
}

// backoff is exponential from backoff_initial to backoff_max, with jitter
// between half and the whole step.
func (w *webhooker) backoff(attempt int) time.Duration {
	c := w.g.cfg.WebhookOutbox
	step := c.BackoffInitial
	if step <= 0 {
		step = 2 * time.Second
	}
	for i := 1; i < attempt && (c.BackoffMax <= 0 || step < c.BackoffMax); i++ {
		step *= 2
	}
	if c.BackoffMax > 0 && step > c.BackoffMax {
		step = c.BackoffMax
	}
	half := step / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// WebhookOutbox lists the outbox items of a spool in the given states (all
// when none), for ops: `yktgw webhooks list --state failing`.
func WebhookOutbox(ctx context.Context, st spool.Store, states []spool.OutboxState, limit int) ([]spool.OutboxItem, error) {
	ob, ok := st.(spool.Outbox)
	if !ok {
		return nil, errors.New("gateway: this spool has no webhook outbox")
	}
	return ob.OutboxItems(ctx, spool.OutboxFilter{States: states, Limit: limit})
}
