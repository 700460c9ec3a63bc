package main

// Tests that run the real yktgw binary as a daemon and kill it with SIGKILL.

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"yktgw/internal/gen"

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

func ndjson(t *testing.T, s gen.Spec) []byte {
	var b bytes.Buffer
	if err := gen.WriteNDJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// An acknowledged batch survives kill -9 intact, and is then paid exactly once.
func TestDaemonKilledKeepsAcknowledgedBatch(t *testing.T) {
	e := newBankEnv(t, 0.1)
	e.start()
	spec := gen.Spec{BatchID: "B-KILL", N: 3000}
	status, body, err := e.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec)))
	if err != nil || status != 201 {
		t.Fatalf("submit: %d %s %v", status, body, err)
	}
	e.kill()
	e.start()
	defer e.kill()
	v, ok := e.batch("B-KILL")
	h := gen.Make(spec)
	n, fen := 0, int64(0)
	for _, c := range v.Records {
		n += c.Count
		fen += c.Fen
	}
	if !ok || v.TotalCount != 3000 || v.TotalFen != h.TotalFen || n != 3000 || fen != h.TotalFen {
		t.Fatalf("after restart: %+v", v)
	}
	// Replaying the submission is answered with the first answer, not a second batch.
	if status, _, _ := e.request("POST", "/v1/batches", "application/x-ndjson", bytes.NewReader(ndjson(t, spec))); status != 200 {
		t.Fatalf("replay after restart: %d", status)
	}
	e.waitSettled([]string{"B-KILL"}, 60*time.Second)
	e.checkMoney([]string{"B-KILL"})
}

// A submission cut off by the daemon's death mid-stream leaves no partial batch.
func TestDaemonKilledMidStreamLeavesNothing(t *testing.T) {
	d := newBankEnv(t, 0).daemonEnv
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
