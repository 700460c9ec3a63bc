package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"yktgw/banks"
	"yktgw/crypto"
	"yktgw/spool"
)

// metrics are the gateway's Prometheus series (served on /metrics): counters
// bumped where things happen, gauges computed at scrape time from the spool
// (opsCollector, cached briefly), the channel probes and the certificates.
type metrics struct {
	reg              *prometheus.Registry
	deliveries       *prometheus.CounterVec
	deliveryAttempts *prometheus.CounterVec
	deliveryFailures *prometheus.CounterVec
	filesSealed      *prometheus.CounterVec
	feedbackFiles    *prometheus.CounterVec
	recordsResult    *prometheus.CounterVec
	fenResult        *prometheus.CounterVec
	intakeRecords    *prometheus.CounterVec
	intakeBatches    *prometheus.CounterVec
	webhookAttempts  *prometheus.CounterVec
	channelUp        *prometheus.GaugeVec
	ops              *opsCollector
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_deliveries_sent_total",
			Help: "Deliveries (files) the bank side confirmed."}, []string{"bank"}),
		deliveryAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_delivery_attempts_total",
			Help: "Attempts to send a delivery (file) to a bank."}, []string{"bank"}),
		deliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_delivery_failures_total",
			Help: "Failed delivery attempts by what followed: retry (later), unknown (the bank side will be asked), dead (gave up)."}, []string{"bank", "kind"}),
		filesSealed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_files_sealed_total",
			Help: "Outbound files sealed, by where their detail lines came from: body (rendered at intake) or records (read from the spool)."}, []string{"bank", "from"}),
		feedbackFiles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_feedback_files_total",
			Help: "Return files by outcome: applied, duplicate, refused."}, []string{"bank", "outcome"}),
		recordsResult: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_records_result_total",
			Help: "Records the banks reported, by status."}, []string{"bank", "status"}),
		fenResult: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_fen_result_total",
			Help: "Fen the banks reported, by status."}, []string{"bank", "status"}),
		intakeBatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_intake_batches_total",
			Help: "Submissions by HTTP status."}, []string{"status"}),
		intakeRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_intake_records_total",
			Help: "Records accepted at intake, by bank."}, []string{"bank"}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_webhook_attempts_total",
			Help: "Webhook deliveries attempted, by result: delivered, failed."}, []string{"result"}),
		channelUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "yktgw_channel_up",
			Help: "1 if the bank channel's last ping succeeded, 0 if it failed (channels that can ping only)."}, []string{"bank"}),
		ops: &opsCollector{ttl: 15 * time.Second},
	}
	m.reg.MustRegister(m.deliveries, m.deliveryAttempts, m.deliveryFailures, m.filesSealed, m.feedbackFiles, m.recordsResult, m.fenResult,
		m.intakeBatches, m.intakeRecords, m.webhookAttempts, m.channelUp, m.ops,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// logStats serves the spool's write-ahead log figures (SQLite's checkpoints).
func (m *metrics) logStats(ls spool.LogStatter) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "yktgw_spool_log_bytes",
			Help: "Size of the spool's write-ahead log file."}, func() float64 { return float64(ls.LogStats().LogBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "yktgw_spool_log_copy_deferred",
			Help: "1 while copying the write-ahead log into the database waits for the spool to be quiet (commits keep coming), else 0."},
			func() float64 {
				if ls.LogStats().Deferred {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "yktgw_spool_log_copies_total",
			Help: "Checkpoints that copied the write-ahead log into the database."}, func() float64 { return float64(ls.LogStats().Copies) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "yktgw_spool_log_copy_seconds_total",
			Help: "Wall time spent copying the write-ahead log into the database."}, func() float64 { return ls.LogStats().Time.Seconds() }),
	)
}

func (m *metrics) deliverySent(bank string) { m.deliveries.WithLabelValues(bank).Inc() }

func (m *metrics) deliveryAttempt(bank string) { m.deliveryAttempts.WithLabelValues(bank).Inc() }

// deliveryFailed counts a failed attempt: kind is retry, unknown or dead.
func (m *metrics) deliveryFailed(bank, kind string) {
	m.deliveryFailures.WithLabelValues(bank, kind).Inc()
}

func (m *metrics) webhookAttempt(result string) { m.webhookAttempts.WithLabelValues(result).Inc() }

func (m *metrics) feedbackRefused(bank string) {
	m.feedbackFiles.WithLabelValues(bank, "refused").Inc()
}

func (m *metrics) feedbackApplied(bank string, r spool.ApplyResult) {
	m.feedbackFiles.WithLabelValues(bank, "applied").Inc()
	m.recordsResult.WithLabelValues(bank, "PAID").Add(float64(r.Paid))
	m.recordsResult.WithLabelValues(bank, "FAILED").Add(float64(r.Failed))
	m.fenResult.WithLabelValues(bank, "PAID").Add(float64(r.PaidFen))
	m.fenResult.WithLabelValues(bank, "FAILED").Add(float64(r.FailedFen))
}

var (
	descBatches      = prometheus.NewDesc("yktgw_batches", "Batches in the spool by state and bank.", []string{"state", "bank"}, nil)
	descBatchesFen   = prometheus.NewDesc("yktgw_batches_fen", "Declared total fen of the batches in the spool by state and bank.", []string{"state", "bank"}, nil)
	descRecords      = prometheus.NewDesc("yktgw_records", "Records in the spool by state and bank.", []string{"state", "bank"}, nil)
	descRecordsFen   = prometheus.NewDesc("yktgw_records_fen", "Fen of the records in the spool by state and bank.", []string{"state", "bank"}, nil)
	descFeedbackLag  = prometheus.NewDesc("yktgw_feedback_lag_seconds", "Age of the oldest delivery the bank confirmed but has not answered with feedback (0: none waiting).", []string{"bank"}, nil)
	descOverdue      = prometheus.NewDesc("yktgw_records_overdue", "Records still without the bank's word after their delivery's feedback deadline (SENT or UNKNOWN).", []string{"bank"}, nil)
	descDead         = prometheus.NewDesc("yktgw_deliveries_dead", "Deliveries that gave up (DEAD): ops must decide.", []string{"bank"}, nil)
	descAlarms       = prometheus.NewDesc("yktgw_alarms_open", "Open alarms by kind.", []string{"kind"}, nil)
	descOutbox       = prometheus.NewDesc("yktgw_webhook_outbox", "Webhook outbox items by state (PENDING, FAILING, DELIVERED).", []string{"state"}, nil)
	descOutboxOldest = prometheus.NewDesc("yktgw_webhook_oldest_undelivered_seconds", "Age of the oldest webhook item not yet delivered (0: none).", nil, nil)
	descCertDays     = prometheus.NewDesc("yktgw_cert_days_left", "Days until a certificate expires (negative: expired). owner is gateway (ours) or bank.", []string{"owner", "bank"}, nil)
	descSpoolBytes   = prometheus.NewDesc("yktgw_spool_bytes", "Size of the spool database file and its WAL in bytes.", nil, nil)
	descScrapeOK     = prometheus.NewDesc("yktgw_spool_stats_ok", "1 if the spool could be read for these gauges at the last refresh.", nil, nil)
)

// opsCollector computes gauges from the spool at scrape time, read-only:
// the spool's answer is cached for ttl and refreshed in the background, so
// scrapes stay cheap; the series are at most ttl plus one refresh old.
type opsCollector struct {
	g   atomic.Pointer[Gateway] // set once the daemon's workers start
	ttl time.Duration

	mu         sync.Mutex
	at         time.Time
	stats      *spool.OpsStats
	err        error
	refreshing chan struct{} // closed when the running refresh ends
}

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBatches, descBatchesFen, descRecords, descRecordsFen, descFeedbackLag, descOverdue,
		descDead, descAlarms, descOutbox, descOutboxOldest, descCertDays, descSpoolBytes, descScrapeOK} {
		ch <- d
	}
}

// snapshot returns the spool's stats without making a scrape wait for the
// spool: stale stats are refreshed in the background (one refresh at a
// time) and the scrape gets the last good ones; only the very first scrape
// waits. The record tally scans the records table (about 0.3-0.7 s per
// 200,000 records on the 2-core machine), so it must not run per scrape.
func (c *opsCollector) snapshot(g *Gateway, src spool.OpsStatser) (*spool.OpsStats, error) {
	c.mu.Lock()
	now := g.now()
	if c.stats != nil && now.Sub(c.at) < c.ttl {
		defer c.mu.Unlock()
		return c.stats, c.err
	}
	first := c.stats == nil
	if c.refreshing == nil {
		done := make(chan struct{})
		c.refreshing = done
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := src.OpsStats(ctx, g.now())
			c.mu.Lock()
			defer c.mu.Unlock()
			c.refreshing = nil
			c.err = err
			if err != nil {
				g.log.Error("metrics: spool stats", "err", err)
				return // keep the last good values, flagged by yktgw_spool_stats_ok 0
			}
			c.stats, c.at = st, g.now()
		}()
	}
	done := c.refreshing
	c.mu.Unlock()
	if first {
		<-done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, c.err
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g.Load()
	if g == nil {
		return
	}
	now := g.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if g.party.Cert != nil {
		gauge(descCertDays, crypto.CertDaysLeft(g.party.Cert, now), "gateway", "")
	}
	for code, b := range g.banks {
		if b.Cert != nil {
			gauge(descCertDays, crypto.CertDaysLeft(b.Cert, now), "bank", code)
		}
	}
	src, ok := g.store.(spool.OpsStatser)
	if !ok {
		return
	}
	st, err := c.snapshot(g, src)
	ok = err == nil
	gauge(descScrapeOK, map[bool]float64{true: 1, false: 0}[ok])
	if st == nil {
		return
	}
	for _, k := range st.Batches {
		gauge(descBatches, float64(k.Count), k.State, k.Bank)
		gauge(descBatchesFen, float64(k.Fen), k.State, k.Bank)
	}
	for _, k := range st.Records {
		gauge(descRecords, float64(k.Count), k.State, k.Bank)
		gauge(descRecordsFen, float64(k.Fen), k.State, k.Bank)
	}
	// Every configured bank gets these series, 0 when nothing is wrong.
	bankSet := map[string]bool{}
	for code := range g.banks {
		bankSet[code] = true
	}
	for code := range st.DeadDeliveries {
		bankSet[code] = true
	}
	for code := range st.OldestUnanswered {
		bankSet[code] = true
	}
	for code := range st.OverdueRecords {
		bankSet[code] = true
	}
	for code := range bankSet {
		lag := 0.0
		if t, ok := st.OldestUnanswered[code]; ok {
			lag = max(0, now.Sub(t).Seconds())
		}
		gauge(descFeedbackLag, lag, code)
		gauge(descOverdue, float64(st.OverdueRecords[code]), code)
		gauge(descDead, float64(st.DeadDeliveries[code]), code)
	}
	for kind, n := range st.OpenAlarms {
		gauge(descAlarms, float64(n), kind)
	}
	for _, s := range []spool.OutboxState{spool.OutboxPending, spool.OutboxFailing, spool.OutboxDelivered} {
		gauge(descOutbox, float64(st.Outbox[s]), string(s))
	}
	oldest := 0.0
	if !st.OldestUndelivered.IsZero() {
		oldest = max(0, now.Sub(st.OldestUndelivered).Seconds())
	}
	gauge(descOutboxOldest, oldest)
	gauge(descSpoolBytes, float64(st.SpoolBytes))
}

// pingChannels probes every bank channel that can ping and records the result.
func (g *Gateway) pingChannels(ctx context.Context) {
	for code, b := range g.banks {
		p, ok := b.Channel.(banks.Pinger)
		if !ok {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		up := 1.0
		if err != nil {
			up = 0
			g.log.Warn("channel ping failed", "bank", code, "err", err)
		}
		g.metrics.channelUp.WithLabelValues(code).Set(up)
	}
}

// channelPingInterval is how often the channels are pinged for yktgw_channel_up.
var channelPingInterval = 30 * time.Second

// startOpsWorkers starts what this file and webhook.go need: the spool
// gauges are bound, the channels pinged periodically, and the webhook outbox
// delivered. Called from startWorkers.
func (g *Gateway) startOpsWorkers(ctx context.Context, wg *sync.WaitGroup) {
	g.metrics.ops.g.Store(g)
	loop := func(interval time.Duration, fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				fn(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if len(g.banks) > 0 {
		loop(channelPingInterval, g.pingChannels)
	}
	if w := newWebhooker(g); w != nil {
		every := g.cfg.WebhookOutbox.PollInterval
		if every <= 0 {
			every = time.Second
		}
		loop(every, w.tick)
	}
}
