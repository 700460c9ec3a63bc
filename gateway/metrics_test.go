package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"yktgw/banks/sim"
	"yktgw/config"
	"yktgw/gateway"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// scrape reads /metrics through the API handler into "name{labels}" -> value
// (labels as exposed, sorted by name).
func scrape(t *testing.T, g *gateway.Gateway) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsFromSpool(t *testing.T) {
	secret := []byte("platform-secret-0123456789")
	plat := newPlatform(t, secret)
	plat.down.Store(true)
	e := newHookEnv(t, func(dir string) []config.Webhook {
		return []config.Webhook{{Tenant: "*", URL: plat.srv.URL, SecretFile: writeSecret(t, dir, "s", secret)}}
	})
	who := &gateway.Principal{TokenID: "test", Tenants: []string{"*"}, Roles: []string{gateway.RoleSubmitter}}
	submit := func(spec gen.Spec) {
		var buf bytes.Buffer
		gen.WriteNDJSON(&buf, spec)
		res, err := e.g.Submit(context.Background(), who, &buf, true)
		if err != nil || res.Status != 201 {
			t.Fatalf("submit %s: %d %+v %v", spec.BatchID, res.Status, res.Errors, err)
		}
	}
	batchIs := func(id string, want spool.BatchState) func() bool {
		return func() bool {
			b, err := e.g.Store().Batch(context.Background(), id)
			return err == nil && b.State == want
		}
	}
	submit(gen.Spec{BatchID: "M-1", N: 1200})
	e.waitFor("M-1 settled", 60*time.Second, batchIs("M-1", spool.BatchSettled))

	// The bank goes quiet: M-2 is sent, never answered, and passes its deadline.
	e.side.SetFaults(sim.Faults{WithholdReturns: true})
	e.g.Profile("DEMO").FeedbackDeadline = 300 * time.Millisecond
	submit(gen.Spec{BatchID: "M-2", N: 300, PersonOffset: 10000})
	e.waitFor("M-2 sent", 30*time.Second, batchIs("M-2", spool.BatchSent))
	e.waitFor("M-2 overdue", 30*time.Second, func() bool {
		cs, _ := e.g.Store().RecordCounts(context.Background(), "M-2")
		return len(cs) == 1 && cs[0].State == spool.RecordUnknown
	})
	e.waitFor("webhook attempts", 30*time.Second, func() bool { return plat.refused.Load() > 0 })

	m := scrape(t, e.g)
	must := func(series string) float64 {
		t.Helper()
		v, ok := m[series]
		if !ok {
			var near []string
			for k := range m {
				if strings.HasPrefix(k, series[:strings.IndexAny(series+"{", "{")]) {
					near = append(near, k)
				}
			}
			t.Fatalf("series %s missing; have %v", series, near)
		}
		return v
	}
	b1, _ := e.g.Store().Batch(context.Background(), "M-1")
	b2, _ := e.g.Store().Batch(context.Background(), "M-2")
	c1 := map[spool.RecordState]spool.StateCount{}
	cs, _ := e.g.Store().RecordCounts(context.Background(), "M-1")
	for _, c := range cs {
		c1[c.State] = c
	}
	checks := []struct {
		series string
		want   float64
	}{
		{`yktgw_batches{bank="DEMO",state="SETTLED"}`, 1},
		{`yktgw_batches{bank="DEMO",state="SENT"}`, 1},
		{`yktgw_batches_fen{bank="DEMO",state="SETTLED"}`, float64(b1.TotalFen)},
		{`yktgw_batches_fen{bank="DEMO",state="SENT"}`, float64(b2.TotalFen)},
		{`yktgw_records{bank="DEMO",state="PAID"}`, float64(c1[spool.RecordPaid].Count)},
		{`yktgw_records{bank="DEMO",state="FAILED"}`, float64(c1[spool.RecordFailed].Count)},
		{`yktgw_records{bank="DEMO",state="UNKNOWN"}`, 300},
		{`yktgw_records_fen{bank="DEMO",state="PAID"}`, float64(c1[spool.RecordPaid].Fen)},
		{`yktgw_records_fen{bank="DEMO",state="UNKNOWN"}`, float64(b2.TotalFen)},
		{`yktgw_records_overdue{bank="DEMO"}`, 300},
		{`yktgw_deliveries_dead{bank="DEMO"}`, 0},
		{`yktgw_channel_up{bank="DEMO"}`, 1},
		{`yktgw_alarms_open{kind="feedback_overdue"}`, 1},
		{`yktgw_webhook_outbox{state="DELIVERED"}`, 0},
		{`yktgw_spool_stats_ok`, 1},
	}
	for _, c := range checks {
		if got := must(c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
	if c1[spool.RecordPaid].Count+c1[spool.RecordFailed].Count != 1200 || c1[spool.RecordFailed].Count == 0 {
		t.Fatalf("M-1 counts %+v", c1)
	}
	if v := must(`yktgw_webhook_outbox{state="PENDING"}`) + must(`yktgw_webhook_outbox{state="FAILING"}`); v != 3 {
		t.Errorf("undelivered webhook items %v, want 3 (2 result pages + settled)", v)
	}
	ranges := []struct {
		series   string
		min, max float64
	}{
		{`yktgw_feedback_lag_seconds{bank="DEMO"}`, 0.1, 120},
		{`yktgw_webhook_oldest_undelivered_seconds`, 0.01, 120},
		{`yktgw_delivery_attempts_total{bank="DEMO"}`, 2, 10},
		{`yktgw_webhook_attempts_total{result="failed"}`, 1, 1e6},
		{`yktgw_cert_days_left{bank="",owner="gateway"}`, 1, 3700},
		{`yktgw_cert_days_left{bank="DEMO",owner="bank"}`, 1, 3700},
		{`yktgw_spool_bytes`, 4096, 1 << 30},
		// The SQLite spool's log figures are served (their values depend on
		// the checkpointer's ticks: spool/sqlite tests them).
		{`yktgw_spool_log_bytes`, 0, 1 << 30},
		{`yktgw_spool_log_copy_deferred`, 0, 1},
		{`yktgw_spool_log_copies_total`, 0, 1e6},
		{`yktgw_spool_log_copy_seconds_total`, 0, 1e6},
	}
	for _, r := range ranges {
		if v := must(r.series); v < r.min || v > r.max {
			t.Errorf("%s = %v, want within [%v, %v]", r.series, v, r.min, r.max)
		}
	}
}
