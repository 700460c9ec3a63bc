package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"yktgw/spool"
)

// PermWebhooks lets a token list the webhook outbox (ops and auditors).
const PermWebhooks Permission = "webhooks.read"

func init() { grants[PermWebhooks] = []string{RoleOperator, RoleViewer, RoleAdmin} }

// OutboxItemView is one webhook outbox item as ops read it.
type OutboxItemView struct {
	ID          int64      `json:"id"`
	State       string     `json:"state"`
	EventID     string     `json:"event_id"`
	Type        string     `json:"type"`
	BatchID     string     `json:"batch_id"`
	Tenant      string     `json:"tenant"`
	Page        int        `json:"page,omitempty"`
	Pages       int        `json:"pages"`
	URL         string     `json:"url"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastStatus  int        `json:"last_status,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

// OutboxList is the body of GET /v1/webhooks/outbox.
type OutboxList struct {
	Items      []OutboxItemView `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// WebhookOutboxHandler serves GET /v1/webhooks/outbox?state=failing|pending|
// delivered|undelivered|all&cursor=&limit=: the outbox items of the batches
// the token's tenants cover, oldest first. Roles: operator, viewer, admin.
// Mount it with mux.Handle("GET /v1/webhooks/outbox", g.WebhookOutboxHandler()).
func (g *Gateway) WebhookOutboxHandler() http.Handler {
	return g.auth(PermWebhooks, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var states []spool.OutboxState
		switch s := strings.ToUpper(q.Get("state")); s {
		case "ALL":
		case "", "UNDELIVERED":
			states = []spool.OutboxState{spool.OutboxPending, spool.OutboxFailing}
		case string(spool.OutboxPending), string(spool.OutboxFailing), string(spool.OutboxDelivered):
			states = []spool.OutboxState{spool.OutboxState(s)}
		default:
			apiError(w, 400, "state", "state.invalid", "state 取值 failing|pending|delivered|undelivered|all")
			return
		}
		var after int64
		if c := q.Get("cursor"); c != "" {
			n, err := strconv.ParseInt(c, 10, 64)
			if err != nil || n < 0 {
				apiError(w, 400, "cursor", "cursor.invalid", "游标无效 (bad cursor)")
				return
			}
			after = n
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 200
		}
		ob, ok := g.store.(spool.Outbox)
		if !ok {
			apiError(w, 501, "", "outbox.unsupported", "此存储无 webhook 发件箱 (spool has no webhook outbox)")
			return
		}
		who := principal(r)
		out := OutboxList{Items: []OutboxItemView{}}
		// Filtered by tenant after reading: page on until the page is full
		// or the outbox ends, so a narrow tenant still gets full pages.
		full := false
		for !full {
			items, err := ob.OutboxItems(r.Context(), spool.OutboxFilter{States: states, AfterID: after, Limit: limit})
			if err != nil {
				g.log.Error("webhook outbox", "err", err)
				apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
				return
			}
			for _, it := range items {
				after = it.ID
				if who.Covers(it.Event.Tenant) {
					out.Items = append(out.Items, outboxView(it))
					if full = len(out.Items) == limit; full {
						break
					}
				}
			}
			if len(items) < limit {
				break
			}
		}
		if full {
			out.NextCursor = strconv.FormatInt(after, 10)
		}
		writeJSON(w, 200, out)
	})
}

func outboxView(it spool.OutboxItem) OutboxItemView {
	v := OutboxItemView{ID: it.ID, State: string(it.State), EventID: it.Event.EventID, Type: it.Event.Kind, BatchID: it.Event.BatchID,
		Tenant: it.Event.Tenant, Page: it.Event.Page, Pages: it.Event.Pages, URL: it.URL, Attempts: it.Attempts, LastStatus: it.LastStatus,
		LastError: it.LastError, CreatedAt: it.CreatedAt}
	if it.State != spool.OutboxDelivered && !it.NextAttempt.IsZero() {
		t := it.NextAttempt
		v.NextAttempt = &t
	}
	if !it.DeliveredAt.IsZero() {
		t := it.DeliveredAt
		v.DeliveredAt = &t
	}
	return v
}
