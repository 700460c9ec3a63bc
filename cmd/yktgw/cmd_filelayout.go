package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/config"
)

// resolveProfile loads a bank profile given as a file path (or a directory
// holding profile.yaml), or as a bank code of the config given with --config.
func resolveProfile(profile, cfgPath string) (*banks.Profile, error) {
	if profile == "" {
		return nil, errors.New("--profile required (a profile file, or a bank code with --config)")
	}
	path := profile
	if cfgPath != "" {
		if _, err := os.Stat(profile); err != nil {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return nil, err
			}
			b, ok := cfg.Bank(profile)
			if !ok {
				return nil, fmt.Errorf("bank %q is not in %s", profile, cfgPath)
			}
			path = b.Profile
		}
	}
	return banks.LoadProfile(path)
}

func init() {
	var profile, cfgPath, batchPath, outPath string
	render := &cobra.Command{
		Use:   "render --profile P --batch B.json [--out F]",
		Short: "Render a batch to a bank's outbound file layout",
		Long: "Reads B.json ({\"batch\": {...}, \"records\": [...]}, see banks/format/LAYOUTS.md) and writes the\n" +
			"bank file in the profile's outbound layout to --out (written to a temporary name, then\n" +
			"renamed) or to stdout. A record the layout cannot represent (too long in bytes, a character\n" +
			"the encoding lacks, a separator inside a value) is refused with its record and field, and no\n" +
			"file is written.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := resolveProfile(profile, cfgPath)
			if err != nil {
				return err
			}
			in, err := os.Open(batchPath)
			if err != nil {
				return err
			}
			defer in.Close()
			b, recs, err := format.ReadBatchJSON(bufio.NewReaderSize(in, 64<<10))
			if err != nil {
				return err
			}
			if outPath == "" {
				return p.Outbound.Render(cmd.OutOrStdout(), b, recs)
			}
			return writeFileAtomic(outPath, func(w io.Writer) error { return p.Outbound.Render(w, b, recs) })
		},
	}
	render.Flags().StringVar(&profile, "profile", "", "bank profile file (or bank code with --config)")
	render.Flags().StringVar(&cfgPath, "config", "", "config naming the bank profiles (optional)")
	render.Flags().StringVar(&batchPath, "batch", "", "batch JSON file")
	render.Flags().StringVar(&outPath, "out", "", "output file (default stdout)")
	_ = render.MarkFlagRequired("batch")

	var pProfile, pCfg string
	var outbound, showPII bool
	parse := &cobra.Command{
		Use:   "parse --profile P FILE",
		Short: "Parse a bank return file: JSON lines of results, then a summary line",
		Long: "Parses FILE with the profile's return layout (or, with --outbound, its outbound layout) and\n" +
			"prints one JSON object per result as it is read, with the normalized reason and class from the\n" +
			"profile's code map, then {\"summary\": {...}}. A malformed file is read to its end and every\n" +
			"problem is printed to stderr with its line number (record element index for XML); then the\n" +
			"exit status is 2 and no summary line is printed: nothing of such a file may be applied.\n" +
			"ID and account numbers are masked unless --show-pii is given.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := resolveProfile(pProfile, pCfg)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return runFileParse(p, f, outbound, showPII, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	parse.Flags().StringVar(&pProfile, "profile", "", "bank profile file (or bank code with --config)")
	parse.Flags().StringVar(&pCfg, "config", "", "config naming the bank profiles (optional)")
	parse.Flags().BoolVar(&outbound, "outbound", false, "parse an outbound (报盘) file instead of a return file")
	parse.Flags().BoolVar(&showPII, "show-pii", false, "print ID and account numbers unmasked")
	fileCmd.AddCommand(render, parse)
}

type parsedResult struct {
	format.Result
	Reason      banks.Reason      `json:"reason"`
	Class       banks.ReasonClass `json:"class"`
	ReasonLabel string            `json:"reason_zh"`
}

func runFileParse(p *banks.Profile, r io.Reader, outbound, showPII bool, stdout, stderr io.Writer) error {
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var sum format.Summary
	var err error
	if outbound {
		sum, err = p.Outbound.ParseRecords(r, func(rec format.Record) error {
			if !showPII {
				rec.Account, rec.IDNumber = maskDigits(rec.Account, 4, 4), maskDigits(rec.IDNumber, 4, 4)
			}
			return enc.Encode(rec)
		})
	} else {
		sum, err = p.Return.Parse(r, func(res format.Result) error {
			if !showPII {
				res.Account, res.IDNumber = maskDigits(res.Account, 4, 4), maskDigits(res.IDNumber, 4, 4)
			}
			reason := p.Classify(res.Code, res.Message)
			return enc.Encode(parsedResult{Result: res, Reason: reason, Class: reason.Class(), ReasonLabel: reason.LabelZH()})
		})
	}
	if ferr := w.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	var pe format.ParseErrors
	if errors.As(err, &pe) {
		for _, e := range pe {
			fmt.Fprintln(stderr, e.Error())
		}
		return &exitError{2, fmt.Errorf("%d problem(s): the file must not be applied", len(pe))}
	}
	if err != nil {
		return err
	}
	if err := enc.Encode(map[string]format.Summary{"summary": sum}); err != nil {
		return err
	}
	return w.Flush()
}

// maskDigits keeps the first and last n characters: 2101**********123X.
func maskDigits(s string, head, tail int) string {
	if len(s) <= head+tail {
		return s
	}
	b := []byte(s)
	for i := head; i < len(b)-tail; i++ {
		b[i] = '*'
	}
	return string(b)
}

// writeFileAtomic writes through a temporary file in the target directory and
// renames it, so nobody picks up half a bank file.
func writeFileAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := fill(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
