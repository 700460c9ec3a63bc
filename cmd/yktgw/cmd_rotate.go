package main

import (
	"context"
	"fmt"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"yktgw/crypto"
	"yktgw/gateway"
)

func init() {
	var cfgPath string
	var noNewKey bool
	cmd := &cobra.Command{
		Use:   "rotate-data-key --config FILE",
		Short: "Add a new active data key and re-encrypt every personal field under it, online",
		Long: `rotate-data-key adds a new active key to the config's data-key file (unless --no-new-key)
and re-encrypts, in small transactions, every name, ID number and account in the spool that
is not yet under the active key. The daemon may keep running: it encrypts new data under the
new key once it sees the file change, and reloads the file when it meets a ciphertext under a
key it has not loaded. Old keys stay in the file. Blind indexes do not change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			ctx := context.Background()
			st, err := gateway.OpenStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			if !noNewKey {
				id, err := crypto.AddDataKey(cfg.Keys.DataKeyFile)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "new active data key %s\n", id)
			}
			bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionSetDescription("re-encrypting records"),
				progressbar.OptionShowCount(), progressbar.OptionSpinnerType(14))
			res, err := gateway.RotateDataKeys(ctx, st, cfg.Keys.DataKeyFile, func(read, _ int) { bar.Add(read) })
			bar.Finish()
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotated: %d records read, %d re-encrypted under %s\n", res.Records, res.Reencrypted, res.ActiveKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	cmd.Flags().BoolVar(&noNewKey, "no-new-key", false, "do not add a key; finish re-encrypting under the current active key")
	keysCmd.AddCommand(cmd)
}
