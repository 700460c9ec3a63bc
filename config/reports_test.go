package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReportsDefaultsAndProblems(t *testing.T) {
	d := Default().Reports
	if !d.Sanwu.MissingName || !d.Sanwu.MissingIDNumber || !d.Sanwu.MissingAccount ||
		!reflect.DeepEqual(d.Sanwu.BadAccountReasons, []string{"ACCOUNT_CLOSED", "ACCOUNT_DORMANT", "ACCOUNT_FROZEN"}) ||
		!reflect.DeepEqual(d.FullView, []string{"admin", "operator"}) {
		t.Fatalf("defaults = %+v", d)
	}
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Reports, d) {
		t.Fatalf("example.yaml reports = %+v, want the defaults %+v", c.Reports, d)
	}
	c.Reports.Sanwu.BadAccountReasons = []string{"closed"}
	c.Reports.FullView = []string{"root"}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "reports.sanwu.bad_account_reasons[0]") || !strings.Contains(err.Error(), "reports.full_view[0]") {
		t.Fatalf("validate = %v", err)
	}
}

func TestReportsFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	body, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(body), "    missing_name: true ", "    missing_name: false", 1)
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("YKT_REPORTS_FULL_VIEW", "admin")
	t.Setenv("YKT_REPORTS_SANWU_MISSING_ACCOUNT", "false")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reports.Sanwu.MissingName || c.Reports.Sanwu.MissingAccount || !c.Reports.Sanwu.MissingIDNumber ||
		!reflect.DeepEqual(c.Reports.FullView, []string{"admin"}) {
		t.Fatalf("reports = %+v", c.Reports)
	}
}
