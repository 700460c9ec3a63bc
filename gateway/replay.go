package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"yktgw/banks"
	"yktgw/gateway/validate"
	"yktgw/spool"
)

// Permissions of the ops calls.
const (
	PermDeliveries Permission = "delivery.read"
	PermReplay     Permission = "delivery.replay"
	PermApprove    Permission = "replay.approve"
)

func init() {
	grants[PermDeliveries] = []string{RoleOperator, RoleApprover, RoleAdmin}
	grants[PermReplay] = []string{RoleOperator, RoleAdmin}
	grants[PermApprove] = []string{RoleApprover, RoleAdmin}
}

// Errors of replay requests, for the API's status codes.
var (
	ErrReplayRefused  = errors.New("gateway: replay refused")  // 409: the bank side says no, or it cannot be asked
	ErrReplayNotDead  = errors.New("gateway: not replayable")  // 409: only DEAD deliveries
	ErrReplaySelf     = errors.New("gateway: own request")     // 403: maker-checker
	ErrReplayNotFound = errors.New("gateway: no such request") // 404
)

// DeliveryView is a delivery as ops see it.
type DeliveryView struct {
	ID          int64      `json:"id"`
	BatchID     string     `json:"batch_id"`
	Bank        string     `json:"bank"`
	BankBatchNo string     `json:"bank_batch_no"`
	FileSeq     int        `json:"file_seq"`
	FirstSeq    int        `json:"first_seq"`
	LastSeq     int        `json:"last_seq"`
	Count       int        `json:"count"`
	TotalFen    int64      `json:"total_fen"`
	FileName    string     `json:"file_name,omitempty"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	DeadlineAt  *time.Time `json:"deadline_at,omitempty"`
}

func deliveryView(d spool.Delivery) DeliveryView {
	v := DeliveryView{ID: d.ID, BatchID: d.BatchID, Bank: d.Bank, BankBatchNo: d.BankBatchNo, FileSeq: d.FileSeq, FirstSeq: d.FirstSeq,
		LastSeq: d.LastSeq, Count: d.Count, TotalFen: d.TotalFen, FileName: d.FileName, State: string(d.State), Attempts: d.Attempts, LastError: d.LastError}
	if !d.SentAt.IsZero() {
		t := d.SentAt
		v.SentAt = &t
	}
	if !d.DeadlineAt.IsZero() {
		t := d.DeadlineAt
		v.DeadlineAt = &t
	}
	return v
}

// ReplayView is a replay request as ops see it.
type ReplayView struct {
	ID          int64      `json:"id"`
	DeliveryID  int64      `json:"delivery_id"`
	BatchID     string     `json:"batch_id"`
	Bank        string     `json:"bank"`
	BankBatchNo string     `json:"bank_batch_no"`
	TotalFen    int64      `json:"total_fen"`
	State       string     `json:"state"`
	Reason      string     `json:"reason"`
	RequestedBy string     `json:"requested_by"`
	ApprovedBy  string     `json:"approved_by,omitempty"`
	Outcome     string     `json:"outcome,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
}

func replayView(r *spool.Replay) *ReplayView {
	v := &ReplayView{ID: r.ID, DeliveryID: r.DeliveryID, BatchID: r.BatchID, Bank: r.Bank, BankBatchNo: r.BankBatchNo, TotalFen: r.TotalFen,
		State: r.State, Reason: r.Reason, RequestedBy: r.RequestedBy, ApprovedBy: r.ApprovedBy, Outcome: r.Outcome, CreatedAt: r.CreatedAt}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt
		v.DecidedAt = &t
	}
	return v
}

// deliveryFor returns a delivery whose batch the principal may see.
func (g *Gateway) deliveryFor(ctx context.Context, who *Principal, id int64) (*spool.Delivery, error) {
	d, err := g.store.Delivery(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := g.store.Batch(ctx, d.BatchID)
	if err != nil {
		return nil, err
	}
	if !who.Covers(b.Tenant) {
		return nil, fmt.Errorf("delivery %d: %w", id, spool.ErrNotFound)
	}
	return d, nil
}

// RequestReplay asks for a DEAD delivery to be sent again. Above the
// configured amount a second person must approve it first; otherwise it is
// carried out at once: the bank side is asked whether the file arrived
// (money rule 5), and only a file that provably did not arrive is sent again,
// under the same bank batch number and the same sealed bytes.
func (g *Gateway) RequestReplay(ctx context.Context, who *Principal, deliveryID int64, reason string) (*ReplayView, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, errors.New("gateway: a replay needs a reason")
	}
	d, err := g.deliveryFor(ctx, who, deliveryID)
	if err != nil {
		return nil, err
	}
	if d.State != spool.DeliveryDead {
		return nil, fmt.Errorf("%w: delivery %s is %s; only DEAD deliveries are replayed", ErrReplayNotDead, d.BankBatchNo, d.State)
	}
	needs := d.TotalFen > g.cfg.Replay.ApprovalThresholdFen
	r, err := g.store.RequestReplay(ctx, deliveryID, reason, who.TokenID, needs)
	if err != nil {
		if errors.Is(err, spool.ErrStale) || errors.Is(err, spool.ErrConflict) {
			return nil, fmt.Errorf("%w: %v", ErrReplayNotDead, err)
		}
		return nil, err
	}
	g.log.Info("replay requested", "delivery", d.BankBatchNo, "fen", d.TotalFen, "needs_approval", needs, "by", who)
	if needs {
		return replayView(r), nil
	}
	return g.carryOut(ctx, r)
}

// ApproveReplay approves another person's pending request and carries it out.
func (g *Gateway) ApproveReplay(ctx context.Context, who *Principal, replayID int64) (*ReplayView, error) {
	r, err := g.store.Replay(ctx, replayID)
	if errors.Is(err, spool.ErrNotFound) {
		return nil, ErrReplayNotFound
	}
	if err != nil {
		return nil, err
	}
	if _, err := g.deliveryFor(ctx, who, r.DeliveryID); err != nil {
		return nil, ErrReplayNotFound
	}
	if r.RequestedBy == who.TokenID {
		return nil, fmt.Errorf("%w: the requester cannot approve their own replay", ErrReplaySelf)
	}
	r, err = g.store.ApproveReplay(ctx, replayID, who.TokenID)
	switch {
	case errors.Is(err, spool.ErrConflict):
		return nil, fmt.Errorf("%w: %v", ErrReplaySelf, err)
	case errors.Is(err, spool.ErrStale):
		return nil, fmt.Errorf("%w: %v", ErrReplayNotDead, err)
	case err != nil:
		return nil, err
	}
	g.log.Info("replay approved", "replay", r.ID, "delivery", r.BankBatchNo, "by", who)
	return g.carryOut(ctx, r)
}

// carryOut asks the bank side, then moves the delivery: arrived -> SENT
// (nothing sent), not arrived -> SEALED (the dispatcher sends the same file
// again), never sealed -> PLANNED; mismatch or no answer -> refused, DEAD.
func (g *Gateway) carryOut(ctx context.Context, r *spool.Replay) (*ReplayView, error) {
	d, err := g.store.Delivery(ctx, r.DeliveryID)
	if err != nil {
		return nil, err
	}
	to, outcome := spool.DeliveryState(""), ""
	switch {
	case d.SealedPath == "":
		to, outcome = spool.DeliveryPlanned, "never sealed, nothing was sent: rendered and sealed again"
	default:
		bank := g.banks[d.Bank]
		prober, ok := banks.Prober(nil), false
		if bank != nil {
			prober, ok = bank.Channel.(banks.Prober)
		}
		if !ok {
			outcome = "the channel cannot be asked whether the file arrived; settle it with the bank by hand"
			break
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		res, perr := prober.Probe(pctx, outbound(*d))
		cancel()
		switch res {
		case banks.ProbeArrived:
			to, outcome = spool.DeliverySent, "the bank has it (same size and SM3): marked sent, nothing sent again"
		case banks.ProbeNotArrived:
			to, outcome = spool.DeliverySealed, "the bank does not have it: sent again under the same bank batch number"
		case banks.ProbeMismatch:
			outcome = "the bank holds other bytes under this name; ops must settle it with the bank"
		default:
			outcome = fmt.Sprintf("the bank could not be asked (%v); try again later", perr)
		}
	}
	r, err = g.store.FinishReplay(ctx, r.ID, to, outcome)
	if err != nil {
		return nil, err
	}
	v := replayView(r)
	if to == "" {
		g.log.Warn("replay refused", "delivery", d.BankBatchNo, "why", outcome)
		return v, fmt.Errorf("%w: %s", ErrReplayRefused, outcome)
	}
	g.log.Info("replay done", "delivery", d.BankBatchNo, "outcome", outcome)
	return v, nil
}

// ---- HTTP ----

func (g *Gateway) replayRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/deliveries", g.auth(PermDeliveries, g.listDeliveries))
	mux.Handle("POST /v1/deliveries/{id}/replay", g.auth(PermReplay, g.postReplay))
	mux.Handle("GET /v1/replays", g.auth(PermDeliveries, g.listReplays))
	mux.Handle("POST /v1/replays/{id}/approve", g.auth(PermApprove, g.postApprove))
}

func (g *Gateway) listDeliveries(w http.ResponseWriter, r *http.Request) {
	f := spool.DeliveryFilter{BatchID: r.URL.Query().Get("batch_id"), Bank: r.URL.Query().Get("bank"), Limit: 1000}
	if s := r.URL.Query().Get("state"); s != "" {
		if !map[string]bool{"PLANNED": true, "SEALED": true, "SENDING": true, "SENT": true, "DEAD": true}[s] {
			apiError(w, 400, "state", "state.invalid", "state 取值 PLANNED|SEALED|SENDING|SENT|DEAD")
			return
		}
		f.States = []spool.DeliveryState{spool.DeliveryState(s)}
	}
	ds, err := g.store.Deliveries(r.Context(), f)
	if err != nil {
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	who := principal(r)
	out := struct {
		Items []DeliveryView `json:"items"`
	}{Items: []DeliveryView{}}
	tenants := map[string]bool{}
	for _, d := range ds {
		ok, seen := tenants[d.BatchID]
		if !seen {
			b, err := g.store.Batch(r.Context(), d.BatchID)
			ok = err == nil && who.Covers(b.Tenant)
			tenants[d.BatchID] = ok
		}
		if ok {
			out.Items = append(out.Items, deliveryView(d))
		}
	}
	writeJSON(w, 200, out)
}

func (g *Gateway) listReplays(w http.ResponseWriter, r *http.Request) {
	rs, err := g.store.Replays(r.Context(), r.URL.Query().Get("state"), 500)
	if err != nil {
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	who := principal(r)
	out := struct {
		Items []*ReplayView `json:"items"`
	}{Items: []*ReplayView{}}
	for i := range rs {
		if _, err := g.deliveryFor(r.Context(), who, rs[i].DeliveryID); err == nil {
			out.Items = append(out.Items, replayView(&rs[i]))
		}
	}
	writeJSON(w, 200, out)
}

func (g *Gateway) postReplay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, 404, "id", "delivery.not_found", "无此投递 (no such delivery)")
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body)
	if strings.TrimSpace(body.Reason) == "" {
		writeJSON(w, 422, ErrorBody{Errors: []validate.Issue{{Field: "reason", Code: "reason.missing", Message: "重发须说明原因 (a reason is required)"}}})
		return
	}
	v, err := g.RequestReplay(r.Context(), principal(r), id, body.Reason)
	g.replayAnswer(w, v, err)
}

func (g *Gateway) postApprove(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, 404, "id", "replay.not_found", "无此重发申请 (no such replay request)")
		return
	}
	v, err := g.ApproveReplay(r.Context(), principal(r), id)
	g.replayAnswer(w, v, err)
}

func (g *Gateway) replayAnswer(w http.ResponseWriter, v *ReplayView, err error) {
	switch {
	case err == nil && v.State == spool.ReplayPending:
		writeJSON(w, 202, v)
	case err == nil:
		writeJSON(w, 200, v)
	case errors.Is(err, spool.ErrNotFound), errors.Is(err, ErrReplayNotFound):
		apiError(w, 404, "id", "not_found", "无此投递或重发申请 (no such delivery or replay request)")
	case errors.Is(err, ErrReplaySelf):
		apiError(w, 403, "", "replay.own_request", "申请人不能审批自己的重发申请 (the requester cannot approve their own replay)")
	case errors.Is(err, ErrReplayRefused), errors.Is(err, ErrReplayNotDead):
		writeJSON(w, 409, struct {
			ErrorBody
			Replay *ReplayView `json:"replay,omitempty"`
		}{ErrorBody{Errors: []validate.Issue{{Field: "state", Code: "replay.refused", Message: err.Error()}}}, v})
	default:
		g.log.Error("replay", "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
	}
}
