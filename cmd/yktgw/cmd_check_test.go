package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var checkNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, to, string(b))
}

// exampleTree lays out config/example.yaml as the repository does, with every key
// file it names present, and returns the config path.
func exampleTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	cfg := filepath.Join(root, "config", "example.yaml")
	copyTestFile(t, "../../config/example.yaml", cfg)
	copyTestFile(t, "../../config/calendar/cn-2026.yaml", filepath.Join(root, "config", "calendar", "cn-2026.yaml"))
	for _, k := range []string{"data.key", "passphrase", "gateway.key.pem", "gateway.cert.pem", "bank-demo.cert.pem",
		"banksim_host_ed25519", "gateway_ssh.pub"} {
		writeTestFile(t, filepath.Join(root, "config", "keys", k), "x\n")
	}
	writeTestFile(t, filepath.Join(root, "testdata", "banks", "demo", "profile.yaml"), "code: DEMO\n")
	return cfg
}

func stubProfiles(t *testing.T, f func(path string) (string, error)) {
	t.Helper()
	orig := loadProfile
	loadProfile = f
	t.Cleanup(func() { loadProfile = orig })
}

func TestCheckExampleOK(t *testing.T) {
	cfg := exampleTree(t)
	var seen []string
	stubProfiles(t, func(path string) (string, error) { seen = append(seen, path); return "DEMO", nil })
	var out, warn bytes.Buffer
	if err := runCheck(cfg, &out, &warn, checkNow); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	if out.String() != "ok: 1 banks, 4 subsidies\n" {
		t.Fatalf("stdout = %q", out.String())
	}
	if warn.Len() != 0 {
		t.Fatalf("warnings = %q", warn.String())
	}
	want := filepath.Join(filepath.Dir(cfg), "..", "testdata", "banks", "demo", "profile.yaml")
	if len(seen) != 1 || seen[0] != filepath.Clean(want) {
		t.Fatalf("profiles checked = %v, want [%s]", seen, want)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	cfg := exampleTree(t)
	dir := filepath.Dir(cfg)
	if err := os.Remove(filepath.Join(dir, "keys", "data.key")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	body := strings.Replace(string(b), "listen: 127.0.0.1:8470", "listen: nowhere", 1)
	body = strings.Replace(body, "format: json", "format: xml", 1)
	writeTestFile(t, cfg, body)
	stubProfiles(t, func(string) (string, error) {
		return "OTHER", errors.New("banks: profile x: luhn \"maybe\": want warn, error or off\nfeedback_pattern: required")
	})
	var out, warn bytes.Buffer
	err := runCheck(cfg, &out, &warn, checkNow)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exit 1", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantPrefixes := []string{"listen:", "log.format:", "keys.data_key_file:", "banks[0].profile: banks: profile x: luhn",
		"banks[0].profile: feedback_pattern: required", "banks[0].code:"}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("lines:\n%s", out.String())
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(lines[i], p) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], p)
		}
	}
}

func TestCheckUnreadableConfig(t *testing.T) {
	var out, warn bytes.Buffer
	err := runCheck(filepath.Join(t.TempDir(), "none.yaml"), &out, &warn, checkNow)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out.String(), "none.yaml") {
		t.Fatalf("err = %v, out %q", err, out.String())
	}
}

func TestCheckWarnsUncoveredYear(t *testing.T) {
	cfg := exampleTree(t)
	stubProfiles(t, func(string) (string, error) { return "DEMO", nil })
	var out, warn bytes.Buffer
	if err := runCheck(cfg, &out, &warn, time.Date(2031, 3, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "year 2031 is not covered") {
		t.Fatalf("warn = %q", warn.String())
	}
}

// The repository's own example with the real bank profile loader: only missing
// key files may be reported (the demo/CI generate them).
func TestCheckRepositoryExample(t *testing.T) {
	if _, err := os.Stat("../../testdata/banks/demo/profile.yaml"); err != nil {
		t.Skip("testdata/banks/demo/profile.yaml not present:", err)
	}
	var out, warn bytes.Buffer
	t.Setenv("YKT_KEY_PASSPHRASE", "")
	_ = runCheck("../../config/example.yaml", &out, &warn, checkNow)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "ok: 1 banks, 4 subsidies" {
			continue
		}
		if !strings.Contains(l, "/keys/") || !strings.Contains(l, "no such file") {
			t.Errorf("unexpected problem: %s", l)
		}
	}
}

func TestCheckCommandExitCode(t *testing.T) {
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	t.Cleanup(func() { rootCmd.SetOut(nil); rootCmd.SetErr(nil) })
	if code := execute([]string{"check", "--config", filepath.Join(t.TempDir(), "none.yaml")}); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	cfg := exampleTree(t)
	stubProfiles(t, func(string) (string, error) { return "DEMO", nil })
	out.Reset()
	if code := execute([]string{"check", "--config", cfg}); code != 0 {
		t.Fatalf("exit code %d, want 0: %s", code, out.String())
	}
	if !strings.HasPrefix(out.String(), "ok: 1 banks") {
		t.Fatalf("output %q", out.String())
	}
}
