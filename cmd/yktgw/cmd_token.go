package main

import (
	"context"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"yktgw/gateway"
	"yktgw/spool/sqlite"
)

// osActor names the person running an admin command, for the audit chain.
func osActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// openSpool loads a config and opens its spool read-write (admin commands).
func openSpool(ctx context.Context, cfgPath string) (*sqlite.Store, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return gateway.OpenStore(ctx, cfg)
}

func splitCSV(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func init() {
	tokenCmd := &cobra.Command{Use: "token", Short: "API tokens: create, list, revoke (only hashes are stored)"}
	var cfgPath, name, tenants, roles string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token; its secret is printed once, as the last line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			st, err := openSpool(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			secret, t, err := gateway.CreateToken(ctx, st, name, splitCSV(tenants), splitCSV(roles), osActor())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "token %s (%s) created: tenants=%s roles=%s\n", t.ID, t.Name, strings.Join(t.Tenants, ","), strings.Join(t.Roles, ","))
			fmt.Fprintln(out, "store this secret now; it is shown only once:")
			fmt.Fprintln(out, secret)
			return nil
		},
	}
	create.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	create.Flags().StringVar(&name, "name", "", "who the token is for")
	create.Flags().StringVar(&tenants, "tenants", "", "division codes it may act for, comma separated, or '*'")
	create.Flags().StringVar(&roles, "roles", "", "roles: submitter,viewer,operator,approver,admin")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			st, err := openSpool(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			ts, err := st.Tokens(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTENANTS\tROLES\tCREATED\tREVOKED")
			for _, t := range ts {
				rev := "-"
				if !t.RevokedAt.IsZero() {
					rev = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Tenants, ","), strings.Join(t.Roles, ","), t.CreatedAt.Format(time.RFC3339), rev)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			st, err := openSpool(ctx, cfgPath)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeToken(ctx, args[0], osActor()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	revoke.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	tokenCmd.AddCommand(create, list, revoke)
	rootCmd.AddCommand(tokenCmd)
}
