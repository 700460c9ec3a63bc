package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"yktgw/internal/gen"
)

// TestIntakeLaneTimes: "batch accepted" says where the intake's time went,
// lane by lane, and how many chunks the writer added.
func TestIntakeLaneTimes(t *testing.T) {
	e := newEnv(t)
	e.t = t
	var logs bytes.Buffer
	e.g.log = slog.New(slog.NewJSONHandler(&logs, nil))
	e.g.cfg.Intake.ChunkRecords = 10
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "B-LANES", N: 25})); r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var lanes map[string]int64 // slog's JSON: durations in nanoseconds
	for sc := bufio.NewScanner(&logs); sc.Scan(); {
		var line map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &line) != nil || string(line["msg"]) != `"batch accepted"` {
			continue
		}
		if err := json.Unmarshal(line["lanes"], &lanes); err != nil {
			t.Fatalf("lanes %s: %v", line["lanes"], err)
		}
	}
	if lanes == nil {
		t.Fatalf("no batch accepted line with lanes in %s", logs.String())
	}
	for _, k := range []string{"read_wait", "seal_wait", "write_wait"} {
		if _, ok := lanes[k]; !ok {
			t.Errorf("lanes lack %s: %v", k, lanes)
		}
	}
	// 25 records in chunks of 10: three Adds, each sealed and written.
	if lanes["chunks"] != 3 || lanes["seal_busy"] <= 0 || lanes["write_busy"] <= 0 || lanes["finalize"] <= 0 {
		t.Fatalf("lanes = %v", lanes)
	}
}
