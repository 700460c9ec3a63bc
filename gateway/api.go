package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"yktgw/banks"
	"yktgw/gateway/validate"
	"yktgw/internal/pii"
	"yktgw/spool"
)

type ctxKey int

const principalKey ctxKey = 0

// Handler is the HTTP API (DESIGN.md "HTTP API"; api/openapi.yaml describes it).
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.Handle("POST /v1/batches", g.auth(PermSubmit, g.postBatch))
	mux.Handle("GET /v1/batches", g.auth(PermRead, g.listBatches))
	mux.Handle("GET /v1/batches/{id}", g.auth(PermRead, g.getBatch))
	mux.Handle("GET /v1/batches/{id}/results", g.auth(PermRead, g.getResults))
	mux.Handle("POST /v1/batches/{id}/cancel", g.auth(PermCancel, g.cancelBatch))
	g.replayRoutes(mux)
	mux.Handle("GET /v1/webhooks/outbox", g.WebhookOutboxHandler())
	g.reportRoutes(mux)
	mux.HandleFunc("POST /v1/banks/{code}/callback", g.bankCallback) // the bank's SM2 signature, not a bearer token
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 404, "", "not_found", "无此接口 (no such endpoint)")
	})
	return mux
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.store.Ping(ctx); err != nil {
		writeJSON(w, 503, map[string]string{"status": "spool unavailable"})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, field, code, msg string) {
	writeJSON(w, status, ErrorBody{Errors: []validate.Issue{{Field: field, Code: code, Message: msg}}})
}

// auth authenticates the bearer token and checks the permission. A missing or
// bad token is 401, a token without the role 403.
func (g *Gateway) auth(perm Permission, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		bearer, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="yktgw"`)
			apiError(w, 401, "", "auth.missing", "缺少令牌 (bearer token required)")
			return
		}
		p, err := Authenticate(r.Context(), g.store, strings.TrimSpace(bearer))
		if errors.Is(err, ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="yktgw", error="invalid_token"`)
			apiError(w, 401, "", "auth.invalid", "令牌无效或已吊销 (invalid or revoked token)")
			return
		}
		if err != nil {
			g.log.Error("auth", "err", err)
			apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
			return
		}
		if !p.Can(perm) {
			apiError(w, 403, "", "auth.role", "令牌角色无此权限 (token role not allowed: "+string(perm)+")")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

func principal(r *http.Request) *Principal { return r.Context().Value(principalKey).(*Principal) }

func (g *Gateway) postBatch(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var ndjson bool
	switch ct {
	case "application/json":
	case "application/x-ndjson":
		ndjson = true
	default:
		apiError(w, 415, "", "body.content_type", "Content-Type 须为 application/json 或 application/x-ndjson")
		return
	}
	body := http.MaxBytesReader(w, r.Body, g.cfg.Intake.MaxBodyBytes)
	who := principal(r)
	res, err := g.Submit(r.Context(), who, body, ndjson)
	if err != nil {
		g.log.Error("intake failed", "by", who, "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法入库，请重试 (spool unavailable, retry)")
		return
	}
	if res.Status == 403 || (res.Errors != nil && onlyTenantForbidden(res.Errors.Errors)) {
		writeJSON(w, 403, res.Errors)
		return
	}
	if res.Batch != nil {
		if res.Status == StatusCreated {
			w.Header().Set("Location", "/v1/batches/"+res.Batch.BatchID)
		}
		writeJSON(w, res.Status, res.Batch)
		return
	}
	writeJSON(w, res.Status, res.Errors)
}

// onlyTenantForbidden: a well-formed batch for a tenant outside the token's
// scope is a 403, not a 422.
func onlyTenantForbidden(is []validate.Issue) bool {
	for _, i := range is {
		if i.Code == "tenant.forbidden" {
			return true
		}
	}
	return false
}

// visible returns the batch if it exists and the caller's tenants cover it;
// otherwise the same 404 in both cases, so tenants cannot probe each other.
func (g *Gateway) visible(w http.ResponseWriter, r *http.Request) *spool.Batch {
	id := r.PathValue("id")
	b, err := g.store.Batch(r.Context(), id)
	if err == nil && principal(r).Covers(b.Tenant) {
		return b
	}
	if err != nil && !errors.Is(err, spool.ErrNotFound) {
		g.log.Error("batch lookup", "batch", id, "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return nil
	}
	apiError(w, 404, "batch_id", "batch.not_found", "无此批次 (no such batch)")
	return nil
}

func (g *Gateway) getBatch(w http.ResponseWriter, r *http.Request) {
	if b := g.visible(w, r); b != nil {
		writeJSON(w, 200, g.view(r.Context(), b, true))
	}
}

// BatchList is the body of GET /v1/batches.
type BatchList struct {
	Items      []*BatchView `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

func (g *Gateway) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	f := spool.BatchFilter{Tenants: principal(r).TenantPrefixes(), State: spool.BatchState(q.Get("state")), Limit: limit, Before: q.Get("cursor")}
	bs, err := g.store.Batches(r.Context(), f)
	if err != nil {
		g.log.Error("list batches", "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	out := BatchList{Items: []*BatchView{}}
	for i := range bs {
		out.Items = append(out.Items, g.view(r.Context(), &bs[i], false))
	}
	if len(bs) == limit {
		out.NextCursor = bs[len(bs)-1].BatchID
	}
	writeJSON(w, 200, out)
}

func (g *Gateway) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b := g.visible(w, r)
	if b == nil {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body)
	}
	who := principal(r)
	err := g.store.TransitionBatch(r.Context(), b.BatchID, b.State, spool.BatchCancelled, spool.Event{Actor: who.TokenID, Reason: body.Reason})
	switch {
	case errors.Is(err, spool.ErrTransition), errors.Is(err, spool.ErrStale):
		apiError(w, 409, "state", "batch.not_cancellable", "批次已在发送或已结束，不能撤销 (batch is "+string(b.State)+"; only RECEIVED or QUEUED can be cancelled)")
		return
	case err != nil:
		g.log.Error("cancel", "batch", b.BatchID, "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	g.log.Info("batch cancelled", "batch", b.BatchID, "by", who)
	nb, err := g.store.Batch(r.Context(), b.BatchID)
	if err != nil {
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	writeJSON(w, 200, g.view(r.Context(), nb, true))
}

// ResultItem is one record's outcome as the platform reads it. Personal data
// is masked: the platform holds it in clear already.
type ResultItem struct {
	Seq         int        `json:"seq"`
	Status      string     `json:"status"`
	AmountFen   int64      `json:"amount_fen"`
	Name        string     `json:"name"`
	IDNumber    string     `json:"id_number"`
	Account     string     `json:"account"`
	Reason      string     `json:"reason,omitempty"`
	ReasonLabel string     `json:"reason_label,omitempty"`
	ReasonClass string     `json:"reason_class,omitempty"`
	BankCode    string     `json:"bank_code,omitempty"`
	BankMessage string     `json:"bank_message,omitempty"`
	BankSerial  string     `json:"bank_serial,omitempty"`
	ResultAt    *time.Time `json:"result_at,omitempty"`
	// The reissue chain: the FAILED record this one pays again, and the
	// record that paid this one again.
	ReissueOf  *RecordRef `json:"reissue_of,omitempty"`
	ReissuedBy *RecordRef `json:"reissued_by,omitempty"`
}

// RecordRef names a record of a batch.
type RecordRef struct {
	BatchID string `json:"batch_id"`
	Seq     int    `json:"seq"`
}

// ResultPage is the body of GET /v1/batches/{id}/results.
type ResultPage struct {
	BatchID    string           `json:"batch_id"`
	State      spool.BatchState `json:"state"`
	Totals     []StateCountJSON `json:"totals"`
	Items      []ResultItem     `json:"items"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

var validRecordStates = map[string]bool{"PENDING": true, "SENT": true, "PAID": true, "FAILED": true, "UNKNOWN": true, "CANCELLED": true}

func (g *Gateway) getResults(w http.ResponseWriter, r *http.Request) {
	b := g.visible(w, r)
	if b == nil {
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && !validRecordStates[status] {
		apiError(w, 400, "status", "status.invalid", "status 取值 PENDING|SENT|PAID|FAILED|UNKNOWN|CANCELLED")
		return
	}
	after := 0
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if n, perr := strconv.Atoi(strings.TrimPrefix(string(raw), "s:")); err != nil || perr != nil || n < 0 {
			apiError(w, 400, "cursor", "cursor.invalid", "游标无效 (bad cursor)")
			return
		} else {
			after = n
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 500
	}
	recs, err := g.store.Records(r.Context(), b.BatchID, spool.RecordFilter{State: spool.RecordState(status), AfterSeq: after, Limit: limit})
	if err != nil {
		g.log.Error("results", "batch", b.BatchID, "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	page := ResultPage{BatchID: b.BatchID, State: b.State, Totals: []StateCountJSON{}, Items: make([]ResultItem, 0, len(recs))}
	counts, err := g.store.RecordCounts(r.Context(), b.BatchID)
	if err == nil {
		for _, c := range counts {
			page.Totals = append(page.Totals, StateCountJSON{Status: string(c.State), Count: c.Count, Fen: c.Fen})
		}
	}
	o := fieldOpener{fc: g.fields}
	defer o.wipe()
	for i := range recs {
		rec := &recs[i]
		name, id, acct, err := o.openFields(b.BatchID, rec.Seq, rec.FieldsEnc, rec.NameEnc, rec.IDEnc, rec.AccountEnc)
		if err != nil {
			g.log.Error("decrypt fields", "batch", b.BatchID, "seq", rec.Seq, "err", err) // the masks stay empty
		}
		it := ResultItem{Seq: rec.Seq, Status: string(rec.State), AmountFen: rec.AmountFen,
			Name: pii.MaskName(string(name)), IDNumber: pii.MaskID(string(id)), Account: pii.MaskAccount(string(acct)),
			Reason: rec.Reason, BankCode: rec.BankCode, BankMessage: rec.BankMessage, BankSerial: rec.BankSerial}
		if rec.Reason != "" {
			it.ReasonLabel = banks.Reason(rec.Reason).LabelZH()
			it.ReasonClass = string(banks.Reason(rec.Reason).Class())
		}
		if !rec.ResultAt.IsZero() {
			t := rec.ResultAt
			it.ResultAt = &t
		}
		if rec.ReissueOfSeq > 0 {
			it.ReissueOf = &RecordRef{BatchID: b.ReissueOf, Seq: rec.ReissueOfSeq}
		}
		if rec.ReissuedBySeq > 0 {
			it.ReissuedBy = &RecordRef{BatchID: rec.ReissuedByBatch, Seq: rec.ReissuedBySeq}
		}
		page.Items = append(page.Items, it)
	}
	if len(recs) == limit {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte("s:" + strconv.Itoa(recs[len(recs)-1].Seq)))
	}
	writeJSON(w, 200, page)
}
