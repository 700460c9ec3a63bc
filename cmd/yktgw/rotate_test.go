package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"yktgw/internal/gen"
)

// Data keys rotate while the daemon runs: batches accepted before and after
// the rotation are delivered and settled (the daemon reloads the key file).
func TestRotateDataKeyWhileDaemonRuns(t *testing.T) {
	e := newBankEnv(t, 0.1)
	e.start("YKT_FAILPOINT=none") // a daemon that keeps running
	defer e.kill()
	a := gen.Spec{BatchID: "ROT-A", N: 500}
	if status, body, err := e.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, a))); err != nil || status != 201 {
		t.Fatalf("submit A: %d %s %v", status, body, err)
	}
	out, err := exec.Command(yktgwBinary(t), "keys", "rotate-data-key", "--config", e.config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "re-encrypted under") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	b := gen.Spec{BatchID: "ROT-B", N: 500, PersonOffset: 100000}
	if status, body, err := e.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, b))); err != nil || status != 201 {
		t.Fatalf("submit B: %d %s %v", status, body, err)
	}
	e.waitSettled([]string{"ROT-A", "ROT-B"}, 90*time.Second)
	e.checkMoney([]string{"ROT-A", "ROT-B"})
	// A batch accepted before the daemon noticed the new key is still under
	// the old one: a second pass catches it; after that nothing is left.
	for pass, want := range []string{"", " 0 re-encrypted"} {
		out, err = exec.Command(yktgwBinary(t), "keys", "rotate-data-key", "--config", e.config, "--no-new-key").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("pass %d: %v\n%s", pass+2, err, out)
		}
	}
}
