package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/gateway"
	"yktgw/gateway/report"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// reportFixture builds a spool through the real intake path: batch R1
// (210102, GDZL, 2026-11) of P1..P4, P3 paying into P2's account, seq 4
// FAILED (ACCOUNT_CLOSED); it returns the config path.
func reportFixture(t *testing.T) (cfgPath string, people [][3]string) {
	t.Helper()
	dir := t.TempDir()
	prof, err := filepath.Abs("../../testdata/banks/demo/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "yktgw.yaml")
	writeTestFile(t, cfgPath, `spool: {path: var/spool.db, dir: var/spool}
keys: {data_key_file: keys/data.key}
subsidies:
  - {code: GDZL, name: 耕地地力保护补贴, cap_fen: 5000000, department: agriculture}
  - {code: DBBZ, name: 城乡低保金, cap_fen: 300000, department: civil_affairs}
banks: [{code: DEMO, profile: `+prof+`, certificate: keys/bank.cert.pem}]
`)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Keys.DataKeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := crypto.GenerateDataKeyFile(cfg.Keys.DataKeyFile); err != nil {
		t.Fatal(err)
	}
	ring, err := crypto.LoadDataKeyring(cfg.Keys.DataKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := gateway.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := banks.LoadProfile(prof)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Deps{Config: cfg, Store: st, Fields: ring, Profiles: map[string]*banks.Profile{"DEMO": p},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	b := gen.Batch{Header: gen.Header{BatchID: "R1", Tenant: "210102", Bank: "DEMO", Subsidy: gen.Subsidy{Code: "GDZL", Name: "耕地地力保护补贴"},
		Period: "2026-11", Memo: "补贴"}}
	for i := 1; i <= 4; i++ {
		n, id, a := gen.Person(i)
		people = append(people, [3]string{n, id, a})
		r := gen.Record{Seq: i, Name: n, IDNumber: id, Account: a, AccountKind: "card", AmountFen: int64(10000 + i)}
		if i == 3 {
			r.Account = people[1][2]
		}
		b.Records = append(b.Records, r)
		b.TotalCount++
		b.TotalFen += r.AmountFen
	}
	body, _ := json.Marshal(b)
	res, err := g.Submit(ctx, &gateway.Principal{TokenID: "test", Tenants: []string{"*"}, Roles: []string{gateway.RoleSubmitter}}, bytes.NewReader(body), false)
	if err != nil || res.Status != 201 {
		t.Fatalf("submit: %+v %v", res, err)
	}
	ds, err := st.PlanDeliveries(ctx, "R1", 100, func(bank string, n int64) string { return fmt.Sprintf("%s%08d", bank, n) }, spool.Event{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	for _, c := range []spool.DeliveryChange{
		{ID: d.ID, From: spool.DeliveryPlanned, To: spool.DeliverySealed, FileName: "F", SealedPath: "/x", Size: 1, SM3: []byte("d")},
		{ID: d.ID, From: spool.DeliverySealed, To: spool.DeliverySending},
		{ID: d.ID, From: spool.DeliverySending, To: spool.DeliverySent, Receipt: "r", SentAt: time.Now(), DeadlineAt: time.Now().Add(time.Hour)},
	} {
		if err := st.ChangeDelivery(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	_, err = st.ApplyFeedback(ctx, spool.Feedback{Bank: "DEMO", Name: "RET", Size: 1, SM3: []byte("ret"), BankBatchNo: d.BankBatchNo,
		BadReasons: map[string]bool{"ACCOUNT_CLOSED": true}}, func(add func(spool.ResultRow) error) error {
		for _, r := range b.Records {
			row := spool.ResultRow{Seq: r.Seq, Paid: true, AmountFen: r.AmountFen, BankCode: "0000"}
			if r.Seq == 4 {
				row = spool.ResultRow{Seq: 4, Reason: "ACCOUNT_CLOSED", BankCode: "E12", BankMessage: "卡或帐号已销户"}
			}
			if err := add(row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfgPath, people
}

func sheetRows(t *testing.T, path, sheet string) [][]string {
	t.Helper()
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := f.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestReportCommand(t *testing.T) {
	cfgPath, P := reportFixture(t)
	dir := t.TempDir()
	ctx := context.Background()

	// Return list, full view, xlsx: the FAILED record in clear.
	out := filepath.Join(dir, "return.xlsx")
	var stderr bytes.Buffer
	if err := runReport(ctx, "return-list", reportOpts{cfgPath: cfgPath, batch: "R1", out: out, full: true}, &stderr); err != nil {
		t.Fatal(err)
	}
	rows := sheetRows(t, out, "退回清单")
	if len(rows) != 2 || rows[1][1] != "4" || rows[1][3] != P[3][1] || rows[1][4] != P[3][2] || rows[1][5] != "100.04" ||
		rows[1][7] != "账户已销户" || rows[1][9] != "需提供新账户（new_account）" || rows[1][11] != "卡或帐号已销户" {
		t.Fatalf("return list %q", rows)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if !strings.Contains(stderr.String(), "return-list R1: 1 rows, 0 groups, personal data in clear") {
		t.Fatalf("stderr %q", stderr.String())
	}

	// Shared accounts, masked by default, CSV from the extension.
	out = filepath.Join(dir, "shared.csv")
	if err := runReport(ctx, "shared-accounts", reportOpts{cfgPath: cfgPath, subsidy: "GDZL", period: "2026-11", tenant: "210100", out: out, quiet: true}, &stderr); err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(out)
	s := string(body)
	if !strings.HasPrefix(s, "\ufeff组号,账号,") || strings.Count(s, "\r\n") != 3 || strings.Contains(s, P[1][2]) || strings.Contains(s, P[1][1]) ||
		!strings.Contains(s, P[1][2][:4]+" **** "+P[1][2][len(P[1][2])-4:]) {
		t.Fatalf("shared accounts csv:\n%s", s)
	}

	// 三无 through the command line: the closed account is listed.
	out = filepath.Join(dir, "sanwu.xlsx")
	if code := execute([]string{"report", "sanwu", "--config", cfgPath, "--subsidy", "GDZL", "--period", "2026-11", "--tenant", "210102",
		"--format", "xlsx", "--out", out, "--quiet"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows = sheetRows(t, out, report.KindSanwu.Title())
	if len(rows) != 2 || rows[1][6] != "4" || !strings.Contains(rows[1][1], "ACCOUNT_CLOSED") || rows[1][8] == P[3][1] {
		t.Fatalf("sanwu %q", rows)
	}

	// Another tenant's scope holds nothing.
	out = filepath.Join(dir, "other.csv")
	if err := runReport(ctx, "sanwu", reportOpts{cfgPath: cfgPath, subsidy: "GDZL", period: "2026-11", tenant: "220102", out: out, quiet: true}, &stderr); err != nil {
		t.Fatal(err)
	}
	if body, _ := os.ReadFile(out); strings.Count(string(body), "\r\n") != 1 {
		t.Fatalf("other tenant:\n%s", body)
	}
}

func TestReportCommandErrors(t *testing.T) {
	cfgPath, _ := reportFixture(t)
	out := filepath.Join(t.TempDir(), "x.xlsx")
	for _, c := range []struct {
		kind string
		o    reportOpts
		want string
		code int
	}{
		{"sanwu", reportOpts{out: out}, "--config is required", 2},
		{"nothing", reportOpts{cfgPath: cfgPath, out: out}, `unknown report "nothing"`, 2},
		{"sanwu", reportOpts{cfgPath: cfgPath, out: out, period: "2026-11"}, "--subsidy is required", 2},
		{"duplicates", reportOpts{cfgPath: cfgPath, out: out, subsidy: "GDZL"}, "--period is required", 2},
		{"sanwu", reportOpts{cfgPath: cfgPath, out: out, subsidy: "GDZL", period: "2026-11", tenant: "21"}, "not a division code", 2},
		{"sanwu", reportOpts{cfgPath: cfgPath, out: out, subsidy: "NOPE", period: "2026-11"}, `subsidy "NOPE" is not in the config`, 2},
		{"sanwu", reportOpts{cfgPath: cfgPath, out: out, subsidy: "GDZL", period: "2026-11", format: "pdf"}, `format "pdf"`, 2},
		{"return-list", reportOpts{cfgPath: cfgPath, out: out}, "return-list needs --batch", 2},
		{"return-list", reportOpts{cfgPath: cfgPath, out: out, batch: "NOPE"}, `no batch "NOPE"`, 0},
	} {
		err := runReport(context.Background(), c.kind, c.o, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.kind, c.o, err, c.want)
			continue
		}
		var ee *exitError
		if c.code != 0 && (!errors.As(err, &ee) || ee.code != c.code) {
			t.Errorf("%s: exit code %v, want %d", c.kind, err, c.code)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed report left %s", out)
	}
	// A duplicates list across periods needs no period.
	if err := runReport(context.Background(), "duplicates", reportOpts{cfgPath: cfgPath, out: out, subsidy: "GDZL", acrossPeriods: true, quiet: true}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if rows := sheetRows(t, out, report.KindDuplicates.Title()); !slices.Equal(rows[0][:2], []string{"组号", "身份证号"}) || len(rows) != 1 {
		t.Fatalf("duplicates %q", rows)
	}
}
