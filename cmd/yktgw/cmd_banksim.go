package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"yktgw/banks/sim"
	"yktgw/config"
	"yktgw/gateway"
)

func init() {
	var cfgPath, setupDir, setupBank string
	cmd := &cobra.Command{
		Use:   "banksim",
		Short: "Run the bank simulator (SFTP) from a config's banksim section",
		Long: `Runs the simulated paying bank named by banksim.bank: an SFTP server on
banksim.listen serving banksim.root, which opens, verifies and parses what the
gateway delivers and writes sealed return files. Stops on SIGINT/SIGTERM.
Its counters are kept in <root>/sim-stats.json.

--setup-keys DIR writes the whole throw-away key set the example config names
(SM2 parties gateway and bank-<code>, SSH host and client keys, known_hosts
line, passphrase, data key) into DIR, completing what is missing, and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if setupDir != "" {
				return runSetupKeys(setupDir, setupBank, cmd.OutOrStdout())
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := gateway.NewLogger(cfg.Log, os.Stderr)
			return runBanksim(ctx, cfg, log, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	cmd.Flags().StringVar(&setupDir, "setup-keys", "", "write a key set into this directory and exit")
	cmd.Flags().StringVar(&setupBank, "bank", sim.DefaultBank, "bank code of the key set --setup-keys writes")
	rootCmd.AddCommand(cmd)
}

// runBanksim runs the simulator until ctx ends.
func runBanksim(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	if cfg.Banksim.Bank == "" {
		return fmt.Errorf("banksim: the config's banksim.bank is not set")
	}
	sc, err := sim.FromConfig(cfg, log)
	if err != nil {
		return err
	}
	s, err := sim.New(sc)
	if err != nil {
		return err
	}
	addr, err := s.Start(ctx)
	if err != nil {
		_ = s.Close()
		return err
	}
	fmt.Fprintf(out, "banksim: bank %s listening on %s (root %s)\n", sc.Profile.Code, addr, sc.Root)
	<-ctx.Done()
	st := s.Stats()
	err = s.Close()
	fmt.Fprintf(out, "banksim: stopped: accepted=%d duplicates=%d rejected=%d returns=%d\n",
		st.Accepted, st.Duplicates, st.Rejected, st.ReturnsWritten)
	return err
}

// runSetupKeys writes the key set. The passphrase is the one already in
// DIR/passphrase, else YKT_KEY_PASSPHRASE, else a new random one.
func runSetupKeys(dir, bank string, out io.Writer) error {
	var pass []byte
	if _, err := os.Stat(filepath.Join(dir, sim.PassphraseFileName)); err != nil {
		if v := os.Getenv(config.PassphraseEnv); v != "" {
			pass = []byte(v)
		}
	}
	ks, err := sim.SetupKeysFor(dir, bank, pass)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "keys in %s\n", ks.Dir)
	fmt.Fprintf(out, "host key fingerprint: %s\n", ks.HostKeyFingerprint)
	fmt.Fprintf(out, "host key known_hosts line (%s): %s\n", ks.KnownHostsFile, ks.KnownHostsLine)
	return nil
}
