package main

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
	"github.com/spf13/cobra"

	"yktgw/crypto"
)

// Key tooling: `yktgw keys gen|show|gen-data-key|add-data-key`. Each command
// is a thin call into package crypto; none ever prints key material.

func init() {
	var (
		genName, genOut, genPassFile string
		genDays                      int
	)
	gen := &cobra.Command{
		Use:   "gen --name N --out DIR",
		Short: "Make an SM2 key pair and a self-signed certificate: N.key.pem (encrypted), N.pub.pem, N.cert.pem",
		Long: `Writes DIR/N.key.pem (PKCS#8, encrypted with SM4 under the passphrase from
--passphrase-file or YKT_KEY_PASSPHRASE), DIR/N.pub.pem and a self-signed
DIR/N.cert.pem carrying a SubjectKeyIdentifier (for tests, the bank simulator
and banks without a CA). Refuses to overwrite existing files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if genName == "" || genOut == "" {
				return fmt.Errorf("keys gen: --name and --out are required")
			}
			if genDays <= 0 {
				return fmt.Errorf("keys gen: --days must be positive")
			}
			pass, err := crypto.ReadPassphrase(genPassFile)
			if err != nil {
				return err
			}
			if err := crypto.GenerateParty(genOut, genName, pass, time.Duration(genDays)*24*time.Hour); err != nil {
				return err
			}
			k, p, c := crypto.PartyFiles(genOut, genName)
			cert, err := crypto.ReadCertificate(c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "private key: %s (encrypted)\npublic key:  %s\ncertificate: %s\n", k, p, c)
			printCert(out, cert)
			return nil
		},
	}
	gen.Flags().StringVar(&genName, "name", "", "party name (file prefix and certificate CN)")
	gen.Flags().StringVar(&genOut, "out", "", "output directory")
	gen.Flags().IntVar(&genDays, "days", 365, "certificate validity in days")
	gen.Flags().StringVar(&genPassFile, "passphrase-file", "", "file holding the key passphrase (else $"+crypto.EnvPassphrase+")")

	show := &cobra.Command{
		Use:   "show FILE",
		Short: "Show a certificate (subject, serial, validity, SM3 fingerprint) or a public key; never a private key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return keysShow(cmd.OutOrStdout(), args[0], time.Now())
		},
	}

	var dkOut string
	genData := &cobra.Command{
		Use:   "gen-data-key --out FILE",
		Short: "Make a data-key file (SM4 field-encryption key + blind-index key), mode 0600",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dkOut == "" {
				return fmt.Errorf("keys gen-data-key: --out is required")
			}
			if err := crypto.GenerateDataKeyFile(dkOut); err != nil {
				return err
			}
			k, err := crypto.LoadDataKeyring(dkOut)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "data keys: %s (mode 0600), active key %s\n", dkOut, k.ActiveKeyID())
			return nil
		},
	}
	genData.Flags().StringVar(&dkOut, "out", "", "data-key file to create (never overwritten)")

	var dkFile string
	addData := &cobra.Command{
		Use:   "add-data-key --file FILE",
		Short: "Add a new active SM4 data key; old keys stay for reading, the blind-index key is unchanged",
		Long: `Adds a new SM4 data key to FILE and makes it the active one: new data is
encrypted under it, data under older keys stays readable. The blind-index key
is never changed. Restart (or reload) the daemon to pick it up. Re-encrypting
old rows under the new key (keys rotate-data-key) is not implemented yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dkFile == "" {
				return fmt.Errorf("keys add-data-key: --file is required")
			}
			id, err := crypto.AddDataKey(dkFile)
			if err != nil {
				return err
			}
			k, err := crypto.LoadDataKeyring(dkFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added data key %s (active); keys: %s\n", id, strings.Join(k.KeyIDs(), ", "))
			return nil
		},
	}
	addData.Flags().StringVar(&dkFile, "file", "", "existing data-key file")

	keysCmd.AddCommand(gen, show, genData, addData)
}

func printCert(out io.Writer, c *smx509.Certificate) {
	fmt.Fprintf(out, "subject:     %s\n", c.Subject.String())
	fmt.Fprintf(out, "issuer:      %s\n", c.Issuer.String())
	fmt.Fprintf(out, "serial:      %s\n", strings.ToUpper(c.SerialNumber.Text(16)))
	fmt.Fprintf(out, "not before:  %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "not after:   %s\n", c.NotAfter.UTC().Format(time.RFC3339))
	if len(c.SubjectKeyId) > 0 {
		fmt.Fprintf(out, "subject key id: %s\n", strings.ToUpper(hex.EncodeToString(c.SubjectKeyId)))
	}
	fmt.Fprintf(out, "SM3 fingerprint: %s\n", crypto.Fingerprint(c))
}

// keysShow prints what FILE holds. Private keys are recognised and refused.
func keysShow(out io.Writer, path string, now time.Time) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("keys show: %w", err)
	}
	b, _ := pem.Decode(data)
	if b != nil {
		switch b.Type {
		case "ENCRYPTED PRIVATE KEY":
			fmt.Fprintf(out, "%s: encrypted private key (PKCS#8); private keys are never shown\n", path)
			return nil
		case "PRIVATE KEY", "EC PRIVATE KEY":
			fmt.Fprintf(out, "%s: UNENCRYPTED private key; encrypt it (yktgw refuses to load it); never shown\n", path)
			return nil
		case "PUBLIC KEY":
			pub, err := crypto.LoadPublicKey(path)
			if err != nil {
				return err
			}
			sum := sm3.Sum(b.Bytes)
			fmt.Fprintf(out, "%s: SM2 public key\nSM3 of SubjectPublicKeyInfo: %s\n", path, strings.ToUpper(hex.EncodeToString(sum[:])))
			_ = pub
			return nil
		}
	}
	c, err := crypto.ParseCertificate(data)
	if err != nil {
		return fmt.Errorf("keys show: %s: %w", path, err)
	}
	printCert(out, c)
	days := crypto.CertDaysLeft(c, now)
	if err := crypto.CheckValidity(c, now); err != nil {
		fmt.Fprintf(out, "status:      INVALID (%v)\n", err)
	} else {
		fmt.Fprintf(out, "status:      valid, %.0f days left\n", days)
	}
	return nil
}
