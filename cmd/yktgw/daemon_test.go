package main

// Tests that run the real yktgw binary as a daemon and kill it with SIGKILL.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yktgw/crypto"
	"yktgw/gateway"
	"yktgw/internal/gen"
	"yktgw/spool"
	"yktgw/spool/sqlite"

	_ "github.com/mattn/go-sqlite3"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// yktgwBinary builds the binary once per test run.
func yktgwBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "yktgw-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "yktgw")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemonEnv is a config directory for one daemon.
type daemonEnv struct {
	t      *testing.T
	dir    string
	config string
	addr   string
	token  string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func newDaemonEnv(t *testing.T) *daemonEnv {
	t.Helper()
	dir := t.TempDir()
	root, _ := filepath.Abs("../..")
	if err := crypto.GenerateDataKeyFile(filepath.Join(dir, "data.key")); err != nil {
		t.Fatal(err)
	}
	pass := []byte("test passphrase")
	if err := os.WriteFile(filepath.Join(dir, "passphrase"), pass, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, party := range []string{"gateway", "bank-demo"} {
		if err := crypto.GenerateParty(dir, party, pass, 365*24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemonEnv{t: t, dir: dir, addr: freePort(t)}
	cfg := fmt.Sprintf(`listen: %s
spool: {driver: sqlite, path: var/spool.db, dir: var/spool}
keys: {data_key_file: data.key, passphrase_file: passphrase, signing_key: gateway.key.pem, certificate: gateway.cert.pem}
subsidies:
  - {code: GDZL, name: 耕地地力保护补贴, cap_fen: 5000000, department: agriculture}
banks:
  - {code: DEMO, profile: %s/testdata/banks/demo/profile.yaml, certificate: bank-demo.cert.pem}
calendar: [%s/config/calendar/cn-2026.yaml]
log: {level: info, format: json}
`, d.addr, root, root)
	d.config = filepath.Join(dir, "yktgw.yaml")
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(yktgwBinary(t), "token", "create", "--config", d.config, "--name", "county", "--tenants", "210102", "--roles", "submitter,viewer").CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	d.token = lines[len(lines)-1]
	if !strings.HasPrefix(d.token, "ykt_") {
		t.Fatalf("token create printed %q last", d.token)
	}
	return d
}

// start runs the daemon with extra environment and waits until it is ready.
func (d *daemonEnv) start(env ...string) {
	d.t.Helper()
	d.cmd = exec.Command(yktgwBinary(d.t), "serve", "--config", d.config)
	d.cmd.Env = append(os.Environ(), env...)
	d.stderr = &bytes.Buffer{}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + d.addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.kill()
	d.t.Fatalf("daemon not ready; stderr:\n%s", d.stderr)
}

// kill sends SIGKILL and reaps the process.
func (d *daemonEnv) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	d.cmd = nil
}

// wait waits for the daemon to exit on its own (a failpoint).
func (d *daemonEnv) wait(timeout time.Duration) {
	d.t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		ws, _ := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			d.t.Fatalf("daemon ended with %v, want death by SIGKILL; stderr:\n%s", err, d.stderr)
		}
	case <-time.After(timeout):
		d.kill()
		d.t.Fatalf("daemon did not die at the failpoint; stderr:\n%s", d.stderr)
	}
	d.cmd = nil
}

func (d *daemonEnv) request(method, path, ctype string, body io.Reader) (int, []byte, error) {
	req, _ := http.NewRequest(method, "http://"+d.addr+path, body)
	req.Header.Set("Authorization", "Bearer "+d.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func (d *daemonEnv) store() *sqlite.Store {
	d.t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(d.dir, "var/spool.db"))
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

func ndjson(t *testing.T, s gen.Spec) []byte {
	var b bytes.Buffer
	if err := gen.WriteNDJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// An acknowledged batch survives kill -9 intact.
func TestDaemonKilledKeepsAcknowledgedBatch(t *testing.T) {
	d := newDaemonEnv(t)
	d.start()
	defer d.kill()
	spec := gen.Spec{BatchID: "B-KILL", N: 3000}
	status, body, err := d.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec)))
	if err != nil || status != 201 {
		t.Fatalf("submit: %d %s %v", status, body, err)
	}
	d.kill()
	d.start()
	status, body, err = d.request("GET", "/v1/batches/B-KILL", "", nil)
	if err != nil || status != 200 {
		t.Fatalf("after restart: %d %s %v", status, body, err)
	}
	var v gateway.BatchView
	json.Unmarshal(body, &v)
	h := gen.Make(spec)
	if v.State != spool.BatchQueued || v.TotalCount != 3000 || v.TotalFen != h.TotalFen || len(v.Records) != 1 || v.Records[0].Count != 3000 || v.Records[0].Fen != h.TotalFen {
		t.Fatalf("after restart: %+v", v)
	}
	// Replaying the submission is answered with the first answer, not a second batch.
	status, _, _ = d.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec)))
	if status != 200 {
		t.Fatalf("replay after restart: %d", status)
	}
}

// Crash point intake-committed: the batch is committed but the client never
// heard back. After restart it is there (and queued), and the client's retry
// gets 200 with the first answer.
func TestDaemonCrashAfterCommitBeforeReply(t *testing.T) {
	d := newDaemonEnv(t)
	d.start("YKT_FAILPOINT=" + gateway.FPIntakeCommitted)
	spec := gen.Spec{BatchID: "B-FP", N: 500}
	status, _, err := d.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec)))
	if err == nil {
		t.Fatalf("client got %d although the daemon died before replying", status)
	}
	d.wait(10 * time.Second)
	d.start()
	defer d.kill()
	status, body, err := d.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec)))
	if err != nil || status != 200 {
		t.Fatalf("retry: %d %s %v", status, body, err)
	}
	var v gateway.BatchView
	json.Unmarshal(body, &v)
	if v.State != spool.BatchQueued || v.TotalCount != 500 {
		t.Fatalf("retry view: %+v", v)
	}
}

// A submission cut off by the daemon's death mid-stream leaves no partial batch.
func TestDaemonKilledMidStreamLeavesNothing(t *testing.T) {
	d := newDaemonEnv(t)
	d.start()
	data := ndjson(t, gen.Spec{BatchID: "B-MID", N: 40000})
	pr, pw := io.Pipe()
	go func() {
		// Send about half, slowly enough that chunks get staged, then stall.
		half := len(data) / 2
		for off := 0; off < half; off += 64 << 10 {
			end := min(off+64<<10, half)
			if _, err := pw.Write(data[off:end]); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	done := make(chan struct{})
	go func() {
		d.request("POST", "/v1/batches", "application/x-ndjson", bufio.NewReader(pr))
		close(done)
	}()
	// Wait until the stage holds records, so the kill lands mid-intake.
	dbPath := filepath.Join(d.dir, "var/spool.db")
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := countRows(dbPath, "records", &n); err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no records staged before the kill")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill()
	pw.CloseWithError(io.ErrClosedPipe)
	<-done
	d.start()
	defer d.kill()
	status, _, _ := d.request("GET", "/v1/batches/B-MID", "", nil)
	if status != 404 {
		t.Fatalf("partial batch visible: %d", status)
	}
	var n int
	if err := countRows(dbPath, "records", &n); err != nil || n != 0 {
		t.Fatalf("%d records left behind (%v)", n, err)
	}
}

// countRows reads a table's size through a separate read-only connection, so
// it never runs the spool's start-up recovery under a live daemon.
func countRows(dbPath, table string, n *int) error {
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRow(`SELECT count(*) FROM ` + table).Scan(n)
}
