package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"yktgw/internal/gen"
	"yktgw/spool"
)

// settle drives a submitted batch to SETTLED through the spool (every record paid).
func settle(t *testing.T, e *env, id string) {
	t.Helper()
	ctx := context.Background()
	ds, err := e.store.PlanDeliveries(ctx, id, 50000, BankBatchNo, spool.Event{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F", SealedPath: "/x", Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now()},
	} {
		if err := e.store.ChangeDelivery(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.store.ApplyFeedback(ctx, spool.Feedback{Bank: d.Bank, Name: "R" + id, Size: 1, SM3: []byte("sm3" + id), BankBatchNo: d.BankBatchNo},
		func(add func(spool.ResultRow) error) error {
			return e.store.RecordRange(ctx, id, d.FirstSeq, d.LastSeq, func(r *spool.Record) error {
				return add(spool.ResultRow{Seq: r.Seq, Paid: true, AmountFen: r.AmountFen, BankSerial: "S"})
			})
		})
	if err != nil || !res.Settled {
		t.Fatalf("settle %s: %+v %v", id, res, err)
	}
}

func TestWebhookOutboxEndpointRolesAndTenants(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	submit := func(spec gen.Spec) {
		var buf bytes.Buffer
		gen.WriteNDJSON(&buf, spec)
		res, err := e.g.Submit(ctx, &Principal{TokenID: "t", Tenants: []string{"*"}, Roles: []string{RoleSubmitter}}, &buf, true)
		if err != nil || res.Status != StatusCreated {
			t.Fatalf("submit %s: %+v %v", spec.BatchID, res.Errors, err)
		}
		settle(t, e, spec.BatchID)
	}
	submit(gen.Spec{BatchID: "LN-1", Tenant: "210102", N: 1500})                   // 2 pages + settled
	submit(gen.Spec{BatchID: "JL-1", Tenant: "220102", N: 10, PersonOffset: 9000}) // 1 page + settled
	ob := e.store
	if n, err := ob.RouteOutbox(ctx, func(string) []spool.OutboxTarget { return []spool.OutboxTarget{{URL: "https://p/h", Tenant: "*"}} }, 0); err != nil || n != 5 {
		t.Fatalf("routed %d %v", n, err)
	}
	items, _ := ob.OutboxItems(ctx, spool.OutboxFilter{})
	for _, it := range items {
		if it.Event.BatchID == "LN-1" && it.Event.Kind == spool.EventBatchSettled {
			if _, err := ob.OutboxFailed(ctx, spool.OutboxFailure{ID: it.ID, Status: 502, Error: "bad gateway", NextAttempt: time.Now().Add(time.Hour), AlarmAfter: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if it.Event.BatchID == "JL-1" && it.Event.Kind == spool.EventBatchResults {
			if err := ob.OutboxDelivered(ctx, it.ID, 200); err != nil {
				t.Fatal(err)
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/webhooks/outbox", e.g.WebhookOutboxHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(token, query string) (int, OutboxList) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/webhooks/outbox"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+e.tokens[token])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out OutboxList
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	batches := func(l OutboxList) map[string]int {
		m := map[string]int{}
		for _, it := range l.Items {
			m[it.BatchID]++
		}
		return m
	}
	cases := []struct {
		name, token, query string
		status             int
		want               map[string]int
	}{
		{"no token", "", "?state=all", 401, nil},
		{"submitter role refused", "county", "?state=all", 403, nil},
		{"operator sees all", "ops", "?state=all", 200, map[string]int{"LN-1": 3, "JL-1": 2}},
		{"viewer sees own tenant", "viewer", "?state=all", 200, map[string]int{"LN-1": 3}},
		{"city covers its county", "city", "?state=all", 200, map[string]int{"LN-1": 3}},
		{"other tenant", "other", "?state=all", 200, map[string]int{"JL-1": 2}},
		{"failing", "ops", "?state=failing", 200, map[string]int{"LN-1": 1}},
		{"undelivered by default", "ops", "", 200, map[string]int{"LN-1": 3, "JL-1": 1}},
		{"delivered", "other", "?state=delivered", 200, map[string]int{"JL-1": 1}},
		{"bad state", "ops", "?state=lost", 400, nil},
		{"bad cursor", "ops", "?cursor=x", 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := get(tc.token, tc.query)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			if tc.want == nil {
				return
			}
			got := batches(out)
			if len(got) != len(tc.want) {
				t.Fatalf("items by batch %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("items by batch %v, want %v", got, tc.want)
				}
			}
		})
	}
	// Paging: two at a time, a narrow tenant still gets full pages.
	var seen []int64
	cursor := ""
	for {
		status, out := get("viewer", "?state=all&limit=2"+cursor)
		if status != 200 {
			t.Fatalf("page: %d", status)
		}
		for _, it := range out.Items {
			seen = append(seen, it.ID)
			if it.BatchID != "LN-1" || it.EventID == "" || it.URL != "https://p/h" {
				t.Fatalf("item %+v", it)
			}
		}
		if out.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + out.NextCursor
	}
	if len(seen) != 3 || seen[0] >= seen[1] || seen[1] >= seen[2] {
		t.Fatalf("paged ids %v", seen)
	}
	_, out := get("ops", "?state=failing")
	if it := out.Items[0]; it.Attempts != 1 || it.LastStatus != 502 || it.NextAttempt == nil || it.Type != spool.EventBatchSettled {
		t.Fatalf("failing item %+v", it)
	}
}
