package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"yktgw/gateway"
	"yktgw/spool"
)

func init() {
	hooksCmd := &cobra.Command{Use: "webhooks", Short: "The webhook outbox: what the platform has and has not received"}
	var cfgPath, state string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List webhook outbox items (--state failing: those that keep failing and raised an alarm)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var states []spool.OutboxState
			switch s := strings.ToUpper(state); s {
			case "", "ALL":
			case "UNDELIVERED":
				states = []spool.OutboxState{spool.OutboxPending, spool.OutboxFailing}
			case string(spool.OutboxPending), string(spool.OutboxFailing), string(spool.OutboxDelivered):
				states = []spool.OutboxState{spool.OutboxState(s)}
			default:
				return fmt.Errorf("--state %q: want failing, pending, delivered, undelivered or all", state)
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			ctx := context.Background()
			st, err := gateway.OpenSpoolReadOnly(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			items, err := gateway.WebhookOutbox(ctx, st, states, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tEVENT\tTYPE\tBATCH\tPAGE\tURL\tATTEMPTS\tNEXT\tLAST ERROR")
			for _, it := range items {
				next := "-"
				if it.State != spool.OutboxDelivered && !it.NextAttempt.IsZero() {
					next = it.NextAttempt.UTC().Format(time.RFC3339)
				}
				page := "-"
				if it.Event.Kind == spool.EventBatchResults {
					page = fmt.Sprintf("%d/%d", it.Event.Page, it.Event.Pages)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.State, it.Event.EventID, it.Event.Kind, it.Event.BatchID,
					page, it.URL, it.Attempts, next, it.LastError)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d items\n", len(items))
			return nil
		},
	}
	list.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	list.Flags().StringVar(&state, "state", "undelivered", "failing, pending, delivered, undelivered or all")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many items")
	hooksCmd.AddCommand(list)
	rootCmd.AddCommand(hooksCmd)
}
