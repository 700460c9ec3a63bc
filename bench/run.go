package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"yktgw/config"
	"yktgw/gateway"
	"yktgw/gateway/demo"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// runResult is one run of yktgw: the daemon from an empty spool to a
// settled batch.
type runResult struct {
	N           int
	Intake      time.Duration // POST until the 201
	Dispatch    time.Duration // the 201 until every delivery is SENT (batch SENT)
	EndToEnd    time.Duration // POST until batch SENT
	Feedback    time.Duration // return files in place until batch SETTLED
	Prepare     time.Duration // writing the return files (bank side, not timed in the table)
	CPUIntake   time.Duration // the daemon's CPU time (user + system) from the POST until the 201
	CPUDispatch time.Duration // from the 201 until SENT
	CPUFeedback time.Duration // from the return files in place until SETTLED
	LogCopy     time.Duration // SETTLED until the spool's log copy, deferred while the spool was busy, is done (0: none)
	CPULogCopy  time.Duration // the daemon's CPU time over LogCopy
	Lanes       intakeLanes   // where intake's time went, from the daemon's log (zero if not logged)
	HWMIntake   int64         // VmHWM in bytes after the 201 (0 in process)
	HWMSent     int64         // after SENT
	HWMSettled  int64         // after SETTLED
	HWMEnd      int64         // after the spool's log copy: the run's peak
	Deliveries  int
	Paid        int
	Failed      int
}

// daemon is a running gateway: the real binary, or (profile mode) the same
// gateway.Open + Serve inside this process.
type daemon interface {
	hwm() (int64, error)
	cpu() (time.Duration, error) // user + system CPU time used so far
	stop() error
}

type procDaemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

func (d *procDaemon) hwm() (int64, error)         { return vmHWM(d.cmd.Process.Pid) }
func (d *procDaemon) cpu() (time.Duration, error) { return procCPU(d.cmd.Process.Pid) }

func (d *procDaemon) stop() error {
	select {
	case <-d.exited:
		return errors.New("bench: daemon exited early")
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	return d.log.Close()
}

type inprocDaemon struct {
	cancel context.CancelFunc
	done   chan error
	g      *gateway.Gateway
	log    *os.File
}

func (d *inprocDaemon) hwm() (int64, error)         { return vmHWM(os.Getpid()) }
func (d *inprocDaemon) cpu() (time.Duration, error) { return procCPU(os.Getpid()) } // the bench's own included

func (d *inprocDaemon) stop() error {
	d.cancel()
	err := <-d.done
	if cerr := d.g.Close(); err == nil {
		err = cerr
	}
	d.log.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// vmHWM reads a process's peak resident set size (VmHWM) in bytes.
func vmHWM(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// procCPU reads a process's user + system CPU time, all threads, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s: USER_HZ is 100
// on Linux). On a shared machine it varies far less than wall time does: it
// counts the daemon's work, not the neighbours' (caches and frequency aside).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("bench: /proc stat without a command")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procStatus reads one kB figure of /proc/PID/status in bytes.
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("bench: no %s in /proc status", key)
}

// profiler writes one CPU profile per stage (nil: no profiling).
type profiler struct {
	dir   string
	f     *os.File
	stage string
	mem   []memSnap
}

// memSnap is where the memory was at the end of a stage (profile mode):
// the process's peak RSS against what the Go runtime holds, so the rest is
// C memory (SQLite's page cache and temp store).
type memSnap struct {
	Stage                     string
	VmHWM, VmRSS              int64
	GoSys, HeapInuse, HeapSys uint64
}

func (p *profiler) start(stage string) error {
	if p == nil {
		return nil
	}
	f, err := os.Create(filepath.Join(p.dir, stage+".cpu.pprof"))
	if err != nil {
		return err
	}
	p.f, p.stage = f, stage
	return pprof.StartCPUProfile(f)
}

func (p *profiler) stop() {
	if p == nil || p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	p.f.Close()
	p.f = nil
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	snap := memSnap{Stage: p.stage, GoSys: ms.Sys, HeapInuse: ms.HeapInuse, HeapSys: ms.HeapSys}
	snap.VmHWM, _ = vmHWM(os.Getpid())
	snap.VmRSS, _ = procStatus(os.Getpid(), "VmRSS:")
	p.mem = append(p.mem, snap)
	// Live heap at the end of the stage (as of the last GC).
	if f, err := os.Create(filepath.Join(p.dir, p.stage+".heap.pprof")); err == nil {
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
}

// runYktgw runs one batch through a fresh daemon on a fresh spool: intake
// through the HTTP API, delivery to the bench sshd until SENT, then return
// files for every record until SETTLED.
func runYktgw(ctx context.Context, e *env, name string, spec gen.Spec, ndjson string, prof *profiler) (runResult, error) {
	res := runResult{N: spec.N}
	hdr := gen.Make(spec)
	dir := filepath.Join(e.work, "runs", name)
	remote := filepath.Join(e.work, "remote", name)
	upload, inbound, stage := filepath.Join(remote, "upload"), filepath.Join(remote, "feedback"), filepath.Join(remote, "stage")
	for _, d := range []string{dir, upload, inbound, stage} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return res, err
		}
	}
	if e.keep == "" {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(remote)
	}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	api := "http://127.0.0.1:" + strconv.Itoa(port)
	cfgPath := filepath.Join(dir, "yktgw.yaml")
	opts := map[string]string{
		"host": "127.0.0.1", "port": strconv.Itoa(e.sshd.Port), "user": e.sshd.User,
		"key_file": e.ks.ClientKeyFile, "host_key_file": e.sshd.KnownHosts,
		"outbound_dir": upload, "inbound_dir": inbound,
		// The bench renames complete return files into place: no need to
		// wait for a writer to finish.
		"min_age": "0s", "settle": "0s",
	}
	if err := demo.WriteConfig(cfgPath, "127.0.0.1:"+strconv.Itoa(port), e.ks, e.profilePath, opts, e.calendar); err != nil {
		return res, err
	}
	out, err := exec.CommandContext(ctx, e.bin, "token", "create", "--config", cfgPath, "--name", "bench",
		"--tenants", hdr.Tenant, "--roles", "submitter,viewer").CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("bench: token create: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])

	logPath := filepath.Join(dir, "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	var d daemon
	if prof == nil {
		cmd := exec.Command(e.bin, "serve", "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return res, fmt.Errorf("bench: start daemon: %w", err)
		}
		pd := &procDaemon{cmd: cmd, exited: make(chan struct{}), log: logf}
		go func() { _ = cmd.Wait(); close(pd.exited) }()
		d = pd
	} else {
		cfg, err := config.Load(cfgPath)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			logf.Close()
			return res, err
		}
		g, err := gateway.Open(ctx, cfg, gateway.NewLogger(cfg.Log, logf))
		if err != nil {
			logf.Close()
			return res, err
		}
		sctx, cancel := context.WithCancel(ctx)
		id := &inprocDaemon{cancel: cancel, done: make(chan error, 1), g: g, log: logf}
		go func() { id.done <- g.Serve(sctx, nil) }()
		d = id
	}
	stopped := false
	defer func() {
		if !stopped {
			d.stop()
		}
	}()
	fail := func(err error) (runResult, error) {
		return res, fmt.Errorf("%w (daemon log: %s)", err, logPath)
	}
	if err := waitHealthy(ctx, api); err != nil {
		return fail(err)
	}

	// Intake: the NDJSON file through the real API.
	f, err := os.Open(ndjson)
	if err != nil {
		return res, err
	}
	defer f.Close()
	st, _ := f.Stat()
	if err := prof.start(name + ".intake"); err != nil {
		return res, err
	}
	c0, _ := d.cpu()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/batches", bufio.NewReaderSize(f, 256<<10))
	req.ContentLength = st.Size()
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		prof.stop()
		return fail(fmt.Errorf("bench: submit: %w", err))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res.Intake = time.Since(t0)
	c1, _ := d.cpu()
	res.CPUIntake = c1 - c0
	prof.stop()
	if resp.StatusCode != 201 {
		return fail(fmt.Errorf("bench: submit answered %d: %s", resp.StatusCode, truncate(body, 400)))
	}
	res.HWMIntake, _ = d.hwm()
	res.Lanes, _ = readLanes(logPath, hdr.BatchID)

	// Delivery: until the batch is SENT.
	if err := prof.start(name + ".dispatch"); err != nil {
		return res, err
	}
	t1 := time.Now()
	err = waitState(ctx, api, token, spool.BatchSent)
	res.Dispatch = time.Since(t1)
	res.EndToEnd = time.Since(t0)
	c2, _ := d.cpu()
	res.CPUDispatch = c2 - c1
	prof.stop()
	if err != nil {
		return fail(err)
	}
	res.HWMSent, _ = d.hwm()

	// Feedback: the bank's return files, prepared first (not timed), then
	// renamed into the inbound directory at once.
	t := time.Now()
	staged, exp, err := prepareReturns(e, upload, stage, hdr)
	if err != nil {
		return fail(err)
	}
	res.Prepare = time.Since(t)
	res.Deliveries = len(staged)
	if err := prof.start(name + ".feedback"); err != nil {
		return res, err
	}
	c3, _ := d.cpu()
	t2 := time.Now()
	for _, s := range staged {
		if err := os.Rename(s, filepath.Join(inbound, filepath.Base(s))); err != nil {
			prof.stop()
			return res, err
		}
	}
	err = waitState(ctx, api, token, spool.BatchSettled)
	res.Feedback = time.Since(t2)
	c4, _ := d.cpu()
	res.CPUFeedback = c4 - c3
	prof.stop()
	if err != nil {
		return fail(err)
	}
	res.HWMSettled, _ = d.hwm()
	if prof != nil {
		if f, err := os.Create(filepath.Join(prof.dir, name+".allocs.pprof")); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}

	// The spool's word against what the bank's returns said.
	var v gateway.BatchView
	if err := getJSON(ctx, api+"/v1/batches/"+hdr.BatchID, token, &v); err != nil {
		return fail(err)
	}
	got := map[string]gateway.StateCountJSON{}
	for _, c := range v.Records {
		got[c.Status] = c
	}
	res.Paid, res.Failed = got["PAID"].Count, got["FAILED"].Count
	if got["PAID"].Count != exp.PaidCount || got["PAID"].Fen != exp.PaidFen || got["FAILED"].Count != exp.FailedCount ||
		got["FAILED"].Fen != exp.FailedFen || exp.Count != hdr.TotalCount || exp.TotalFen != hdr.TotalFen {
		return fail(fmt.Errorf("bench: NOT RECONCILED: spool says %+v; bank files %d records %d fen (batch %d/%d), returns paid %d/%d failed %d/%d",
			v.Records, exp.Count, exp.TotalFen, hdr.TotalCount, hdr.TotalFen, exp.PaidCount, exp.PaidFen, exp.FailedCount, exp.FailedFen))
	}
	// The spool copies its write-ahead log into the database once it is
	// quiet (spool/sqlite checkpointer): the work deferred out of the stages
	// above, measured here so that it is seen.
	c5, _ := d.cpu()
	t3 := time.Now()
	if copied, err := waitLogCopy(ctx, api); err != nil {
		return fail(err)
	} else if copied {
		res.LogCopy = time.Since(t3)
		c6, _ := d.cpu()
		res.CPULogCopy = c6 - c5
	}
	res.HWMEnd, _ = d.hwm()
	stopped = true
	if err := d.stop(); err != nil {
		return fail(err)
	}
	return res, nil
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func waitHealthy(ctx context.Context, api string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", api+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("bench: daemon not healthy on %s within 30s", api)
}

func getJSON(ctx context.Context, url, token string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("bench: GET %s: %d: %s", url, resp.StatusCode, truncate(b, 300))
	}
	return json.Unmarshal(b, v)
}

// waitLogCopy waits until the spool's log copy that was deferred while the
// spool was busy has run (yktgw_spool_log_copy_deferred back to 0 after a
// new copy), polling /metrics every 50 ms. It reports false when no copy was
// due (a log under the size that waits).
func waitLogCopy(ctx context.Context, api string) (bool, error) {
	read := func() (map[string]float64, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", api+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		return parseMetrics(b, "yktgw_spool_log_copy_deferred", "yktgw_spool_log_copies_total"), nil
	}
	m, err := read()
	if err != nil {
		return false, err
	}
	copies := m["yktgw_spool_log_copies_total"]
	start := time.Now()
	for seen := m["yktgw_spool_log_copy_deferred"] == 1; ; {
		time.Sleep(50 * time.Millisecond)
		if m, err = read(); err != nil {
			return false, err
		}
		deferred := m["yktgw_spool_log_copy_deferred"] == 1
		seen = seen || deferred
		switch {
		case !deferred && m["yktgw_spool_log_copies_total"] > copies:
			return true, nil
		case !seen && time.Since(start) > 3*time.Second:
			return false, nil // nothing held back
		case time.Since(start) > 2*time.Minute:
			return false, fmt.Errorf("bench: the spool's log copy did not run within 2 minutes of SETTLED")
		}
	}
}

// parseMetrics reads the named unlabelled series from a Prometheus text page.
func parseMetrics(page []byte, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(string(page), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !slices.Contains(names, f[0]) {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// waitState polls the batch list (the cheap view: no per-record counts)
// every 50 ms until the one batch reaches want. DEAD is an error.
func waitState(ctx context.Context, api, token string, want spool.BatchState) error {
	deadline := time.Now().Add(2 * time.Hour)
	last := spool.BatchState("")
	for time.Now().Before(deadline) {
		var l gateway.BatchList
		if err := getJSON(ctx, api+"/v1/batches?limit=1", token, &l); err != nil {
			return err
		}
		if len(l.Items) == 1 {
			last = l.Items[0].State
			if last == want {
				return nil
			}
			if last == spool.BatchDead || last == spool.BatchCancelled {
				return fmt.Errorf("bench: batch is %s, waiting for %s", last, want)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: batch still %s, waiting for %s", last, want)
}

// intakeLanes is the "lanes" of the daemon's "batch accepted" log line
// (gateway/intake.go): how long each of intake's three goroutines worked
// and waited, and Finalize. The lane that never waits sets the pace.
type intakeLanes struct {
	Chunks    int           `json:"chunks"`
	ReadWait  time.Duration `json:"read_wait"`
	SealBusy  time.Duration `json:"seal_busy"`
	SealWait  time.Duration `json:"seal_wait"`
	WriteBusy time.Duration `json:"write_busy"`
	WriteWait time.Duration `json:"write_wait"`
	Finalize  time.Duration `json:"finalize"`
}

// readLanes finds batch's "batch accepted" line in a JSON daemon log.
func readLanes(logPath, batch string) (intakeLanes, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return intakeLanes{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg   string       `json:"msg"`
			Batch string       `json:"batch"`
			Lanes *intakeLanes `json:"lanes"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "batch accepted" && line.Batch == batch && line.Lanes != nil {
			return *line.Lanes, true
		}
	}
	return intakeLanes{}, false
}
