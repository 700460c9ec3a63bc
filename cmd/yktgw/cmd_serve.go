package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"yktgw/config"
	"yktgw/gateway"
)

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, fmt.Errorf("--config FILE required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func init() {
	var cfgPath string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway daemon: HTTP API, dispatcher, feedback pollers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			log := gateway.NewLogger(cfg.Log, os.Stderr)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			g, err := gateway.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer g.Close()
			return g.Serve(ctx, func(addr string) {
				fmt.Fprintf(cmd.OutOrStdout(), "yktgw: listening on %s (spool %s)\n", addr, cfg.Spool.Path)
			})
		},
	}
	serve.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	rootCmd.AddCommand(serve)
}
