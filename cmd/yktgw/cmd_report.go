package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"yktgw/crypto"
	"yktgw/gateway"
	"yktgw/gateway/report"
	"yktgw/spool"
)

// reportOpts are the flags of `yktgw report`.
type reportOpts struct {
	cfgPath, subsidy, period, tenant, format, out, batch string
	acrossPeriods, full, quiet                           bool
}

func init() {
	var o reportOpts
	cmd := &cobra.Command{
		Use:   "report KIND",
		Short: "Check lists before payment and return lists as xlsx or CSV, read from the spool directly (admin tool)",
		Long: `Writes a check list over a tenant, subsidy and period, or the return list (退回清单) of a batch:

  sanwu             "三无" records by the rule set in config reports.sanwu
  duplicates        one person (ID number) in several records (--across-periods: any period)
  shared-accounts   one account used by several ID numbers
  cross-department  one person with different accounts under subsidies of different departments
  return-list       the FAILED records of --batch with reason, class, amount and bank message

It opens the spool read-only (safe beside a running daemon) with the data key of the
config. Names, ID and account numbers are masked unless --full is given; the file is
written with mode 0600 through a temporary name. --tenant is a division code and
covers its sub-divisions (default: every tenant).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.Context(), args[0], o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfgPath, "config", "", "config file (YAML)")
	f.StringVar(&o.subsidy, "subsidy", "", "subsidy code (required except for cross-department and return-list)")
	f.StringVar(&o.period, "period", "", "period, YYYY or YYYY-MM (required except for cross-department, return-list and --across-periods)")
	f.StringVar(&o.tenant, "tenant", "", "division code; covers its sub-divisions (default: every tenant)")
	f.StringVar(&o.format, "format", "", "xlsx or csv (default: from --out's extension, else xlsx)")
	f.StringVar(&o.out, "out", "", "file to write")
	f.StringVar(&o.batch, "batch", "", "batch id (return-list)")
	f.BoolVar(&o.acrossPeriods, "across-periods", false, "duplicates: a person in any period of the subsidy")
	f.BoolVar(&o.full, "full", false, "names, ID and account numbers in clear (default masked)")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	rootCmd.AddCommand(cmd)
}

func runReport(ctx context.Context, kindArg string, o reportOpts, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var problems []string
	if o.cfgPath == "" {
		problems = append(problems, "--config is required")
	}
	if o.out == "" {
		problems = append(problems, "--out is required")
	}
	format := o.format
	if format == "" && strings.EqualFold(filepath.Ext(o.out), ".csv") {
		format = "csv"
	}
	fmtv, err := report.ParseFormat(format)
	if err != nil {
		problems = append(problems, err.Error())
	}
	returnList := kindArg == string(report.KindReturnList)
	var kind report.Kind
	if returnList {
		if o.batch == "" {
			problems = append(problems, "return-list needs --batch")
		}
	} else {
		if kind, err = report.ParseKind(kindArg); err != nil {
			problems = append(problems, fmt.Sprintf("unknown report %q (want %s, %s, %s, %s or return-list)", kindArg,
				report.KindSanwu, report.KindDuplicates, report.KindSharedAccounts, report.KindCrossDepartment))
		}
		if kind != report.KindCrossDepartment && kind != "" {
			if o.subsidy == "" {
				problems = append(problems, "--subsidy is required")
			}
			if o.period == "" && !(kind == report.KindDuplicates && o.acrossPeriods) {
				problems = append(problems, "--period is required")
			}
		}
		if o.tenant != "" && !gateway.ValidDivision(o.tenant) {
			problems = append(problems, fmt.Sprintf("--tenant %q is not a division code (6, 9 or 12 digits)", o.tenant))
		}
	}
	if len(problems) > 0 {
		return &exitError{2, errors.New("report: " + strings.Join(problems, "; "))}
	}
	cfg, err := loadConfig(o.cfgPath)
	if err != nil {
		return err
	}
	if o.subsidy != "" {
		if _, ok := cfg.Subsidy(o.subsidy); !ok {
			return &exitError{2, fmt.Errorf("report: subsidy %q is not in the config", o.subsidy)}
		}
	}
	ring, err := crypto.LoadDataKeyring(cfg.Keys.DataKeyFile)
	if err != nil {
		return fmt.Errorf("report: data keys: %w", err)
	}
	st, err := gateway.OpenSpoolReadOnly(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := gateway.NewReportBuilder(cfg, st, ring)
	if err != nil {
		return err
	}

	total := int64(-1) // unknown: a spinner with the count
	title := string(kind)
	if returnList {
		title = "return-list " + o.batch
		if _, err := st.Batch(ctx, o.batch); err != nil {
			if errors.Is(err, spool.ErrNotFound) {
				return fmt.Errorf("report: no batch %q", o.batch)
			}
			return err
		}
		counts, err := st.RecordCounts(ctx, o.batch)
		if err != nil {
			return err
		}
		total = 0
		for _, c := range counts {
			if c.State == spool.RecordFailed {
				total = int64(c.Count)
			}
		}
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(title),
		progressbar.OptionShowCount(), progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetVisibility(!o.quiet))
	progress := func(n int) { bar.Set(n) }

	var sum report.Summary
	err = writeAtomic(o.out, 0o600, func(w io.Writer) error {
		var err error
		if returnList {
			sum, err = b.ReturnList(ctx, o.batch, o.full, fmtv, w, progress)
			return err
		}
		scope := report.Scope{Subsidy: o.subsidy, Period: o.period}
		if o.tenant != "" {
			scope.Tenants = []string{gateway.DivisionPrefix(o.tenant)}
		}
		sum, err = b.Write(ctx, report.Request{Kind: kind, Scope: scope, AcrossPeriods: o.acrossPeriods, Full: o.full, Format: fmtv, Progress: progress}, w)
		return err
	})
	bar.Finish()
	if !o.quiet {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	view := "masked"
	if o.full {
		view = "in clear"
	}
	fmt.Fprintf(stderr, "report: %s: %d rows, %d groups, personal data %s -> %s\n", title, sum.Rows, sum.Groups, view, o.out)
	return nil
}
