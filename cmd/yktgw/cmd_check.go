package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"yktgw/banks"
	"yktgw/config"
)

// loadProfile loads and validates one bank profile and returns the bank code it
// declares and every problem found. A variable so tests can replace it.
var loadProfile = func(path string) (code string, err error) {
	p, err := banks.LoadProfile(path)
	if p != nil {
		code = p.Code
	}
	if err != nil {
		// LoadProfile already includes Validate's problems in its error.
		return code, err
	}
	return code, p.Validate()
}

func init() {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a config and every bank profile it names",
		Long: "Validates the config (every key, then that the files it names exist), its business-day\n" +
			"calendars and every bank profile it names. Prints one line per problem and exits 1 if\n" +
			"there is any; otherwise prints `ok: N banks, M subsidies`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cfgPath, cmd.OutOrStdout(), cmd.ErrOrStderr(), time.Now())
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}

func runCheck(path string, stdout, stderr io.Writer, now time.Time) error {
	probs, cfg := checkConfig(path, now, stderr)
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintln(stdout, p)
		}
		return &exitError{code: 1, err: fmt.Errorf("check: %d problem(s) in %s", len(probs), path)}
	}
	fmt.Fprintf(stdout, "ok: %d banks, %d subsidies\n", len(cfg.Banks), len(cfg.Subsidies))
	return nil
}

// checkConfig returns every problem of the config at path, one line each.
// Warnings (not problems) go to warn.
func checkConfig(path string, now time.Time, warn io.Writer) ([]string, *config.Config) {
	cfg, err := config.Load(path)
	if err != nil {
		return splitLines(err.Error()), nil
	}
	var probs []string
	var ve *config.ValidationError
	if err := cfg.Validate(); errors.As(err, &ve) {
		probs = append(probs, ve.Problems...)
	} else if err != nil {
		probs = append(probs, err.Error())
	}
	probs = append(probs, cfg.CheckFiles()...)

	var existing []string
	for _, f := range cfg.Calendar {
		if fileExists(f) {
			existing = append(existing, f)
		}
	}
	if cal, err := config.LoadCalendar(existing...); err != nil {
		probs = append(probs, "calendar: "+err.Error())
	} else if _, covered := cal.IsBusinessDay(now); !covered {
		fmt.Fprintf(warn, "warning: calendar: year %d is not covered; business days fall back to plain weekdays\n", now.Year())
	}

	for i, b := range cfg.Banks {
		if b.Profile == "" || !fileExists(b.Profile) {
			continue // already reported by Validate or CheckFiles
		}
		key := fmt.Sprintf("banks[%d].profile", i)
		code, err := loadProfile(b.Profile)
		if err != nil {
			for _, l := range splitLines(err.Error()) {
				probs = append(probs, key+": "+l)
			}
		}
		if code != "" && b.Code != "" && code != b.Code {
			probs = append(probs, fmt.Sprintf("banks[%d].code: %q but the profile %s declares code %q", i, b.Code, b.Profile, code))
		}
	}
	return probs, cfg
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
