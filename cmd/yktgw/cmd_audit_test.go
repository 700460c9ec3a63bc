package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/config"
	"yktgw/gateway"
	"yktgw/spool"
)

// auditFixture writes a minimal valid config and a spool holding a few
// audit events; it returns the config path and the spool path.
func auditFixture(t *testing.T) (cfgPath, spoolPath string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath = filepath.Join(dir, "yktgw.yaml")
	writeTestFile(t, cfgPath, `spool: {path: var/spool.db, dir: var/spool}
subsidies: [{code: GDZL, name: 耕地地力保护补贴, cap_fen: 5000000}]
banks: [{code: DEMO, profile: bank/profile.yaml, certificate: keys/bank.cert.pem}]
`)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := gateway.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 1; i <= 6; i++ {
		ev := spool.Event{Actor: "cli:ops", Action: "test.event", Subject: fmt.Sprintf("B-%d", i), Reason: "fixture",
			Detail: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if err := st.Audit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath, cfg.Spool.Path
}

// tamper changes the SQLite file directly, as an intruder with file access would.
func tamper(t *testing.T, spoolPath, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+spoolPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows changed, want 1", stmt, n)
	}
}

// runRoot runs the command tree in this process and returns its output and error.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	defer func() { rootCmd.SetOut(nil); rootCmd.SetErr(nil) }()
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	return out.String(), err
}

var auditTamperCases = []struct {
	name    string
	stmt    string
	args    []any
	wantSeq string
	kind    string
}{
	{"detail changed", `UPDATE audit SET detail = ? WHERE seq = 4`, []any{[]byte(`{"n":400}`)}, "seq 4", gateway.AuditHashMismatch},
	{"reason changed", `UPDATE audit SET reason = 'nothing to see' WHERE seq = 2`, nil, "seq 2", gateway.AuditHashMismatch},
	{"row deleted", `DELETE FROM audit WHERE seq = 3`, nil, "seq 3", gateway.AuditSeqGap},
	{"first row deleted", `DELETE FROM audit WHERE seq = 1`, nil, "seq 1", gateway.AuditSeqGap},
	{"prev relinked", `UPDATE audit SET prev = (SELECT hash FROM audit WHERE seq = 1) WHERE seq = 5`, nil, "seq 5", gateway.AuditPrevMismatch},
}

func TestAuditVerifyNamesTamperedRow(t *testing.T) {
	cfgPath, _ := auditFixture(t)
	out, err := runRoot(t, "audit", "verify", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "audit chain intact: 6 entries") {
		t.Fatalf("intact chain: %v\n%s", err, out)
	}
	for _, tc := range auditTamperCases {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath, spoolPath := auditFixture(t)
			tamper(t, spoolPath, tc.stmt, tc.args...)
			_, err := runRoot(t, "audit", "verify", "--config", cfgPath)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitAuditBroken {
				t.Fatalf("err = %v, want exit %d", err, exitAuditBroken)
			}
			if msg := err.Error(); !strings.Contains(msg, "broken at "+tc.wantSeq+":") || !strings.Contains(msg, tc.kind) {
				t.Fatalf("error %q does not name %s (%s)", msg, tc.wantSeq, tc.kind)
			}
		})
	}
}

// The same through the real binary: exit status 3 and the row on stderr.
func TestAuditVerifyBinary(t *testing.T) {
	bin := yktgwBinary(t)
	for _, tc := range auditTamperCases[:3] {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath, spoolPath := auditFixture(t)
			if out, err := exec.Command(bin, "audit", "verify", "--config", cfgPath).CombinedOutput(); err != nil {
				t.Fatalf("intact chain: %v\n%s", err, out)
			}
			tamper(t, spoolPath, tc.stmt, tc.args...)
			cmd := exec.Command(bin, "audit", "verify", "--config", cfgPath)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var xe *exec.ExitError
			if !errors.As(err, &xe) || xe.ExitCode() != exitAuditBroken {
				t.Fatalf("exit %v, want %d; stderr %s", err, exitAuditBroken, stderr.String())
			}
			if !strings.Contains(stderr.String(), "yktgw: audit chain broken at "+tc.wantSeq+": "+tc.kind) {
				t.Fatalf("stderr %q does not name %s", stderr.String(), tc.wantSeq)
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	cfgPath, _ := auditFixture(t)
	out, err := runRoot(t, "audit", "export", "--config", cfgPath, "--from", "", "--to", "", "--out", "")
	if err != nil {
		t.Fatal(err)
	}
	var lines []gateway.AuditLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l gateway.AuditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.At); err != nil {
			t.Fatalf("at %q is not RFC 3339", l.At)
		}
		lines = append(lines, l)
	}
	if len(lines) != 6 || lines[0].Seq != 1 || lines[5].Subject != "B-6" || string(lines[2].Detail) != `{"n":3}` || len(lines[0].Hash) != 64 {
		t.Fatalf("exported %+v", lines)
	}
	if lines[1].Prev != lines[0].Hash {
		t.Fatalf("chain not visible in the export: %s vs %s", lines[1].Prev, lines[0].Hash)
	}

	// A window: from the third entry's time, to the fifth's (excluded), to a file.
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := runRoot(t, "audit", "export", "--config", cfgPath, "--from", lines[2].At, "--to", lines[4].At, "--out", file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != 2 || !strings.Contains(got[0], `"seq":3`) || !strings.Contains(got[1], `"seq":4`) {
		t.Fatalf("window export:\n%s", b)
	}
	if _, err := runRoot(t, "audit", "export", "--config", cfgPath, "--from", "yesterday", "--out", ""); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Fatalf("bad --from: %v", err)
	}
}

// Looking never writes: a missing spool is an error, not a new empty one.
func TestAuditVerifyMissingSpool(t *testing.T) {
	cfgPath, spoolPath := auditFixture(t)
	if err := os.Remove(spoolPath); err != nil {
		t.Fatal(err)
	}
	os.Remove(spoolPath + "-wal")
	os.Remove(spoolPath + "-shm")
	if _, err := runRoot(t, "audit", "verify", "--config", cfgPath); err == nil {
		t.Fatal("verify of a missing spool succeeded")
	}
	if _, err := os.Stat(spoolPath); !os.IsNotExist(err) {
		t.Fatalf("verify created the spool: %v", err)
	}
}
