// Package demo runs the whole money path on the embedded default in one
// process: a throw-away key set, the bank simulator over a real SFTP
// connection, the gateway on a temporary SQLite spool, a generated batch
// submitted through the real HTTP API, delivery, feedback and
// reconciliation — and checks that every fen is accounted for.
//
// It is a product feature (`yktgw demo`) and the smoke test of a fresh
// clone; it must not take shortcuts around the paths production uses.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"yktgw/banks/sim"
	"yktgw/config"
	"yktgw/gateway"
	"yktgw/internal/gen"
	"yktgw/spool"
)

// Options of a demo run.
type Options struct {
	Records  int
	FailRate float64
	Seed     int64
	Channel  string        // channel kind of the simulated bank: sftp (default), or any RegisterSide'd kind
	Root     string        // repository root (testdata profiles, calendar); default "."
	Calendar string        // business calendar file (default <Root>/config/calendar/cn-2026.yaml)
	Dir      string        // work directory ("" = a new temporary one, removed afterwards)
	Timeout  time.Duration // for the whole run
	Progress io.Writer     // progress bar (nil: none)
	Log      io.Writer     // gateway and simulator logs (nil: a file in the work directory)
}

// Result is what the demo found.
type Result struct {
	Records       int
	Paid, Failed  int
	Unknown       int
	PaidFen       int64
	FailedFen     int64
	TotalFen      int64
	Reconciled    bool
	Why           string // when not reconciled
	Elapsed       time.Duration
	Deliveries    int
	SimAccepted   int
	SimDuplicates int
	SimPaidFen    int64
	SimFailedFen  int64
}

// Line is the one summary line the demo ends with.
func (r Result) Line() string {
	return fmt.Sprintf("demo: records=%d paid=%d failed=%d unknown=%d paid_fen=%d failed_fen=%d reconciled=%t",
		r.Records, r.Paid, r.Failed, r.Unknown, r.PaidFen, r.FailedFen, r.Reconciled)
}

// Run runs the demo.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	if o.Records <= 0 {
		o.Records = 1000
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "yktgw-demo-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if o.Root == "" {
		o.Root = "."
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return Result{}, err
	}
	if o.Calendar == "" {
		o.Calendar = filepath.Join(root, "config/calendar/cn-2026.yaml")
	}
	calPath, _ := filepath.Abs(o.Calendar)
	if o.Channel == "" {
		o.Channel = "sftp"
	}
	logw := o.Log
	if logw == nil {
		f, err := os.Create(filepath.Join(dir, "demo.log"))
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		logw = f
	}
	log := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// 1. Keys for both sides, the simulated bank on a real port.
	ks, err := sim.SetupKeys(filepath.Join(dir, "keys"), nil)
	if err != nil {
		return Result{}, err
	}
	var apiAddr atomic.Value // the gateway's address once it listens (for a bank that pushes)
	apiAddr.Store("")
	bank, err := StartSide(ctx, o.Channel, SideEnv{Dir: dir, Keys: ks, Root: root, FailRate: o.FailRate, Seed: o.Seed,
		Delay: 300 * time.Millisecond, Log: log.With("side", "bank"), Gateway: func() string {
			if a := apiAddr.Load().(string); a != "" {
				return "http://" + a
			}
			return ""
		}})
	if err != nil {
		return Result{}, err
	}
	defer bank.Close()

	// 2. The gateway, from a config file written as ops would write it.
	cfgPath := filepath.Join(dir, "yktgw.yaml")
	if err := WriteConfig(cfgPath, "127.0.0.1:0", ks, bank.Profile(), bank.Options(), calPath); err != nil {
		return Result{}, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return Result{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	g, err := gateway.Open(ctx, cfg, log.With("side", "gateway"))
	if err != nil {
		return Result{}, err
	}
	defer g.Close()
	addrc := make(chan string, 1)
	srvCtx, stopSrv := context.WithCancel(ctx)
	srvDone := make(chan error, 1)
	go func() { srvDone <- g.Serve(srvCtx, func(a string) { addrc <- a }) }()
	defer func() { stopSrv(); <-srvDone }()
	var api string
	select {
	case api = <-addrc:
		apiAddr.Store(api)
	case err := <-srvDone:
		return Result{}, fmt.Errorf("demo: gateway did not start: %w", err)
	}
	token, _, err := gateway.CreateToken(ctx, g.Store(), "demo", []string{"210102"}, []string{gateway.RoleSubmitter, gateway.RoleViewer}, "demo")
	if err != nil {
		return Result{}, err
	}

	// 3. Submit a generated batch through the real API (NDJSON, streamed).
	spec := gen.Spec{BatchID: fmt.Sprintf("DEMO-%d", time.Now().UnixNano()), N: o.Records, Seed: uint64(o.Seed)}
	hdr := gen.Make(spec)
	bar := newBar(o.Progress, o.Records)
	bar.Describe("submitting")
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen.WriteNDJSON(pw, spec)) }()
	status, body, err := call(ctx, "POST", "http://"+api+"/v1/batches", token, "application/x-ndjson", pr)
	if err != nil {
		return Result{}, err
	}
	if status != 201 {
		return Result{}, fmt.Errorf("demo: submit answered %d: %s", status, bytes.TrimSpace(body))
	}

	// 4. Wait for delivery, feedback and reconciliation.
	bar.Describe("delivering and reconciling")
	var final gateway.BatchView
	for {
		status, body, err := call(ctx, "GET", "http://"+api+"/v1/batches/"+spec.BatchID, token, "", nil)
		if err != nil {
			return Result{}, err
		}
		if status != 200 {
			return Result{}, fmt.Errorf("demo: batch answered %d: %s", status, body)
		}
		final = gateway.BatchView{}
		json.Unmarshal(body, &final)
		done := 0
		for _, c := range final.Records {
			if c.Status == "PAID" || c.Status == "FAILED" {
				done += c.Count
			}
		}
		bar.Set(done)
		if final.State == spool.BatchSettled || final.State == spool.BatchDead {
			break
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("demo: batch still %s when time ran out: %w", final.State, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	bar.Finish()
	if o.Progress != nil {
		fmt.Fprintln(o.Progress)
	}

	// 5. Reconcile: the spool's word against the bank's.
	r := Result{Records: o.Records, TotalFen: hdr.TotalFen, Elapsed: time.Since(start)}
	for _, c := range final.Records {
		switch c.Status {
		case "PAID":
			r.Paid, r.PaidFen = c.Count, c.Fen
		case "FAILED":
			r.Failed, r.FailedFen = c.Count, c.Fen
		case "UNKNOWN":
			r.Unknown = c.Count
		}
	}
	st := bank.Stats()
	r.SimAccepted, r.SimDuplicates, r.SimPaidFen, r.SimFailedFen = st.Accepted, st.Duplicates, st.PaidFen, st.FailedFen
	ds, err := g.Store().Deliveries(ctx, spool.DeliveryFilter{BatchID: spec.BatchID})
	if err != nil {
		return r, err
	}
	r.Deliveries = len(ds)
	var whys []string
	check := func(ok bool, why string, a ...any) {
		if !ok {
			whys = append(whys, fmt.Sprintf(why, a...))
		}
	}
	check(final.State == spool.BatchSettled, "batch is %s, not SETTLED", final.State)
	check(r.Paid+r.Failed == r.Records, "paid+failed = %d, records %d", r.Paid+r.Failed, r.Records)
	check(r.PaidFen+r.FailedFen == r.TotalFen, "paid_fen+failed_fen = %d, batch total %d", r.PaidFen+r.FailedFen, r.TotalFen)
	check(r.PaidFen == st.PaidFen && r.FailedFen == st.FailedFen, "spool paid/failed fen %d/%d, bank's returns %d/%d", r.PaidFen, r.FailedFen, st.PaidFen, st.FailedFen)
	check(r.Paid == st.PaidRecords && r.Failed == st.FailedRecords, "spool paid/failed %d/%d, bank's returns %d/%d", r.Paid, r.Failed, st.PaidRecords, st.FailedRecords)
	check(st.Accepted == len(ds) && st.Duplicates == 0, "bank accepted %d files (%d duplicates) for %d deliveries", st.Accepted, st.Duplicates, len(ds))
	for _, d := range ds {
		check(st.AcceptedByBatchNo[d.BankBatchNo] == 1, "bank accepted %s %d times", d.BankBatchNo, st.AcceptedByBatchNo[d.BankBatchNo])
	}
	r.Reconciled = len(whys) == 0
	if !r.Reconciled {
		r.Why = fmt.Sprint(whys)
	}
	return r, nil
}

func call(ctx context.Context, method, url, token, ctype string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
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

func newBar(w io.Writer, n int) *progressbar.ProgressBar {
	if w == nil {
		w = io.Discard
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(false), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetDescription("starting"))
}

// WriteConfig writes a gateway config for the DEMO bank with the key set
// ks, the bank profile file and the channel options of a simulated bank,
// listening on listen. Tests of the real binary use it too.
func WriteConfig(path, listen string, ks *sim.KeySet, profile string, opts map[string]string, calendar string) error {
	var chopts strings.Builder
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&chopts, "      %s: %q\n", k, opts[k])
	}
	cfg := fmt.Sprintf(`# written by yktgw demo
listen: %s
spool: {driver: sqlite, path: var/spool.db, dir: var/spool}
keys:
  data_key_file: %q
  passphrase_file: %q
  signing_key: %q
  certificate: %q
subsidies:
  - {code: GDZL, name: 耕地地力保护补贴, cap_fen: 5000000, department: agriculture}
banks:
  - code: DEMO
    profile: %q
    certificate: %q
    channel_options:
%sdispatcher: {poll_interval: 200ms, max_attempts: 8, backoff_initial: 500ms, backoff_max: 5s, concurrency_per_bank: 2}
feedback: {poll_interval: 300ms, min_file_age: 300ms}
calendar: [%q]
log: {level: info, format: json}
`, listen, ks.DataKeyFile, ks.PassphraseFile, ks.GatewayKeyFile, ks.GatewayCertFile, profile, ks.BankCertFile, chopts.String(), calendar)
	return os.WriteFile(path, []byte(cfg), 0o600)
}
