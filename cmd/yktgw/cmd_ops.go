package main

// Ops commands against a running daemon: batch submit|list|show|results,
// dead list, replay, replay approve, replay list.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"yktgw/gateway"
)

// apiFlags are how an ops command reaches the daemon.
type apiFlags struct {
	url, token, tokenFile string
}

func (a *apiFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.url, "url", "", "daemon API base URL (default $YKT_URL or http://127.0.0.1:8470)")
	cmd.Flags().StringVar(&a.tokenFile, "token-file", "", "file holding the API token (default $YKT_TOKEN)")
}

func (a *apiFlags) client() (*gateway.Client, error) {
	u := a.url
	if u == "" {
		u = os.Getenv("YKT_URL")
	}
	if u == "" {
		u = "http://127.0.0.1:8470"
	}
	tok := os.Getenv("YKT_TOKEN")
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, err
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return nil, errors.New("an API token is required: --token-file FILE or $YKT_TOKEN")
	}
	return &gateway.Client{URL: u, Token: tok}, nil
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// yuan formats fen as yuan with two decimals, from the integer (no floats).
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func init() {
	batchCmd := &cobra.Command{Use: "batch", Short: "Batches on a running daemon: submit, list, show, results"}

	var sub apiFlags
	var ndjsonFlag bool
	submit := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a batch file (JSON, or NDJSON for .ndjson/--ndjson) with a progress bar",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sub.client()
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, _ := f.Stat()
			bar := progressbar.NewOptions64(st.Size(), progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionShowBytes(true),
				progressbar.OptionSetDescription("uploading"), progressbar.OptionThrottle(100*time.Millisecond))
			r := io.TeeReader(f, bar)
			nd := ndjsonFlag || strings.HasSuffix(args[0], ".ndjson")
			status, v, err := c.Submit(context.Background(), r, nd)
			bar.Finish()
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			what := "accepted"
			if status == 200 {
				what = "already accepted (same content)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "batch %s %s: state=%s records=%d total=%s yuan warnings=%d\n", v.BatchID, what, v.State, v.TotalCount, yuan(v.TotalFen), len(v.Warnings))
			for _, w := range v.Warnings {
				fmt.Fprintf(cmd.OutOrStdout(), "  warning seq %d %s %s: %s\n", w.Seq, w.Field, w.Code, w.Message)
			}
			return nil
		},
	}
	sub.add(submit)
	submit.Flags().BoolVar(&ndjsonFlag, "ndjson", false, "the file is NDJSON (header line, then a record a line)")

	var lst apiFlags
	var state string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List batches, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lst.client()
			if err != nil {
				return err
			}
			bs, err := c.Batches(context.Background(), state, limit)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, b := range bs {
				rows = append(rows, []string{b.BatchID, b.Tenant, b.Bank, b.Subsidy.Code, b.Period, string(b.State), strconv.Itoa(b.TotalCount), yuan(b.TotalFen), b.CreatedAt.Format(time.RFC3339)})
			}
			return table(cmd.OutOrStdout(), "BATCH\tTENANT\tBANK\tSUBSIDY\tPERIOD\tSTATE\tRECORDS\tYUAN\tCREATED", rows)
		},
	}
	lst.add(list)
	list.Flags().StringVar(&state, "state", "", "only this state")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many")

	var shw apiFlags
	show := &cobra.Command{
		Use:   "show BATCH_ID",
		Short: "Show a batch with its records per state and its deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := shw.client()
			if err != nil {
				return err
			}
			b, err := c.Batch(context.Background(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "batch %s  tenant %s  bank %s  subsidy %s %s  period %s\nstate %s  records %d  total %s yuan  created %s\n",
				b.BatchID, b.Tenant, b.Bank, b.Subsidy.Code, b.Subsidy.Name, b.Period, b.State, b.TotalCount, yuan(b.TotalFen), b.CreatedAt.Format(time.RFC3339))
			if b.ReissueOf != "" {
				fmt.Fprintf(out, "reissues FAILED records of %s\n", b.ReissueOf)
			}
			var rows [][]string
			for _, s := range b.Records {
				rows = append(rows, []string{s.Status, strconv.Itoa(s.Count), yuan(s.Fen)})
			}
			if err := table(out, "STATUS\tRECORDS\tYUAN", rows); err != nil {
				return err
			}
			for _, w := range b.Warnings {
				fmt.Fprintf(out, "warning seq %d %s %s: %s\n", w.Seq, w.Field, w.Code, w.Message)
			}
			// Deliveries need an ops role; show them when the token has one.
			if ds, err := c.Deliveries(context.Background(), ""); err == nil {
				rows = rows[:0]
				for _, d := range ds {
					if d.BatchID == b.BatchID {
						rows = append(rows, []string{strconv.FormatInt(d.ID, 10), d.BankBatchNo, d.State, strconv.Itoa(d.FirstSeq) + "-" + strconv.Itoa(d.LastSeq), yuan(d.TotalFen), strconv.Itoa(d.Attempts), d.LastError})
					}
				}
				fmt.Fprintln(out)
				return table(out, "DELIVERY\tBANK_BATCH_NO\tSTATE\tSEQS\tYUAN\tATTEMPTS\tLAST_ERROR", rows)
			}
			return nil
		},
	}
	shw.add(show)

	var res apiFlags
	var rstatus string
	results := &cobra.Command{
		Use:   "results BATCH_ID",
		Short: "Per-record results (personal data masked), all pages",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := res.client()
			if err != nil {
				return err
			}
			var rows [][]string
			cursor := ""
			for {
				p, err := c.Results(context.Background(), args[0], rstatus, cursor, 1000)
				if err != nil {
					return err
				}
				for _, it := range p.Items {
					rows = append(rows, []string{strconv.Itoa(it.Seq), it.Status, yuan(it.AmountFen), it.Name, it.IDNumber, it.Account, it.ReasonLabel, it.BankCode, it.BankMessage})
				}
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			return table(cmd.OutOrStdout(), "SEQ\tSTATUS\tYUAN\tNAME\tID_NUMBER\tACCOUNT\tREASON\tBANK_CODE\tBANK_MESSAGE", rows)
		},
	}
	res.add(results)
	results.Flags().StringVar(&rstatus, "status", "", "only this status (PAID, FAILED, ...)")
	batchCmd.AddCommand(submit, list, show, results)

	deadCmd := &cobra.Command{Use: "dead", Short: "Deliveries that gave up (DEAD): ops decide"}
	var dl apiFlags
	deadList := &cobra.Command{
		Use:   "list",
		Short: "List DEAD deliveries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dl.client()
			if err != nil {
				return err
			}
			ds, err := c.Deliveries(context.Background(), "DEAD")
			if err != nil {
				return err
			}
			var rows [][]string
			for _, d := range ds {
				rows = append(rows, []string{strconv.FormatInt(d.ID, 10), d.BatchID, d.Bank, d.BankBatchNo, strconv.Itoa(d.Count), yuan(d.TotalFen), strconv.Itoa(d.Attempts), d.LastError})
			}
			return table(cmd.OutOrStdout(), "DELIVERY\tBATCH\tBANK\tBANK_BATCH_NO\tRECORDS\tYUAN\tATTEMPTS\tLAST_ERROR", rows)
		},
	}
	dl.add(deadList)
	deadCmd.AddCommand(deadList)

	var rp apiFlags
	var reason string
	replayCmd := &cobra.Command{
		Use:   "replay DELIVERY_ID --reason TEXT",
		Short: "Replay a DEAD delivery: the bank side is asked first; above the threshold an approver must approve",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("delivery id %q: %w", args[0], err)
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required")
			}
			c, err := rp.client()
			if err != nil {
				return err
			}
			status, v, err := c.Replay(context.Background(), id, reason)
			if err != nil {
				return err
			}
			if status == 202 {
				fmt.Fprintf(cmd.OutOrStdout(), "replay %d of %s (%s yuan) waits for an approver: yktgw replay approve %d\n", v.ID, v.BankBatchNo, yuan(v.TotalFen), v.ID)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replay %d of %s: %s\n", v.ID, v.BankBatchNo, v.Outcome)
			return nil
		},
	}
	rp.add(replayCmd)
	replayCmd.Flags().StringVar(&reason, "reason", "", "why (kept in the audit chain)")

	var ap apiFlags
	approve := &cobra.Command{
		Use:   "approve REPLAY_ID",
		Short: "Approve another person's replay request (role approver)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("replay id %q: %w", args[0], err)
			}
			c, err := ap.client()
			if err != nil {
				return err
			}
			v, err := c.Approve(context.Background(), id)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replay %d of %s approved: %s\n", v.ID, v.BankBatchNo, v.Outcome)
			return nil
		},
	}
	ap.add(approve)

	var rl apiFlags
	var rlState string
	replayList := &cobra.Command{
		Use:   "list",
		Short: "List replay requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rl.client()
			if err != nil {
				return err
			}
			rs, err := c.Replays(context.Background(), rlState)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, r := range rs {
				rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.BankBatchNo, r.State, yuan(r.TotalFen), r.RequestedBy, r.ApprovedBy, r.Reason, r.Outcome})
			}
			return table(cmd.OutOrStdout(), "REPLAY\tBANK_BATCH_NO\tSTATE\tYUAN\tREQUESTED_BY\tAPPROVED_BY\tREASON\tOUTCOME", rows)
		},
	}
	rl.add(replayList)
	replayList.Flags().StringVar(&rlState, "state", "", "only this state (PENDING_APPROVAL, ...)")
	replayCmd.AddCommand(approve, replayList)

	rootCmd.AddCommand(batchCmd, deadCmd, replayCmd)
}
