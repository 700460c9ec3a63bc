package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"yktgw/spool"
)

// metrics are the gateway's Prometheus series (served on /metrics).
type metrics struct {
	reg           *prometheus.Registry
	deliveries    *prometheus.CounterVec
	feedbackFiles *prometheus.CounterVec
	recordsResult *prometheus.CounterVec
	fenResult     *prometheus.CounterVec
	intakeRecords *prometheus.CounterVec
	intakeBatches *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "yktgw_deliveries_sent_total",
			Help: "Deliveries (files) the bank side confirmed."}, []string{"bank"}),
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
	}
	m.reg.MustRegister(m.deliveries, m.feedbackFiles, m.recordsResult, m.fenResult, m.intakeBatches, m.intakeRecords,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) deliverySent(bank string) { m.deliveries.WithLabelValues(bank).Inc() }

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
