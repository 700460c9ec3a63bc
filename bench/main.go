// Command bench measures yktgw end to end against the bare pipeline
// (issue 8, DESIGN.md "Performance targets"): N generated records through
// the real daemon's HTTP API, spool, render, sign, seal and SFTP upload to
// a local OpenSSH sshd, then return files for every record until the batch
// is settled; against the same records rendered once as a plain bank file,
// `openssl enc -sm4-cbc` and OpenSSH `sftp put` to the same sshd. It
// prints one table (medians of -reps runs) with the targets, PASS or MISS.
//
// It only measures: it must not change how the gateway works, and it is
// not part of `make test`. Run it with `make bench` (N=, REPS=) or
// `go run ./bench -n 1000000 -reps 3`; -profile DIR adds one in-process
// run with a CPU profile per stage and prints the top functions.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"yktgw/banks"
	_ "yktgw/banks/sftp" // the DEMO bank's channel, for the in-process profile run
	"yktgw/banks/sim"
	"yktgw/internal/gen"
)

// env is what every run shares: keys, the sshd, the profile, the batch.
type env struct {
	work, keep  string
	bin         string
	root        string
	ks          *sim.KeySet
	sshd        *sshd
	profilePath string
	profile     *banks.Profile
	calendar    string
	spec        gen.Spec
	hdr         gen.Header
}

func main() {
	n := flag.Int("n", 1_000_000, "records in the batch")
	reps := flag.Int("reps", 3, "repetitions of each measurement (the table shows medians)")
	seed := flag.Uint64("seed", 1, "seed of the generated batch")
	keep := flag.String("keep", "", "work directory to keep (default: a temporary one, removed)")
	prof := flag.String("profile", "", "also run once in process with a CPU profile per stage written to this directory, and print the top functions")
	bin := flag.String("bin", "bin/yktgw", "the yktgw binary (built first with go build unless -nobuild)")
	nobuild := flag.Bool("nobuild", false, "do not build -bin")
	root := flag.String("root", ".", "repository root (testdata, config/calendar)")
	small := flag.Bool("small", true, "also run once at N/10 for the RSS comparison")
	profileOnly := flag.Bool("profile-only", false, "with -profile: skip the measured runs and the table, only profile")
	flag.Parse()
	if *profileOnly {
		if *prof == "" {
			fmt.Fprintln(os.Stderr, "bench: -profile-only needs -profile DIR")
			os.Exit(2)
		}
		*reps, *small = 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *reps, *seed, *keep, *prof, *bin, !*nobuild, *root, *small); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func run(ctx context.Context, n, reps int, seed uint64, keep, profDir, bin string, build bool, root string, small bool) error {
	if n < 10 || reps < 0 || reps == 0 && profDir == "" {
		return fmt.Errorf("need -n >= 10 and -reps >= 1")
	}
	e := &env{keep: keep}
	var err error
	if e.root, err = filepath.Abs(root); err != nil {
		return err
	}
	if e.bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if build {
		logf("building %s", bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/yktgw")
		cmd.Dir, cmd.Stdout, cmd.Stderr = e.root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	if keep != "" {
		e.work, err = filepath.Abs(keep)
		if err == nil {
			err = os.MkdirAll(e.work, 0o700)
		}
	} else {
		e.work, err = os.MkdirTemp("", "yktgw-bench-")
		defer os.RemoveAll(e.work)
	}
	if err != nil {
		return err
	}
	e.profilePath = filepath.Join(e.root, "testdata/banks/demo/profile.yaml")
	if e.profile, err = banks.LoadProfile(e.profilePath); err != nil {
		return err
	}
	e.calendar = filepath.Join(e.root, "config/calendar/cn-2026.yaml")
	if e.ks, err = sim.SetupKeys(filepath.Join(e.work, "keys"), nil); err != nil {
		return err
	}
	if e.sshd, err = startSSHD(filepath.Join(e.work, "sshd"), e.ks.ClientKey.PublicKey()); err != nil {
		return err
	}
	defer e.sshd.Stop()
	logf("sshd on 127.0.0.1:%d, work dir %s", e.sshd.Port, e.work)

	e.spec = gen.Spec{BatchID: fmt.Sprintf("BENCH-%d-%d", n, seed), N: n, Seed: seed}
	e.hdr = gen.Make(e.spec)
	ndjson := filepath.Join(e.work, "batch.ndjson")
	t := time.Now()
	if err := writeNDJSON(ndjson, e.spec); err != nil {
		return err
	}
	st, _ := os.Stat(ndjson)
	logf("generated %d records (%d bytes NDJSON) in %s", n, st.Size(), time.Since(t).Round(time.Millisecond))

	var bases []baselineTimes
	var runs []runResult
	for rep := 1; rep <= reps; rep++ {
		bt, err := runBaseline(e, rep)
		if err != nil {
			return err
		}
		logf("rep %d baseline: render %s, openssl %s, sftp %s (%d plain bytes)", rep, ms(bt.Render), ms(bt.Encrypt), ms(bt.Upload), bt.PlainBytes)
		bases = append(bases, bt)
		rr, err := runYktgw(ctx, e, fmt.Sprintf("rep%d", rep), e.spec, ndjson, nil)
		if err != nil {
			return err
		}
		logf("rep %d yktgw: intake %s, until SENT %s (%d deliveries), feedback %s (prepared in %s), VmHWM %s; daemon CPU: intake %s, delivery %s, feedback %s; log copy after SETTLED %s (%s CPU)",
			rep, ms(rr.Intake), ms(rr.EndToEnd), rr.Deliveries, ms(rr.Feedback), ms(rr.Prepare), mib(rr.HWMSettled),
			ms(rr.CPUIntake), ms(rr.CPUDispatch), ms(rr.CPUFeedback), ms(rr.LogCopy), ms(rr.CPULogCopy))
		if l := rr.Lanes; l.Chunks > 0 {
			logf("rep %d intake lanes (%d chunks): writer busy %s, waits %s; sealer busy %s, waits %s; reader waits %s; finalize %s",
				rep, l.Chunks, ms(l.WriteBusy), ms(l.WriteWait), ms(l.SealBusy), ms(l.SealWait), ms(l.ReadWait), ms(l.Finalize))
		}
		runs = append(runs, rr)
	}
	var smallRun *runResult
	if small && n >= 100 {
		spec := e.spec
		spec.N = n / 10
		spec.BatchID = fmt.Sprintf("BENCH-%d-%d", spec.N, seed)
		path := filepath.Join(e.work, "batch-small.ndjson")
		if err := writeNDJSON(path, spec); err != nil {
			return err
		}
		rr, err := runYktgw(ctx, e, "small", spec, path, nil)
		if err != nil {
			return err
		}
		logf("N/10 yktgw: intake %s, until SENT %s, feedback %s, VmHWM %s", ms(rr.Intake), ms(rr.EndToEnd), ms(rr.Feedback), mib(rr.HWMSettled))
		smallRun = &rr
	}
	if len(runs) > 0 {
		printTable(os.Stdout, e, bases, runs, smallRun)
	}

	if profDir != "" {
		if profDir, err = filepath.Abs(profDir); err != nil {
			return err
		}
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return err
		}
		logf("profile run (in process) at N=%d, profiles in %s", n, profDir)
		pr := &profiler{dir: profDir}
		rr, err := runYktgw(ctx, e, "profile", e.spec, ndjson, pr)
		if err != nil {
			return err
		}
		fmt.Printf("\nProfile run (gateway.Open + Serve in this process, N=%d): intake %s, until SENT %s, feedback %s\n",
			n, ms(rr.Intake), ms(rr.EndToEnd), ms(rr.Feedback))
		fmt.Println("Memory at the end of each stage (peak RSS of the process against what the Go runtime holds; the rest is C: SQLite):")
		for _, m := range pr.mem {
			fmt.Printf("  %-18s VmHWM %s  VmRSS %s  Go runtime Sys %s (heap in use %s)\n", m.Stage, mib(m.VmHWM), mib(m.VmRSS),
				mib(int64(m.GoSys)), mib(int64(m.HeapInuse)))
		}
		for _, stage := range []string{"intake", "dispatch", "feedback"} {
			printTop(ctx, os.Stdout, filepath.Join(profDir, "profile."+stage+".cpu.pprof"), stage)
		}
		printTop(ctx, os.Stdout, filepath.Join(profDir, "profile.allocs.pprof"), "allocations (whole run, -sample_index=alloc_space)")
		fmt.Println("\nNote: go-sqlite3 runs a statement executed with a cancellable context (ExecContext/QueryContext with a request or")
		fmt.Println("worker ctx) on a goroutine of its own, so that CPU shows under go-sqlite3.(*SQLiteStmt).exec.func1 with no yktgw caller.")
		fmt.Println("A profile's \"Total samples\" well below its Duration x 2 CPUs means the stage waits (fsync, the one SQLite writer, poll ticks).")
	}
	return nil
}

func writeNDJSON(path string, spec gen.Spec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen.WriteNDJSON(f, spec); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printTop prints `go tool pprof -top` of one profile (flat, then cumulative).
func printTop(ctx context.Context, w io.Writer, file, stage string) {
	args := []string{"tool", "pprof", "-top", "-nodecount=25"}
	if strings.Contains(file, "allocs") {
		args = append(args, "-sample_index=alloc_space")
	}
	for _, cum := range []bool{false, true} {
		a := append([]string(nil), args...)
		label := "flat"
		if cum {
			// Only our packages and the libraries doing the work, so the
			// list names which yktgw function holds the time.
			a = append(a, "-cum", "-show=yktgw/|go-sqlite3\\.\\(\\*SQLite(Stmt|Tx)\\)\\.(exec(\\.func1)?|Commit)$|pkg/sftp|gmsm/(sm2|sm3|sm4|internal)")
			label = "cumulative, our functions and the SQLite/SFTP/gmsm calls under them"
		}
		out, err := exec.CommandContext(ctx, "go", append(a, file)...).CombinedOutput()
		fmt.Fprintf(w, "\n== top functions, %s (%s): %s\n", stage, label, file)
		if err != nil {
			fmt.Fprintf(w, "pprof failed: %v\n", err)
		}
		w.Write(out)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minmax(ds []time.Duration) (time.Duration, time.Duration) {
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo, hi
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func printTable(out io.Writer, e *env, bases []baselineTimes, runs []runResult, small *runResult) {
	n := e.spec.N
	col := func(f func(int) time.Duration, k int) []time.Duration {
		ds := make([]time.Duration, k)
		for i := range ds {
			ds[i] = f(i)
		}
		return ds
	}
	b := func(f func(baselineTimes) time.Duration) []time.Duration {
		return col(func(i int) time.Duration { return f(bases[i]) }, len(bases))
	}
	y := func(f func(runResult) time.Duration) []time.Duration {
		return col(func(i int) time.Duration { return f(runs[i]) }, len(runs))
	}
	render := b(func(t baselineTimes) time.Duration { return t.Render })
	enc := b(func(t baselineTimes) time.Duration { return t.Encrypt })
	up := b(func(t baselineTimes) time.Duration { return t.Upload })
	base := b(func(t baselineTimes) time.Duration { return t.Encrypt + t.Upload })
	intake := y(func(r runResult) time.Duration { return r.Intake })
	disp := y(func(r runResult) time.Duration { return r.Dispatch })
	e2e := y(func(r runResult) time.Duration { return r.EndToEnd })
	fb := y(func(r runResult) time.Duration { return r.Feedback })
	var hwm, hwmIntake, hwmSent, hwmSettled int64
	for _, r := range runs {
		hwm = max(hwm, r.HWMEnd)
		hwmSettled = max(hwmSettled, r.HWMSettled)
		hwmIntake = max(hwmIntake, r.HWMIntake)
		hwmSent = max(hwmSent, r.HWMSent)
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(out, "\nmachine load (/proc/loadavg) when the table was printed: %s", load)
	fmt.Fprintf(out, "yktgw bench: N=%d records, reps=%d, seed=%d, %d CPUs, %s/%s, %s; %d deliveries of ≤%d records; plain file %d bytes\n",
		n, len(runs), e.spec.Seed, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runs[0].Deliveries,
		e.profile.MaxRecordsPerFile, bases[0].PlainBytes)
	const rowFmt = "| %-66s | %10s | %10s | %10s |\n"
	fmt.Fprintf(out, rowFmt, "stage (wall time)", "median", "min", "max")
	fmt.Fprintf(out, "|%s|%s|%s|%s|\n", strings.Repeat("-", 68), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 12))
	row := func(name string, ds []time.Duration) {
		lo, hi := minmax(ds)
		fmt.Fprintf(out, rowFmt, name, ms(median(ds)), ms(lo), ms(hi))
	}
	row("baseline: render plain DEMO file (banks/format; not in the ratio)", render)
	row("baseline: openssl enc -sm4-cbc", enc)
	row("baseline: sftp put (OpenSSH)", up)
	row("baseline: openssl + sftp", base)
	row("yktgw: intake (POST NDJSON until 201)", intake)
	row("yktgw: 201 until every delivery SENT", disp)
	row("yktgw: end to end (POST until SENT)", e2e)
	row("yktgw: feedback (return files in until SETTLED)", fb)
	// CPU time varies far less than wall time on a shared machine: compare
	// these between runs made at different times.
	row("yktgw daemon CPU (user+sys): intake", y(func(r runResult) time.Duration { return r.CPUIntake }))
	row("yktgw daemon CPU (user+sys): 201 until SENT", y(func(r runResult) time.Duration { return r.CPUDispatch }))
	row("yktgw daemon CPU (user+sys): feedback", y(func(r runResult) time.Duration { return r.CPUFeedback }))
	// The spool's log copy waits for a quiet spool: it is work the stages
	// above did not do, shown here (in no ratio) so that it is not hidden.
	if runs[0].LogCopy > 0 {
		row("yktgw: spool log copy after SETTLED (deferred while busy)", y(func(r runResult) time.Duration { return r.LogCopy }))
		row("yktgw daemon CPU (user+sys): spool log copy", y(func(r runResult) time.Duration { return r.CPULogCopy }))
	}
	// Where intake's wall time went, as the daemon logs it: the lane that
	// never waits sets the pace (README "Where the time goes").
	if runs[0].Lanes.Chunks > 0 {
		row("yktgw intake lanes: writer busy", y(func(r runResult) time.Duration { return r.Lanes.WriteBusy }))
		row("yktgw intake lanes: writer waiting for chunks", y(func(r runResult) time.Duration { return r.Lanes.WriteWait }))
		row("yktgw intake lanes: sealer busy", y(func(r runResult) time.Duration { return r.Lanes.SealBusy }))
		row("yktgw intake lanes: reader waiting for the sealer", y(func(r runResult) time.Duration { return r.Lanes.ReadWait }))
		row("yktgw intake lanes: Finalize", y(func(r runResult) time.Duration { return r.Lanes.Finalize }))
	}

	ratio := median(e2e).Seconds() / median(base).Seconds()
	intakeRate := float64(n) / median(intake).Seconds()
	fbRate := float64(n) / median(fb).Seconds()
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| figure\t value\t")
	fmt.Fprintf(tw, "| ratio end to end yktgw / baseline (medians)\t %.2f×\t\n", ratio)
	fmt.Fprintf(tw, "| records/s intake\t %.0f\t\n", intakeRate)
	fmt.Fprintf(tw, "| records/s end to end\t %.0f\t\n", float64(n)/median(e2e).Seconds())
	fmt.Fprintf(tw, "| records/s reconciliation\t %.0f\t\n", fbRate)
	fmt.Fprintf(tw, "| daemon peak RSS (VmHWM) at N=%d: after intake / after SENT / after SETTLED / after the log copy\t %s / %s / %s / %s\t\n",
		n, mib(hwmIntake), mib(hwmSent), mib(hwmSettled), mib(hwm))
	var rssRatio float64
	if small != nil {
		fmt.Fprintf(tw, "| daemon peak RSS (VmHWM) at N/10=%d: after intake / after SENT / after SETTLED / after the log copy\t %s / %s / %s / %s\t\n", small.N,
			mib(small.HWMIntake), mib(small.HWMSent), mib(small.HWMSettled), mib(small.HWMEnd))
		fmt.Fprintf(tw, "| yktgw at N/10: intake / end to end / feedback\t %s / %s / %s\t\n", ms(small.Intake), ms(small.EndToEnd), ms(small.Feedback))
		rssRatio = float64(hwm) / float64(small.HWMEnd)
		fmt.Fprintf(tw, "| RSS ratio N : N/10\t %.2f×\t\n", rssRatio)
	}
	tw.Flush()

	note := ""
	if n != 1_000_000 {
		note = fmt.Sprintf(" (measured at N=%d; the targets are for 1,000,000)", n)
	}
	fmt.Fprintf(out, "\nTargets (DESIGN.md \"Performance targets\")%s:\n", note)
	tw = tabwriter.NewWriter(out, 2, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(tw, "| end to end ≤ 4× baseline (first bar)\t %.2f×\t %s\t\n", ratio, verdict(ratio <= 4))
	fmt.Fprintf(tw, "| end to end ≤ 2× baseline (aim)\t %.2f×\t %s\t\n", ratio, verdict(ratio <= 2))
	fmt.Fprintf(tw, "| peak RSS ≤ 256 MiB\t %s\t %s\t\n", mib(hwm), verdict(hwm <= 256<<20))
	if small != nil {
		fmt.Fprintf(tw, "| peak RSS within 1.5× of RSS at N/10\t %.2f×\t %s\t\n", rssRatio, verdict(rssRatio <= 1.5))
	}
	fmt.Fprintf(tw, "| feedback for all records parsed and reconciled ≤ 5 s\t %s\t %s\t\n", ms(median(fb)), verdict(median(fb) <= 5*time.Second))
	fmt.Fprintf(tw, "| crypto within 10%% of gmsm's own throughput\t not measured here\t go test -bench . ./crypto/\t\n")
	tw.Flush()
}
