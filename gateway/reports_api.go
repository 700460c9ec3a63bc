package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"yktgw/config"
	"yktgw/gateway/report"
	"yktgw/spool"
)

// OpenFields opens a report row's personal fields (report.Decryptor).
func (o *fieldOpener) OpenFields(r *report.Row) (name, id, account []byte, err error) {
	return o.openFields(r.BatchID, r.Seq, r.FieldsEnc, r.NameEnc, r.IDEnc, r.AccountEnc)
}

// NewReportBuilder builds the check-list writer from the config's reports
// section and subsidy departments, over a store that implements
// report.Store (spool/sqlite does). A Builder is not safe for concurrent
// use: build one per report.
func NewReportBuilder(cfg *config.Config, st spool.Store, fc FieldCipher) (*report.Builder, error) {
	rs, ok := st.(report.Store)
	if !ok {
		return nil, fmt.Errorf("gateway: spool %T cannot answer reports", st)
	}
	depts := map[string]string{}
	for _, s := range cfg.Subsidies {
		if s.Department != "" {
			depts[s.Code] = s.Department
		}
	}
	r := cfg.Reports.Sanwu
	return report.New(rs, &fieldOpener{fc: fc}, report.Options{
		Rules: report.Rules{MissingName: r.MissingName, MissingIDNumber: r.MissingIDNumber, MissingAccount: r.MissingAccount,
			BadAccountReasons: r.BadAccountReasons},
		Departments: depts,
	})
}

// FullView reports whether the principal's roles see personal data in clear
// in reports (config reports.full_view; by default admin and operator, the
// gateway's own staff, who settle returns with bank ops teams by account
// number). Everyone else (submitter, viewer, approver) gets masks: the
// platform holds its data in clear and finds a record by batch id and seq.
func FullView(cfg *config.Config, p *Principal) bool {
	for _, r := range p.Roles {
		if slices.Contains(cfg.Reports.FullView, r) {
			return true
		}
	}
	return false
}

// reportRoutes registers the check lists and the return list.
func (g *Gateway) reportRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/reports/{kind}", g.auth(PermRead, g.getReport))
	mux.Handle("GET /v1/batches/{id}/return-list", g.auth(PermRead, g.getReturnList))
}

var periodRE = regexp.MustCompile(`^[0-9]{4}(-[0-9]{2})?$`)

func (g *Gateway) getReport(w http.ResponseWriter, r *http.Request) {
	kind, err := report.ParseKind(r.PathValue("kind"))
	if err != nil {
		apiError(w, 404, "kind", "report.unknown", "无此报表 (no such report: sanwu, duplicates, shared-accounts, cross-department)")
		return
	}
	q := r.URL.Query()
	format, err := report.ParseFormat(q.Get("format"))
	if err != nil {
		apiError(w, 400, "format", "format.invalid", "format 取值 xlsx|csv")
		return
	}
	who := principal(r)
	subsidy, period, tenant := q.Get("subsidy"), q.Get("period"), q.Get("tenant")
	across := q.Get("across_periods") == "true"
	var issues []string
	if subsidy != "" {
		if _, ok := g.cfg.Subsidy(subsidy); !ok {
			apiError(w, 400, "subsidy", "subsidy.unknown", "未配置的补贴项目 (unknown subsidy code)")
			return
		}
	} else if kind != report.KindCrossDepartment {
		issues = append(issues, "subsidy")
	}
	if period != "" && !periodRE.MatchString(period) {
		apiError(w, 400, "period", "period.invalid", "期次格式应为 YYYY 或 YYYY-MM (period must be YYYY or YYYY-MM)")
		return
	}
	if period == "" && kind != report.KindCrossDepartment && !(kind == report.KindDuplicates && across) {
		issues = append(issues, "period")
	}
	if len(issues) > 0 {
		apiError(w, 400, issues[0], issues[0]+".required", "缺少参数 (required): "+strings.Join(issues, ", "))
		return
	}
	scope := report.Scope{Subsidy: subsidy, Period: period, Tenants: who.TenantPrefixes()}
	if tenant != "" {
		if !ValidDivision(tenant) {
			apiError(w, 400, "tenant", "tenant.invalid", "区划代码应为 6、9 或 12 位数字 (tenant must be a division code)")
			return
		}
		if !who.Covers(tenant) {
			apiError(w, 403, "tenant", "tenant.forbidden", "令牌无权访问该区划 (tenant outside the token's scope)")
			return
		}
		scope.Tenants = []string{DivisionPrefix(tenant)}
	}
	full := FullView(g.cfg, who)
	detail, _ := json.Marshal(map[string]any{"tenant": tenant, "subsidy": subsidy, "period": period, "across_periods": across,
		"format": format, "full_view": full})
	g.serveReport(w, r, string(kind), detail, format, fmt.Sprintf("%s-%s-%s-%s.%s", kind, orAll(tenant), orAll(subsidy), orAll(period), format),
		func(b *report.Builder, out *lazyWriter) (report.Summary, error) {
			return b.Write(r.Context(), report.Request{Kind: kind, Scope: scope, AcrossPeriods: across, Full: full, Format: format}, out)
		})
}

func (g *Gateway) getReturnList(w http.ResponseWriter, r *http.Request) {
	format, err := report.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		apiError(w, 400, "format", "format.invalid", "format 取值 xlsx|csv")
		return
	}
	b := g.visible(w, r)
	if b == nil {
		return
	}
	full := FullView(g.cfg, principal(r))
	detail, _ := json.Marshal(map[string]any{"batch_id": b.BatchID, "format": format, "full_view": full})
	g.serveReport(w, r, string(report.KindReturnList), detail, format, fmt.Sprintf("return-list-%s.%s", safeName(b.BatchID), format),
		func(rb *report.Builder, out *lazyWriter) (report.Summary, error) {
			return rb.ReturnList(r.Context(), b.BatchID, full, format, out, nil)
		})
}

// serveReport records who exported what in the audit chain (before a byte of
// personal data leaves), then streams the file. Until the first byte is
// written a failure is still a clean 503.
func (g *Gateway) serveReport(w http.ResponseWriter, r *http.Request, subject string, detail []byte, format report.Format, filename string,
	write func(*report.Builder, *lazyWriter) (report.Summary, error)) {
	who := principal(r)
	b, err := NewReportBuilder(g.cfg, g.store, g.fields)
	if err != nil {
		g.log.Error("report builder", "err", err)
		apiError(w, 503, "", "report.unavailable", "暂时无法生成报表 (reports unavailable)")
		return
	}
	if err := g.store.Audit(r.Context(), spool.Event{Actor: who.TokenID, Action: "report.exported", Subject: subject, Detail: detail}); err != nil {
		g.log.Error("report audit", "err", err)
		apiError(w, 503, "", "spool.unavailable", "暂时无法服务 (spool unavailable)")
		return
	}
	out := &lazyWriter{w: w, start: func() {
		h := w.Header()
		h.Set("Content-Type", format.ContentType())
		h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(200)
	}}
	sum, err := write(b, out)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		g.log.Error("report failed", "report", subject, "by", who, "err", err)
		if !out.started {
			apiError(w, 503, "", "report.failed", "报表生成失败，请重试 (report failed, retry)")
		}
		return
	}
	if !out.started {
		out.Write(nil)
	}
	g.log.Info("report exported", "report", subject, "by", who, "rows", sum.Rows, "groups", sum.Groups)
}

// lazyWriter sends the response header on the first write.
type lazyWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start()
	}
	return l.w.Write(p)
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

// safeName keeps a batch id usable in a file name (batch ids are
// [A-Za-z0-9._-] already; this is a second guard for the header).
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
