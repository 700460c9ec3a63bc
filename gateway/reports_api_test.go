package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/xuri/excelize/v2"

	"yktgw/gateway/report"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// reportEnv is newEnv plus a small history built through the real intake
// path and the spool's delivery and feedback steps:
//
//	R1 210102 GDZL 2026-11: P1..P6; seq 3 uses P2's account; seq 4 FAILED
//	   ACCOUNT_CLOSED (the account is remembered), seq 5 FAILED NAME_MISMATCH.
//	R2 210102 GDZL 2026-11: P5 again (reissue of R1 seq 5).
//	R3 210102 GDZL 2026-12: P1, P4 (P4 with the closed account).
//	R4 210102 DBBZ 2026-11: P1 with P7's account, P2 with its own account.
//	O1 220102 GDZL 2026-11: P20 with P2's account (another tenant).
type reportEnv struct {
	*env
	people map[int][3]string // i -> name, id, account
	r1     gen.Batch
}

func person(i int) [3]string {
	n, id, a := gen.Person(i)
	return [3]string{n, id, a}
}

func batchOf(id, tenant, subsidy, period string, recs []gen.Record) gen.Batch {
	b := gen.Batch{Header: gen.Header{BatchID: id, Tenant: tenant, Bank: "DEMO", Subsidy: gen.Subsidy{Code: subsidy, Name: "x"},
		Period: period, Memo: "补贴"}}
	for i, r := range recs {
		r.Seq = i + 1
		r.AccountKind = "card"
		if r.AmountFen == 0 {
			r.AmountFen = int64(10000 + 101*i)
		}
		b.Records = append(b.Records, r)
		b.TotalCount++
		b.TotalFen += r.AmountFen
	}
	return b
}

func rec(p [3]string) gen.Record { return gen.Record{Name: p[0], IDNumber: p[1], Account: p[2]} }

func newReportEnv(t *testing.T) *reportEnv {
	e := newEnv(t)
	e.t = t
	ctx := context.Background()
	e.g.cfg.Subsidies[0].Department = "agriculture"   // GDZL
	e.g.cfg.Subsidies[1].Department = "civil_affairs" // DBBZ
	for _, tk := range []struct {
		name    string
		tenants []string
		roles   []string
	}{
		{"admin", []string{"*"}, []string{RoleAdmin}},
		{"approver", []string{"210102"}, []string{RoleApprover}},
	} {
		secret, _, err := CreateToken(ctx, e.store, tk.name, tk.tenants, tk.roles, "test")
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[tk.name] = secret
	}
	re := &reportEnv{env: e, people: map[int][3]string{}}
	for _, i := range []int{1, 2, 3, 4, 5, 6, 7, 20} {
		re.people[i] = person(i)
	}
	P := re.people
	var r1 []gen.Record
	for i := 1; i <= 6; i++ {
		r1 = append(r1, rec(P[i]))
	}
	r1[2].Account = P[2][2]
	re.r1 = batchOf("R1", "210102", "GDZL", "2026-11", r1)
	re.submit("county", re.r1, nil)
	re.settle("R1", re.r1, map[int]string{4: "ACCOUNT_CLOSED", 5: "NAME_MISMATCH"})
	re.submit("county", batchOf("R2", "210102", "GDZL", "2026-11", []gen.Record{rec(P[5])}), &ReissueJSON{BatchID: "R1", Seqs: []int{5}})
	re.submit("county", batchOf("R3", "210102", "GDZL", "2026-12", []gen.Record{rec(P[1]), rec(P[4])}), nil)
	p1 := rec(P[1])
	p1.Account = P[7][2]
	re.submit("county", batchOf("R4", "210102", "DBBZ", "2026-11", []gen.Record{p1, rec(P[2])}), nil)
	p20 := rec(P[20])
	p20.Account = P[2][2]
	re.submit("other", batchOf("O1", "220102", "GDZL", "2026-11", []gen.Record{p20}), nil)
	return re
}

func (re *reportEnv) submit(token string, b gen.Batch, reissue *ReissueJSON) {
	re.t.Helper()
	body := struct {
		gen.Header
		ReissueOf *ReissueJSON `json:"reissue_of,omitempty"`
		Records   []gen.Record `json:"records"`
	}{b.Header, reissue, b.Records}
	if r := re.post(token, body); r.status != 201 {
		re.t.Fatalf("submit %s: %d %s", b.BatchID, r.status, r.body)
	}
}

// settle sends a QUEUED batch and applies one return file: failed maps seq
// to its reason, every other record is paid.
func (re *reportEnv) settle(id string, b gen.Batch, failed map[int]string) {
	t := re.t
	t.Helper()
	ctx := context.Background()
	st := re.store
	ds, err := st.PlanDeliveries(ctx, id, 1000, func(bank string, n int64) string { return fmt.Sprintf("%s%08d", bank, n) }, spool.Event{Actor: "test"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("plan %s: %v %v", id, ds, err)
	}
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F" + d.BankBatchNo, SealedPath: "/x/" + d.BankBatchNo, Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now(), DeadlineAt: time.Now().Add(time.Hour)},
	} {
		if err := st.ChangeDelivery(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	f := spool.Feedback{Bank: d.Bank, Name: "RET-" + id, Size: 1, SM3: []byte("ret-" + id), BankBatchNo: d.BankBatchNo, BadReasons: badReasons}
	res, err := st.ApplyFeedback(ctx, f, func(add func(spool.ResultRow) error) error {
		for _, r := range b.Records {
			row := spool.ResultRow{Seq: r.Seq, Paid: true, AmountFen: r.AmountFen, BankCode: "0000", BankSerial: fmt.Sprint("S", r.Seq)}
			if reason, ok := failed[r.Seq]; ok {
				row = spool.ResultRow{Seq: r.Seq, Reason: reason, BankCode: "E" + fmt.Sprint(r.Seq), BankMessage: "=银行说明" + reason}
			}
			if err := add(row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(res.Anomalies) > 0 || res.Failed != len(failed) {
		t.Fatalf("apply %s: %+v %v", id, res, err)
	}
}

// get fetches a report; it returns status, content type and body.
func (re *reportEnv) get(token, path string) (int, string, []byte) {
	re.t.Helper()
	req, _ := http.NewRequest("GET", re.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+re.tokens[token])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		re.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

// xlsxRows opens an xlsx with excelize and returns its one sheet's rows.
func xlsxRows(t *testing.T, body []byte, sheet string) [][]string {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("open xlsx: %v", err)
	}
	defer f.Close()
	if l := f.GetSheetList(); len(l) != 1 || l[0] != sheet {
		t.Fatalf("sheets %v, want [%s]", l, sheet)
	}
	rows, err := f.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func col(header []string, title string) int {
	i := slices.Index(header, title)
	if i < 0 {
		panic("no column " + title)
	}
	return i
}

// keys projects rows onto some columns, sorted, for comparison.
func keys(rows [][]string, cols ...string) []string {
	var out []string
	for _, r := range rows[1:] {
		var parts []string
		for _, c := range cols {
			i := col(rows[0], c)
			v := ""
			if i < len(r) {
				v = r[i]
			}
			parts = append(parts, v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	sort.Strings(out)
	return out
}

func TestReportsXLSX(t *testing.T) {
	re := newReportEnv(t)
	P := re.people
	amt := func(seq int) string { return report.Fen(re.r1.Records[seq-1].AmountFen).Yuan() }
	cases := []struct {
		name, token, path, sheet string
		cols                     []string
		want                     []string
		groups                   int
	}{
		{"sanwu", "admin", "/v1/reports/sanwu?tenant=210102&subsidy=GDZL&period=2026-11", "三无名单",
			[]string{"批次号", "记录号", "身份证号", "账号", "金额（元）", "问题"},
			[]string{"R1|4|" + P[4][1] + "|" + P[4][2] + "|" + amt(4) + "|账户已被银行报告为账户已销户（ACCOUNT_CLOSED）"}, 0},
		{"sanwu next period", "admin", "/v1/reports/sanwu?subsidy=GDZL&period=2026-12", "三无名单",
			[]string{"批次号", "记录号", "身份证号"}, []string{"R3|2|" + P[4][1]}, 0},
		{"duplicates in period", "admin", "/v1/reports/duplicates?tenant=210102&subsidy=GDZL&period=2026-11", "重复人员名单",
			[]string{"组号", "批次号", "记录号", "身份证号", "状态"},
			[]string{"1|R1|5|" + P[5][1] + "|已退回", "1|R2|1|" + P[5][1] + "|待发送"}, 1},
		{"duplicates across periods", "admin", "/v1/reports/duplicates?tenant=210102&subsidy=GDZL&across_periods=true", "重复人员名单",
			[]string{"批次号", "记录号", "身份证号", "期次"},
			[]string{"R1|1|" + P[1][1] + "|2026-11", "R1|4|" + P[4][1] + "|2026-11", "R1|5|" + P[5][1] + "|2026-11",
				"R2|1|" + P[5][1] + "|2026-11", "R3|1|" + P[1][1] + "|2026-12", "R3|2|" + P[4][1] + "|2026-12"}, 3},
		{"shared accounts, tenant", "admin", "/v1/reports/shared-accounts?tenant=210102&subsidy=GDZL&period=2026-11", "一卡多人名单",
			[]string{"组号", "账号", "批次号", "记录号", "身份证号"},
			[]string{"1|" + P[2][2] + "|R1|2|" + P[2][1], "1|" + P[2][2] + "|R1|3|" + P[3][1]}, 1},
		{"shared accounts, all tenants", "admin", "/v1/reports/shared-accounts?subsidy=GDZL&period=2026-11", "一卡多人名单",
			[]string{"批次号", "记录号", "区划"},
			[]string{"O1|1|220102", "R1|2|210102", "R1|3|210102"}, 1},
		{"shared accounts, city scope", "ops", "/v1/reports/shared-accounts?tenant=210100&subsidy=GDZL&period=2026-11", "一卡多人名单",
			[]string{"批次号", "记录号"}, []string{"R1|2", "R1|3"}, 1},
		{"cross department", "admin", "/v1/reports/cross-department?tenant=210102&period=2026-11", "跨部门账号比对",
			[]string{"组号", "身份证号", "主管部门", "补贴项目", "账号", "批次号", "记录号"},
			[]string{"1|" + P[1][1] + "|agriculture|GDZL|" + P[1][2] + "|R1|1", "1|" + P[1][1] + "|civil_affairs|DBBZ|" + P[7][2] + "|R4|1"}, 1},
		{"cross department, all periods, one subsidy", "admin", "/v1/reports/cross-department?subsidy=DBBZ", "跨部门账号比对",
			[]string{"批次号", "记录号", "期次"}, []string{"R1|1|2026-11", "R3|1|2026-12", "R4|1|2026-11"}, 1},
		{"return list", "ops", "/v1/batches/R1/return-list", "退回清单",
			[]string{"记录号", "身份证号", "账号", "金额（元）", "金额（分）", "退回原因", "原因代码", "处理方式", "银行返回码", "银行返回信息"},
			[]string{
				"4|" + P[4][1] + "|" + P[4][2] + "|" + amt(4) + "|" + fmt.Sprint(re.r1.Records[3].AmountFen) + "|账户已销户|ACCOUNT_CLOSED|需提供新账户（new_account）|E4|=银行说明ACCOUNT_CLOSED",
				"5|" + P[5][1] + "|" + P[5][2] + "|" + amt(5) + "|" + fmt.Sprint(re.r1.Records[4].AmountFen) + "|户名与账号不符|NAME_MISMATCH|修正资料后重新发放（fix_data）|E5|=银行说明NAME_MISMATCH",
			}, 0},
		{"return list, nothing failed", "county", "/v1/batches/R3/return-list", "退回清单", []string{"记录号"}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, ctype, body := re.get(c.token, c.path)
			if status != 200 || ctype != report.XLSX.ContentType() {
				t.Fatalf("%d %s %s", status, ctype, body)
			}
			rows := xlsxRows(t, body, c.sheet)
			if len(rows) == 0 || !slices.Equal(rows[0], columnTitles(c.sheet)) {
				t.Fatalf("header %v", rows)
			}
			if got := keys(rows, c.cols...); !slices.Equal(got, c.want) {
				t.Fatalf("rows\n got %q\nwant %q", got, c.want)
			}
			if c.groups > 0 {
				groups := map[string]bool{}
				for _, r := range rows[1:] {
					groups[r[0]] = true
				}
				if len(groups) != c.groups {
					t.Fatalf("%d groups, want %d", len(groups), c.groups)
				}
			}
		})
	}
}

func columnTitles(sheet string) []string {
	for _, k := range append(slices.Clone(report.Kinds), report.KindReturnList) {
		if k.Title() == sheet {
			var out []string
			for _, c := range report.Columns(k) {
				out = append(out, c.Title)
			}
			return out
		}
	}
	return nil
}

// Masking: only the full-view roles (admin, operator by default) see ID and
// account numbers in clear; submitter, viewer and approver get masks, in
// both formats.
func TestReportsMasking(t *testing.T) {
	re := newReportEnv(t)
	P := re.people
	clear := []string{}
	for _, i := range []int{1, 2, 3, 4, 5} {
		clear = append(clear, P[i][1], P[i][2], P[i][0])
	}
	paths := []string{
		"/v1/reports/sanwu?tenant=210102&subsidy=GDZL&period=2026-11",
		"/v1/reports/duplicates?tenant=210102&subsidy=GDZL&across_periods=true",
		"/v1/reports/shared-accounts?tenant=210102&subsidy=GDZL&period=2026-11",
		"/v1/reports/cross-department?tenant=210102",
		"/v1/batches/R1/return-list",
	}
	for _, tc := range []struct {
		token string
		full  bool
	}{{"county", false}, {"viewer", false}, {"approver", false}, {"city", false}, {"ops", true}, {"admin", true}} {
		for _, p := range paths {
			for _, format := range []string{"xlsx", "csv"} {
				status, _, body := re.get(tc.token, p+"&format="+format)
				if strings.HasSuffix(p, "return-list") {
					status, _, body = re.get(tc.token, p+"?format="+format)
				}
				if status != 200 {
					t.Fatalf("%s %s: %d %s", tc.token, p, status, body)
				}
				var text string
				if format == "xlsx" {
					for _, r := range xlsxRows(t, body, sheetOf(p)) {
						text += strings.Join(r, "\t") + "\n"
					}
				} else {
					if !bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
						t.Fatalf("csv without BOM")
					}
					text = string(body)
				}
				leaked := 0
				for _, c := range clear {
					if strings.Contains(text, c) {
						leaked++
					}
				}
				if tc.full && leaked == 0 {
					t.Fatalf("%s %s %s: full view shows nothing in clear:\n%s", tc.token, p, format, text)
				}
				if !tc.full && leaked > 0 {
					t.Fatalf("%s %s %s: personal data in clear:\n%s", tc.token, p, format, text)
				}
				if !tc.full && !strings.Contains(text, "**********") {
					t.Fatalf("%s %s %s: no masked ID:\n%s", tc.token, p, format, text)
				}
			}
		}
	}
	// Every export is in the audit chain, with who and whether in clear.
	es, err := re.store.AuditEntries(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == "report.exported" {
			n++
			var d map[string]any
			if err := json.Unmarshal(e.Detail, &d); err != nil || d["full_view"] == nil || e.Actor == "" {
				t.Fatalf("audit entry %+v", e)
			}
		}
	}
	if n != 6*len(paths)*2 {
		t.Fatalf("%d report.exported events, want %d", n, 6*len(paths)*2)
	}
}

func sheetOf(path string) string {
	for _, k := range append(slices.Clone(report.Kinds), report.KindReturnList) {
		if strings.Contains(path, "/"+string(k)) {
			return k.Title()
		}
	}
	return ""
}

// Every new endpoint: 401 without or with a bad token, 403 for a tenant
// outside the token's scope (reports), 404 for another tenant's batch
// (return list, exactly like a batch that does not exist), 400 for bad
// parameters, 404 for an unknown report.
func TestReportsAuthAndTenants(t *testing.T) {
	re := newReportEnv(t)
	re.tokens["forged"] = "ykt_0123456789abcdef_nope"
	rep := "/v1/reports/%s?tenant=210102&subsidy=GDZL&period=2026-11"
	cases := []struct {
		token, path string
		status      int
		code        string
	}{
		{"", "/v1/batches/R1/return-list", 401, "auth.missing"},
		{"forged", "/v1/batches/R1/return-list", 401, "auth.invalid"},
		{"other", "/v1/batches/R1/return-list", 404, "batch.not_found"},
		{"other", "/v1/batches/NOPE/return-list", 404, "batch.not_found"},
		{"county", "/v1/batches/O1/return-list", 404, "batch.not_found"},
		{"county", "/v1/batches/R1/return-list?format=pdf", 400, "format.invalid"},
		{"other", "/v1/batches/O1/return-list", 200, ""},
		{"city", "/v1/batches/R1/return-list", 200, ""},
		{"county", "/v1/reports/nothing?subsidy=GDZL&period=2026-11", 404, "report.unknown"},
		{"county", "/v1/reports/sanwu?subsidy=GDZL", 400, "period.required"},
		{"county", "/v1/reports/sanwu?period=2026-11", 400, "subsidy.required"},
		{"county", "/v1/reports/sanwu?subsidy=NOPE&period=2026-11", 400, "subsidy.unknown"},
		{"county", "/v1/reports/sanwu?subsidy=GDZL&period=11.2026", 400, "period.invalid"},
		{"county", "/v1/reports/sanwu?tenant=21&subsidy=GDZL&period=2026-11", 400, "tenant.invalid"},
		{"county", "/v1/reports/sanwu?subsidy=GDZL&period=2026-11&format=xls", 400, "format.invalid"},
		{"county", "/v1/reports/sanwu?tenant=210100&subsidy=GDZL&period=2026-11", 403, "tenant.forbidden"}, // a county cannot read its city
		{"city", "/v1/reports/sanwu?tenant=210100&subsidy=GDZL&period=2026-11", 200, ""},
		{"approver", "/v1/reports/sanwu?tenant=210102&subsidy=GDZL&period=2026-11", 200, ""},
	}
	for _, kind := range report.Kinds {
		cases = append(cases,
			struct {
				token, path string
				status      int
				code        string
			}{"", fmt.Sprintf(rep, kind), 401, "auth.missing"},
			struct {
				token, path string
				status      int
				code        string
			}{"forged", fmt.Sprintf(rep, kind), 401, "auth.invalid"},
			struct {
				token, path string
				status      int
				code        string
			}{"other", fmt.Sprintf(rep, kind), 403, "tenant.forbidden"},
			struct {
				token, path string
				status      int
				code        string
			}{"viewer", fmt.Sprintf(rep, kind), 200, ""},
		)
	}
	for _, c := range cases {
		status, _, body := re.get(c.token, c.path)
		if status != c.status {
			t.Errorf("%s %s: %d, want %d: %s", c.token, c.path, status, c.status, body)
			continue
		}
		if c.code != "" {
			var eb ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) == 0 || eb.Errors[0].Code != c.code {
				t.Errorf("%s %s: body %s, want code %s", c.token, c.path, body, c.code)
			}
		}
	}
	// A token without a tenant parameter sees only its own scope: the
	// other tenant's report holds nothing of 210102.
	status, _, body := re.get("other", "/v1/reports/shared-accounts?subsidy=GDZL&period=2026-11&format=csv")
	if status != 200 || strings.Contains(string(body), "R1") {
		t.Fatalf("other's own scope: %d %s", status, body)
	}
}

func TestReportCSV(t *testing.T) {
	re := newReportEnv(t)
	status, ctype, body := re.get("ops", "/v1/batches/R1/return-list?format=csv")
	if status != 200 || ctype != "text/csv; charset=utf-8" {
		t.Fatalf("%d %s", status, ctype)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(string(body), "\ufeff"), "\r\n"), "\r\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "序号,记录号,姓名,身份证号,账号,金额（元）,金额（分）,退回原因") {
		t.Fatalf("csv:\n%s", body)
	}
	// Bank text that a spreadsheet would run as a formula is defused.
	if !strings.Contains(lines[1], ",'=银行说明ACCOUNT_CLOSED") || !strings.Contains(lines[1], ","+report.Fen(re.r1.Records[3].AmountFen).Yuan()+",") {
		t.Fatalf("row: %s", lines[1])
	}
}

// TestReportsOpenAPI holds the report endpoints to api/openapi.yaml.
func TestReportsOpenAPI(t *testing.T) {
	openapi3filter.RegisterBodyDecoder(report.XLSX.ContentType(), openapi3filter.FileBodyDecoder)
	doc, err := openapi3.NewLoader().LoadFromFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml invalid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	re := newReportEnv(t)
	h := re.g.Handler()
	for _, c := range []struct {
		token, path string
		status      int
	}{
		{"admin", "/v1/reports/sanwu?tenant=210102&subsidy=GDZL&period=2026-11", 200},
		{"admin", "/v1/reports/duplicates?subsidy=GDZL&across_periods=true&format=csv", 200},
		{"admin", "/v1/reports/shared-accounts?subsidy=GDZL&period=2026-11&format=xlsx", 200},
		{"admin", "/v1/reports/cross-department", 200},
		{"county", "/v1/reports/sanwu?subsidy=GDZL", 400},
		{"", "/v1/reports/sanwu?subsidy=GDZL&period=2026-11", 401},
		{"other", "/v1/reports/sanwu?tenant=210102&subsidy=GDZL&period=2026-11", 403},
		{"county", "/v1/reports/nothing", 404},
		{"county", "/v1/batches/R1/return-list", 200},
		{"county", "/v1/batches/R1/return-list?format=csv", 200},
		{"county", "/v1/batches/R1/return-list?format=pdf", 400},
		{"", "/v1/batches/R1/return-list", 401},
		{"other", "/v1/batches/R1/return-list", 404},
	} {
		req := httptest.NewRequest("GET", "http://127.0.0.1:8470"+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+re.tokens[c.token])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Fatalf("%s: %d, want %d: %s", c.path, rec.Code, c.status, rec.Body)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			if strings.Contains(c.path, "/nothing") {
				continue // the enum refuses it: answered 404 by design
			}
			t.Fatalf("%s: not in openapi.yaml: %v", c.path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s -> %d does not match openapi.yaml: %v", c.path, rec.Code, err)
		}
	}
}
