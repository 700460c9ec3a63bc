package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/banks/sim"
	"yktgw/gateway"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// lostReply delivers for real, then claims a permanent failure (the bank got
// the file, the gateway gave up): the delivery goes DEAD although it arrived.
type lostReply struct {
	banks.Channel
	lose atomic.Int32
}

func (l *lostReply) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	r, err := l.Channel.Send(ctx, o)
	if err == nil && l.lose.Add(-1) >= 0 {
		return banks.Receipt{}, errors.New("test: reply lost, permanent")
	}
	return r, err
}

func (l *lostReply) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	return l.Channel.(banks.Prober).Probe(ctx, o)
}

func deadDelivery(t *testing.T, e *faultEnv, id string) gateway.DeliveryView {
	t.Helper()
	e.waitState(id, spool.BatchDead, 30*time.Second)
	ds, _ := e.g.Store().Deliveries(context.Background(), spool.DeliveryFilter{BatchID: id})
	if len(ds) != 1 || ds[0].State != spool.DeliveryDead {
		t.Fatalf("deliveries %+v", ds)
	}
	return gateway.DeliveryView{ID: ds[0].ID, TotalFen: ds[0].TotalFen, BankBatchNo: ds[0].BankBatchNo}
}

var (
	operator  = &gateway.Principal{TokenID: "op-1", Tenants: []string{"*"}, Roles: []string{gateway.RoleOperator}}
	operator2 = &gateway.Principal{TokenID: "op-2", Tenants: []string{"*"}, Roles: []string{gateway.RoleOperator, gateway.RoleApprover}}
	approver  = &gateway.Principal{TokenID: "ap-1", Tenants: []string{"*"}, Roles: []string{gateway.RoleApprover}}
)

// Money rule 5 in replay: the bank side is asked first; a file that arrived
// is never sent again.
func TestReplayNeverResendsWhatArrived(t *testing.T) {
	lr := &lostReply{}
	lr.lose.Store(1)
	e := newFaultEnv(t, 0.1, 0, sim.Faults{}, func(g *gateway.Gateway) {
		g.Config().Replay.ApprovalThresholdFen = 1 << 50 // no second person needed here
		gateway.WrapChannelForTest(g, "DEMO", func(c banks.Channel) banks.Channel { lr.Channel = c; return lr })
	})
	e.submit(gen.Spec{BatchID: "RP-ARRIVED", N: 500})
	d := deadDelivery(t, e, "RP-ARRIVED")
	// The bank takes the file up asynchronously after the upload.
	for deadline := time.Now().Add(20 * time.Second); e.sim.Stats().Accepted != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("bank accepted %d", e.sim.Stats().Accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := e.g.RequestReplay(context.Background(), operator, d.ID, "bank says it has the file")
	if err != nil || v.State != spool.ReplayDone {
		t.Fatalf("replay: %+v %v", v, err)
	}
	e.waitState("RP-ARRIVED", spool.BatchSettled, 60*time.Second)
	e.reconciled("RP-ARRIVED")
	if st := e.sim.Stats(); st.Accepted != 1 || st.Duplicates != 0 {
		t.Fatalf("bank stats after replay: accepted %d duplicates %d", st.Accepted, st.Duplicates)
	}
}

// A file that provably did not arrive is sent again, same bank batch number.
func TestReplaySendsWhatDidNotArrive(t *testing.T) {
	e := newFaultEnv(t, 0.1, 0, sim.Faults{DropMidUpload: 1}, func(g *gateway.Gateway) {
		g.Config().Dispatcher.MaxAttempts = 1 // the dropped upload kills it
		g.Config().Replay.ApprovalThresholdFen = 1 << 50
	})
	e.submit(gen.Spec{BatchID: "RP-LOST", N: 500})
	d := deadDelivery(t, e, "RP-LOST")
	if st := e.sim.Stats(); st.Accepted != 0 {
		t.Fatalf("bank accepted %d before the replay", st.Accepted)
	}
	// Not DEAD any more after the replay: a second replay is refused.
	v, err := e.g.RequestReplay(context.Background(), operator, d.ID, "connection dropped")
	if err != nil || v.State != spool.ReplayDone || v.BankBatchNo != d.BankBatchNo {
		t.Fatalf("replay: %+v %v", v, err)
	}
	if _, err := e.g.RequestReplay(context.Background(), operator, d.ID, "again"); !errors.Is(err, gateway.ErrReplayNotDead) {
		t.Fatalf("second replay: %v", err)
	}
	e.waitState("RP-LOST", spool.BatchSettled, 60*time.Second)
	e.reconciled("RP-LOST")
}

// Maker-checker above the threshold; roles and tenants on every endpoint.
func TestReplayMakerCheckerAndRoles(t *testing.T) {
	e := newFaultEnv(t, 0.1, 0, sim.Faults{DropMidUpload: 1}, func(g *gateway.Gateway) {
		g.Config().Dispatcher.MaxAttempts = 1
		g.Config().Replay.ApprovalThresholdFen = 1000 // every delivery is above
	})
	e.submit(gen.Spec{BatchID: "RP-MC", N: 300})
	d := deadDelivery(t, e, "RP-MC")
	srv := httptest.NewServer(e.g.Handler())
	defer srv.Close()
	tokens := map[string]string{}
	for name, tk := range map[string]struct {
		tenants, roles []string
	}{
		"op":     {[]string{"*"}, []string{"operator"}},
		"op2":    {[]string{"*"}, []string{"operator", "approver"}},
		"ap":     {[]string{"*"}, []string{"approver"}},
		"viewer": {[]string{"*"}, []string{"viewer"}},
		"other":  {[]string{"220000"}, []string{"operator", "approver"}},
	} {
		secret, _, err := gateway.CreateToken(context.Background(), e.g.Store(), name, tk.tenants, tk.roles, "test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = secret
	}
	call := func(tok, method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+tokens[tok])
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	path := "/v1/deliveries/" + itoa(d.ID) + "/replay"
	if s, _ := call("viewer", "POST", path, `{"reason":"x"}`); s != 403 {
		t.Fatalf("viewer replay: %d", s)
	}
	if s, _ := call("ap", "POST", path, `{"reason":"x"}`); s != 403 {
		t.Fatalf("approver-only replay: %d", s)
	}
	if s, _ := call("other", "POST", path, `{"reason":"x"}`); s != 404 {
		t.Fatalf("other tenant replay: %d", s)
	}
	if s, _ := call("op", "POST", path, `{}`); s != 422 {
		t.Fatalf("no reason: %d", s)
	}
	if s, m := call("viewer", "GET", "/v1/deliveries?state=DEAD", ""); s != 403 {
		t.Fatalf("viewer lists deliveries: %d %v", s, m)
	}
	if s, m := call("other", "GET", "/v1/deliveries?state=DEAD", ""); s != 200 || len(m["items"].([]any)) != 0 {
		t.Fatalf("other tenant lists: %d %v", s, m)
	}
	s, m := call("op", "GET", "/v1/deliveries?state=DEAD", "")
	if s != 200 || len(m["items"].([]any)) != 1 {
		t.Fatalf("op lists: %d %v", s, m)
	}
	s, m = call("op2", "POST", path, `{"reason":"dropped"}`)
	if s != 202 || m["state"] != spool.ReplayPending {
		t.Fatalf("request above threshold: %d %v", s, m)
	}
	rid := itoa(int64(m["id"].(float64)))
	// The requester cannot approve it, even holding the approver role; nor can an operator.
	if s, _ := call("op2", "POST", "/v1/replays/"+rid+"/approve", ""); s != 403 {
		t.Fatalf("self-approval: %d", s)
	}
	if s, _ := call("op", "POST", "/v1/replays/"+rid+"/approve", ""); s != 403 {
		t.Fatalf("operator approving: %d", s)
	}
	if s, _ := call("other", "POST", "/v1/replays/"+rid+"/approve", ""); s != 404 {
		t.Fatalf("other tenant approving: %d", s)
	}
	if st := e.sim.Stats(); st.Accepted != 0 {
		t.Fatal("sent before approval")
	}
	s, m = call("ap", "POST", "/v1/replays/"+rid+"/approve", "")
	if s != 200 || m["state"] != spool.ReplayDone || m["approved_by"] == "" {
		t.Fatalf("approve: %d %v", s, m)
	}
	e.waitState("RP-MC", spool.BatchSettled, 60*time.Second)
	e.reconciled("RP-MC")
	if s, m := call("ap", "GET", "/v1/replays", ""); s != 200 || len(m["items"].([]any)) != 1 {
		t.Fatalf("replays list: %d %v", s, m)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
