package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/internal/gen"
)

// The ops commands against the real daemon.
func TestOpsCommands(t *testing.T) {
	e := newBankEnv(t, 0.2)
	e.start()
	defer e.kill()
	bin := yktgwBinary(t)
	tokenFile := func(name, roles string) string {
		out, err := exec.Command(bin, "token", "create", "--config", e.config, "--name", name, "--tenants", "*", "--roles", roles).CombinedOutput()
		if err != nil {
			t.Fatalf("token: %v %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		p := filepath.Join(e.dir, name+".token")
		os.WriteFile(p, []byte(lines[len(lines)-1]), 0o600)
		return p
	}
	sub := tokenFile("sub", "submitter,viewer")
	ops := tokenFile("ops", "operator,viewer")
	run := func(tok string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--url", "http://"+e.addr, "--token-file", tok)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	batchFile := filepath.Join(e.dir, "b.ndjson")
	os.WriteFile(batchFile, ndjson(t, gen.Spec{BatchID: "OPS-1", N: 800}), 0o600)
	out, err := run(sub, "batch", "submit", batchFile)
	if err != nil || !strings.Contains(out, "batch OPS-1 accepted") {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	out, err = run(sub, "batch", "submit", batchFile)
	if err != nil || !strings.Contains(out, "already accepted (same content)") {
		t.Fatalf("submit again: %v\n%s", err, out)
	}
	e.waitSettled([]string{"OPS-1"}, 60*time.Second)
	out, err = run(sub, "batch", "list")
	if err != nil || !strings.Contains(out, "OPS-1") || !strings.Contains(out, "SETTLED") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = run(ops, "batch", "show", "OPS-1")
	if err != nil || !strings.Contains(out, "PAID") || !strings.Contains(out, "FAILED") || !strings.Contains(out, "DEMO0000000001") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = run(sub, "batch", "results", "OPS-1", "--status", "FAILED")
	if err != nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "**** ") {
		t.Fatalf("results: %v\n%s", err, out)
	}
	spec := gen.Full(gen.Spec{BatchID: "x", N: 800})
	for _, r := range spec.Records {
		if strings.Contains(out, r.IDNumber) || strings.Contains(out, r.Account) {
			t.Fatalf("results show personal data in clear")
		}
	}
	out, err = run(ops, "dead", "list")
	if err != nil || !strings.HasPrefix(out, "DELIVERY") || strings.Count(out, "\n") != 1 {
		t.Fatalf("dead list: %v\n%s", err, out)
	}
	out, err = run(ops, "replay", "1", "--reason", "test")
	if err == nil || !strings.Contains(out, "409") {
		t.Fatalf("replay of a SENT delivery: %v\n%s", err, out)
	}
	out, err = run(sub, "dead", "list")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("dead list without an ops role: %v\n%s", err, out)
	}
}
