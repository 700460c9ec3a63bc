package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"yktgw/gateway/demo"
)

func init() {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole money path in one process: bank simulator over SFTP, gateway on a temporary SQLite spool",
		Long: `demo generates a key set, starts the bank simulator on a real SFTP port and the gateway
on a temporary SQLite spool, submits a generated batch through the real HTTP API, lets the
gateway render, sign, seal and upload it, waits for the bank's sealed return file, applies
it and reconciles the spool against the bank's own counts. It ends with one line:
demo: records=N paid=P failed=F unknown=0 paid_fen=X failed_fen=Y reconciled=true`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Progress = cmd.ErrOrStderr()
			if o.Dir != "" {
				if err := os.MkdirAll(o.Dir, 0o700); err != nil {
					return err
				}
			}
			r, err := demo.Run(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "demo: %d deliveries, bank accepted %d files (%d duplicates), %.1fs\n", r.Deliveries, r.SimAccepted, r.SimDuplicates, r.Elapsed.Seconds())
			fmt.Fprintln(cmd.OutOrStdout(), r.Line())
			if !r.Reconciled {
				return &exitError{code: 1, err: fmt.Errorf("not reconciled: %s", r.Why)}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&o.Records, "records", 10000, "records in the generated batch")
	cmd.Flags().Float64Var(&o.FailRate, "fail-rate", 0.05, "share of records the simulated bank fails (0..1)")
	cmd.Flags().Int64Var(&o.Seed, "seed", 1, "seed of the generated batch and the bank's outcomes")
	cmd.Flags().StringVar(&o.Channel, "channel", "sftp", "channel of the simulated bank: "+strings.Join(demo.Kinds(), "|"))
	cmd.Flags().StringVar(&o.Root, "root", ".", "repository root (bank profiles under testdata/banks, calendar under config/calendar)")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "work directory to keep (default: a temporary one, removed)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 0, "give up after this long (default 10m)")
	rootCmd.AddCommand(cmd)
}
