package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Parent commands; each area adds its subcommands from its own file in init().
var (
	rootCmd = &cobra.Command{
		Use:           "yktgw",
		Short:         "Bank gateway of the subsidy one-card (一卡通) platform",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	keysCmd = &cobra.Command{Use: "keys", Short: "SM2 keys, certificates and data keys"}
	fileCmd = &cobra.Command{Use: "file", Short: "Bank files by hand: render, parse, sign, verify, seal, open"}
)

func init() {
	rootCmd.AddCommand(keysCmd, fileCmd)
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func execute(args []string) int {
	rootCmd.SetArgs(args)
	if err := rootCmd.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, "yktgw:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "yktgw:", err)
		return 1
	}
	return 0
}
