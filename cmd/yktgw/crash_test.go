package main

// Crash tests of the whole money path: the real yktgw binary against the
// bank simulator (in this process, over real SFTP), killed at every named
// crash point and at random moments, then restarted. Afterwards every batch
// must be SETTLED, the bank must have accepted each file exactly once, the
// spool's paid and failed sums must equal the bank's returns, and no record
// may be paid twice.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yktgw/banks/sim"
	"yktgw/gateway"
	"yktgw/gateway/demo"
	"yktgw/internal/gen"
	"yktgw/spool"
)

type bankEnv struct {
	*daemonEnv
	sim demo.Side
	ks  *sim.KeySet
}

// newBankEnv sets up keys, a simulated bank on the channel kind of
// YKT_TEST_CHANNEL (default sftp) and a config for the real daemon.
func newBankEnv(t *testing.T, failRate float64) *bankEnv {
	t.Helper()
	return newBankEnvKind(t, testChannel(), failRate)
}

// testChannel is the channel kind of YKT_TEST_CHANNEL (default sftp).
func testChannel() string {
	if kind := os.Getenv("YKT_TEST_CHANNEL"); kind != "" {
		return kind
	}
	return "sftp"
}

func newBankEnvKind(t *testing.T, kind string, failRate float64) *bankEnv {
	t.Helper()
	dir := t.TempDir()
	root, _ := filepath.Abs("../..")
	ks, err := sim.SetupKeys(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	// A bank side that pushes its feedback (https) pushes to the daemon's API.
	side, err := demo.StartSide(context.Background(), kind, demo.SideEnv{Dir: dir, Keys: ks, Root: root, FailRate: failRate, Seed: 3,
		Gateway: func() string { return "http://" + addr }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { side.Close() })
	d := &daemonEnv{t: t, dir: dir, addr: addr}
	d.config = filepath.Join(dir, "yktgw.yaml")
	if err := demo.WriteConfig(d.config, d.addr, ks, side.Profile(), side.Options(), filepath.Join(root, "config/calendar/cn-2026.yaml")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(yktgwBinary(t), "token", "create", "--config", d.config, "--name", "county", "--tenants", "210102", "--roles", "submitter,viewer").CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	d.token = lines[len(lines)-1]
	return &bankEnv{daemonEnv: d, sim: side, ks: ks}
}

// submit posts a batch; ok is false when the daemon did not answer 200/201.
func (e *bankEnv) submit(spec gen.Spec) bool {
	status, body, err := e.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(e.t, spec)))
	if err != nil {
		return false
	}
	if status != 201 && status != 200 {
		e.t.Fatalf("submit %s: %d %s", spec.BatchID, status, body)
	}
	return true
}

func (e *bankEnv) batch(id string) (gateway.BatchView, bool) {
	status, body, err := e.request("GET", "/v1/batches/"+id, "", nil)
	if err != nil || status != 200 {
		return gateway.BatchView{}, false
	}
	var v gateway.BatchView
	json.Unmarshal(body, &v)
	return v, true
}

// waitSettled waits until every batch is SETTLED (the daemon running).
func (e *bankEnv) waitSettled(ids []string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		for {
			v, ok := e.batch(id)
			if ok && v.State == spool.BatchSettled {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("batch %s is %s (ok=%v) after %v; daemon stderr:\n%s", id, v.State, ok, timeout, tail(e.stderr.String(), 3000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkMoney asserts the invariants of the money path over the spool file
// and the simulator's own counts.
func (e *bankEnv) checkMoney(ids []string) {
	e.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "var/spool.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var paid, failed, other int
	var paidFen, failedFen int64
	if err := db.QueryRow(`SELECT coalesce(sum(state='PAID'),0), coalesce(sum(CASE WHEN state='PAID' THEN paid_fen END),0),
		coalesce(sum(state='FAILED'),0), coalesce(sum(CASE WHEN state='FAILED' THEN amount_fen END),0), coalesce(sum(state NOT IN ('PAID','FAILED')),0) FROM records`).
		Scan(&paid, &paidFen, &failed, &failedFen, &other); err != nil {
		e.t.Fatal(err)
	}
	st := e.sim.Stats()
	if other != 0 {
		e.t.Errorf("%d records not final", other)
	}
	if st.Duplicates != 0 {
		e.t.Errorf("the bank saw %d duplicate files: %v", st.Duplicates, st.DuplicatesByBatchNo)
	}
	rows, err := db.Query(`SELECT bank_batch_no, state FROM deliveries`)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var no, state string
		rows.Scan(&no, &state)
		n++
		if st.AcceptedByBatchNo[no] != 1 {
			e.t.Errorf("delivery %s (%s): the bank accepted it %d times", no, state, st.AcceptedByBatchNo[no])
		}
	}
	rows.Close()
	if st.Accepted != n {
		e.t.Errorf("the bank accepted %d files for %d deliveries", st.Accepted, n)
	}
	if paid != st.PaidRecords || paidFen != st.PaidFen || failed != st.FailedRecords || failedFen != st.FailedFen {
		e.t.Errorf("spool paid %d/%d fen, failed %d/%d fen; the bank's returns say paid %d/%d, failed %d/%d",
			paid, paidFen, failed, failedFen, st.PaidRecords, st.PaidFen, st.FailedRecords, st.FailedFen)
	}
	// No person paid twice for the same subsidy and period.
	var twice int
	db.QueryRow(`SELECT count(*) FROM (SELECT dedupe_key FROM records WHERE state = 'PAID' GROUP BY dedupe_key HAVING count(*) > 1)`).Scan(&twice)
	if twice != 0 {
		e.t.Errorf("%d people paid twice", twice)
	}
	var total int64
	for _, id := range ids {
		v, _ := e.batch(id)
		total += v.TotalFen
	}
	if paidFen+failedFen != total {
		e.t.Errorf("paid+failed = %d fen, batches total %d fen", paidFen+failedFen, total)
	}
	// Every rendered body went: with its sealed file, its sent file, or the
	// start-up sweep (a stage the kill cut off).
	if left, _ := filepath.Glob(filepath.Join(e.dir, "var/spool/body/*/*")); len(left) != 0 {
		e.t.Errorf("bodies left after settling: %v", left)
	}
}

func TestCrashPoints(t *testing.T) {
	kind := testChannel()
	for i, fp := range gateway.Failpoints {
		t.Run(fp, func(t *testing.T) {
			if only := gateway.ChannelFailpoints[fp]; only != "" && only != kind {
				t.Skipf("crash point %s is reached only on the %s channel, not on %s", fp, only, kind)
			}
			e := newBankEnv(t, 0.1)
			e.start("YKT_FAILPOINT=" + fp)
			spec := gen.Spec{BatchID: "B-" + fp, N: 2000, PersonOffset: i * 10000}
			acked := e.submit(spec)
			e.wait(60 * time.Second) // the daemon must die at the failpoint
			e.start()
			defer e.kill()
			if !acked {
				// The client never heard back: it retries, and gets the first answer.
				if !e.submit(spec) {
					t.Fatal("retry after restart failed")
				}
			}
			e.waitSettled([]string{spec.BatchID}, 90*time.Second)
			e.checkMoney([]string{spec.BatchID})
		})
	}
}

// TestRandomKills kills the daemon with SIGKILL at random moments (about 20
// kills within a minute) while batches flow, restarting it each time.
func TestRandomKills(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	e := newBankEnv(t, 0.05)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var specs []gen.Spec
	for i := 0; i < 8; i++ {
		specs = append(specs, gen.Spec{BatchID: fmt.Sprintf("R-%d", i), N: 1500 + 500*i, PersonOffset: i * 100000, Seed: uint64(i)})
	}
	acked := map[string]bool{}
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for kills < 20 && time.Now().Before(deadline) {
		e.start()
		// Submit what has not been acknowledged yet, in the background.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, s := range specs {
				if acked[s.BatchID] {
					continue
				}
				if e.submit(s) {
					acked[s.BatchID] = true
				} else {
					return
				}
			}
		}()
		time.Sleep(time.Duration(200+r.IntN(2500)) * time.Millisecond)
		e.kill()
		<-done
		kills++
	}
	e.start()
	defer e.kill()
	var ids []string
	for _, s := range specs {
		if !acked[s.BatchID] && !e.submit(s) {
			t.Fatalf("submit %s after the kills", s.BatchID)
		}
		ids = append(ids, s.BatchID)
	}
	t.Logf("%d kills", kills)
	e.waitSettled(ids, 3*time.Minute)
	e.checkMoney(ids)
}
