package main

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/emmansun/gmsm/smx509"
	"github.com/spf13/cobra"

	"yktgw/crypto"
)

// `yktgw file sign|verify|seal|open`: what a bank ops team or an auditor runs
// by hand. Exit status: 0 ok, 2 the data failed a cryptographic check
// (tampered, not for us, wrong signer, bad signature, expired certificate,
// too large), 1 anything else (usage, files, passphrase).

// cryptoExit maps a failed cryptographic check to exit status 2.
func cryptoExit(err error) error {
	for _, s := range []error{crypto.ErrTampered, crypto.ErrNotRecipient, crypto.ErrBadSignature,
		crypto.ErrWrongSigner, crypto.ErrCertExpired, crypto.ErrTooLarge} {
		if errors.Is(err, s) {
			return &exitError{code: 2, err: err}
		}
	}
	return err
}

// writeAtomic writes what fill produces to path via a temporary file in the
// same directory and a rename, so a reader never sees half a file.
func writeAtomic(path string, perm os.FileMode, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := fill(tmp); err != nil {
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

// siblingCert is N.cert.pem next to N.key.pem (the layout keys gen writes).
func siblingCert(keyPath string) string {
	if strings.HasSuffix(keyPath, ".key.pem") {
		return strings.TrimSuffix(keyPath, ".key.pem") + ".cert.pem"
	}
	return ""
}

// loadParty loads our key (encrypted, passphrase from file or environment)
// and certificate (--cert, else the sibling of the key file).
func loadParty(keyPath, certPath, passFile string, signerID string) (crypto.Party, error) {
	if certPath == "" {
		certPath = siblingCert(keyPath)
		if certPath == "" {
			return crypto.Party{}, fmt.Errorf("give --cert for key %s (no N.cert.pem beside it)", keyPath)
		}
	}
	pass, err := crypto.ReadPassphrase(passFile)
	if err != nil {
		return crypto.Party{}, err
	}
	key, err := crypto.LoadPrivateKey(keyPath, pass)
	clear(pass)
	if err != nil {
		return crypto.Party{}, err
	}
	cert, err := crypto.LoadCertificate(certPath)
	if err != nil {
		return crypto.Party{}, err
	}
	if !crypto.KeyMatchesCert(key, cert) {
		return crypto.Party{}, fmt.Errorf("key %s does not belong to certificate %s", keyPath, certPath)
	}
	return crypto.Party{Key: key, Cert: cert, SignerID: []byte(signerID)}, nil
}

// isRawSM2Signature tells a raw ASN.1 SM2 signature (SEQUENCE of two
// INTEGERs) from a PKCS#7 ContentInfo (SEQUENCE starting with an OID).
func isRawSM2Signature(sig []byte) bool {
	var rs struct{ R, S asn1.RawValue }
	rest, err := asn1.Unmarshal(sig, &rs)
	return err == nil && len(rest) == 0 && rs.R.Tag == asn1.TagInteger && rs.S.Tag == asn1.TagInteger
}

func init() {
	var signKey, signIn, signOut, signPass, signID, signFormat, signCert string
	sign := &cobra.Command{
		Use:   "sign --key K --in F --out F.sig",
		Short: "Sign a file with SM2/SM3 (raw ASN.1 signature as openssl dgst -sm3 -sign makes, or PKCS#7 detached)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if signKey == "" || signIn == "" || signOut == "" {
				return fmt.Errorf("file sign: --key, --in and --out are required")
			}
			pass, err := crypto.ReadPassphrase(signPass)
			if err != nil {
				return err
			}
			key, err := crypto.LoadPrivateKey(signKey, pass)
			if err != nil {
				return err
			}
			var sig []byte
			switch signFormat {
			case "raw":
				f, err := os.Open(signIn)
				if err != nil {
					return fmt.Errorf("file sign: %w", err)
				}
				sig, err = crypto.SignReader(key, []byte(signID), f)
				f.Close()
				if err != nil {
					return err
				}
			case "pkcs7":
				if signCert == "" {
					signCert = siblingCert(signKey)
				}
				cert, err := crypto.LoadCertificate(signCert)
				if err != nil {
					return err
				}
				content, err := os.ReadFile(signIn)
				if err != nil {
					return fmt.Errorf("file sign: %w", err)
				}
				if sig, err = crypto.SignPKCS7(content, key, cert, []byte(signID), true); err != nil {
					return err
				}
			default:
				return fmt.Errorf("file sign: --format must be raw or pkcs7")
			}
			if err := writeAtomic(signOut, 0o644, func(w io.Writer) error { _, err := w.Write(sig); return err }); err != nil {
				return fmt.Errorf("file sign: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s -> %s (%s, SM2/SM3, signer id %q)\n", signIn, signOut, signFormat, orDefaultID(signID))
			return nil
		},
	}
	sign.Flags().StringVar(&signKey, "key", "", "our encrypted private key (PEM)")
	sign.Flags().StringVar(&signIn, "in", "", "file to sign")
	sign.Flags().StringVar(&signOut, "out", "", "signature file to write")
	sign.Flags().StringVar(&signPass, "passphrase-file", "", "file holding the key passphrase (else $"+crypto.EnvPassphrase+")")
	sign.Flags().StringVar(&signID, "signer-id", crypto.DefaultSignerID, "SM2 signer ID")
	sign.Flags().StringVar(&signFormat, "format", "raw", "raw (ASN.1 r,s; OpenSSL compatible) or pkcs7 (detached SignedData)")
	sign.Flags().StringVar(&signCert, "cert", "", "our certificate, for --format pkcs7 (default: N.cert.pem beside N.key.pem)")

	var verCert, verPub, verIn, verSig, verID string
	verify := &cobra.Command{
		Use:   "verify --cert C --in F --sig F.sig",
		Short: "Verify a raw SM2 or PKCS#7 detached signature against a pinned certificate (or --pub key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (verCert == "") == (verPub == "") || verIn == "" || verSig == "" {
				return fmt.Errorf("file verify: --in, --sig and one of --cert or --pub are required")
			}
			sig, err := os.ReadFile(verSig)
			if err != nil {
				return fmt.Errorf("file verify: %w", err)
			}
			var who string
			if verCert != "" {
				cert, err := crypto.LoadCertificate(verCert)
				if err != nil {
					return cryptoExit(err)
				}
				who = fmt.Sprintf("%s (SM3 fingerprint %s)", cert.Subject.String(), crypto.Fingerprint(cert))
				if !isRawSM2Signature(sig) {
					content, err := os.ReadFile(verIn)
					if err != nil {
						return fmt.Errorf("file verify: %w", err)
					}
					if _, err := crypto.VerifyPKCS7(sig, content, cert, []byte(verID)); err != nil {
						return cryptoExit(err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "verified OK: %s signed by %s (PKCS#7)\n", verIn, who)
					return nil
				}
				if err := verifyRawFile(cert, verIn, verID, sig); err != nil {
					return cryptoExit(err)
				}
			} else {
				pub, err := crypto.LoadPublicKey(verPub)
				if err != nil {
					return err
				}
				who = "the key in " + verPub
				f, err := os.Open(verIn)
				if err != nil {
					return fmt.Errorf("file verify: %w", err)
				}
				defer f.Close()
				if err := crypto.VerifyReader(pub, []byte(verID), f, sig); err != nil {
					return cryptoExit(err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verified OK: %s signed by %s\n", verIn, who)
			return nil
		},
	}
	verify.Flags().StringVar(&verCert, "cert", "", "pinned signer certificate (expiry is checked)")
	verify.Flags().StringVar(&verPub, "pub", "", "signer public key PEM, instead of --cert")
	verify.Flags().StringVar(&verIn, "in", "", "signed file")
	verify.Flags().StringVar(&verSig, "sig", "", "signature file")
	verify.Flags().StringVar(&verID, "signer-id", crypto.DefaultSignerID, "SM2 signer ID")

	var (
		sealKey, sealCert, sealIn, sealOut, sealPass, sealID, sealCipher string
		sealTo                                                           []string
		sealCFCA                                                         bool
		sealMax                                                          int64
	)
	seal := &cobra.Command{
		Use:   "seal --key OURKEY --to BANKCERT --in F --out F.p7",
		Short: "Sign (PKCS#7, SM2/SM3) then seal (GB/T 35275 envelope, SM4) a file for one or more recipients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sealKey == "" || len(sealTo) == 0 || sealIn == "" || sealOut == "" {
				return fmt.Errorf("file seal: --key, --to, --in and --out are required")
			}
			me, err := loadParty(sealKey, sealCert, sealPass, sealID)
			if err != nil {
				return cryptoExit(err)
			}
			var to []*smx509.Certificate
			for _, p := range sealTo {
				c, err := crypto.LoadCertificate(p)
				if err != nil {
					return cryptoExit(err)
				}
				to = append(to, c)
			}
			in, err := os.Open(sealIn)
			if err != nil {
				return fmt.Errorf("file seal: %w", err)
			}
			defer in.Close()
			opt := crypto.SealOptions{Cipher: sealCipher, CFCA: sealCFCA, MaxBytes: sealMax}
			err = writeAtomic(sealOut, 0o644, func(w io.Writer) error {
				return crypto.SignAndSeal(w, in, me, to, opt)
			})
			if err != nil {
				return cryptoExit(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sealed %s -> %s (%s%s, %d recipient(s))\n", sealIn, sealOut, cipherName(sealCipher), cfcaNote(sealCFCA), len(to))
			return nil
		},
	}
	seal.Flags().StringVar(&sealKey, "key", "", "our encrypted private key (signs)")
	seal.Flags().StringVar(&sealCert, "cert", "", "our certificate (default: N.cert.pem beside N.key.pem)")
	seal.Flags().StringArrayVar(&sealTo, "to", nil, "recipient certificate (repeatable)")
	seal.Flags().StringVar(&sealIn, "in", "", "plain file")
	seal.Flags().StringVar(&sealOut, "out", "", "sealed file to write (DER)")
	seal.Flags().StringVar(&sealPass, "passphrase-file", "", "file holding the key passphrase (else $"+crypto.EnvPassphrase+")")
	seal.Flags().StringVar(&sealID, "signer-id", "", "SM2 signer ID (default "+crypto.DefaultSignerID+")")
	seal.Flags().StringVar(&sealCipher, "cipher", crypto.CipherSM4GCM, "sm4-gcm or sm4-cbc")
	seal.Flags().BoolVar(&sealCFCA, "cfca", false, "CFCA profile (recipients by SubjectKeyIdentifier)")
	seal.Flags().Int64Var(&sealMax, "max-bytes", crypto.DefaultMaxBytes, "largest payload held in memory")

	var (
		openKey, openCert, openFrom, openIn, openOut, openPass, openID, openCipher string
		openCFCA                                                                   bool
		openMax                                                                    int64
	)
	open := &cobra.Command{
		Use:   "open --key BANKKEY --from OURCERT --in F.p7 --out F",
		Short: "Open a sealed file and verify its signature against the sender's pinned certificate",
		Long: `Opens a GB/T 35275 envelope with the recipient's key, verifies the inner PKCS#7
signature against the certificate given with --from, and writes the content
(mode 0600: it holds personal data) only if every check passed. Exit status 2
names the failed check: tampered, not addressed to this key, signed by another
certificate, bad signature, expired certificate, too large.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if openKey == "" || openFrom == "" || openIn == "" || openOut == "" {
				return fmt.Errorf("file open: --key, --from, --in and --out are required")
			}
			me, err := loadParty(openKey, openCert, openPass, "")
			if err != nil {
				return cryptoExit(err)
			}
			from, err := crypto.LoadCertificate(openFrom)
			if err != nil {
				return cryptoExit(err)
			}
			in, err := os.Open(openIn)
			if err != nil {
				return fmt.Errorf("file open: %w", err)
			}
			defer in.Close()
			opt := crypto.SealOptions{Cipher: openCipher, CFCA: openCFCA, SignerID: []byte(openID), MaxBytes: openMax}
			var buf bytes.Buffer
			if err := crypto.OpenAndVerify(&buf, in, me, from, opt); err != nil {
				return cryptoExit(err)
			}
			if err := writeAtomic(openOut, 0o600, func(w io.Writer) error { _, err := buf.WriteTo(w); return err }); err != nil {
				return fmt.Errorf("file open: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "opened %s -> %s: signature OK, signed by %s (SM3 fingerprint %s)\n",
				openIn, openOut, from.Subject.String(), crypto.Fingerprint(from))
			return nil
		},
	}
	open.Flags().StringVar(&openKey, "key", "", "recipient's encrypted private key")
	open.Flags().StringVar(&openCert, "cert", "", "recipient's certificate (default: N.cert.pem beside N.key.pem)")
	open.Flags().StringVar(&openFrom, "from", "", "sender's certificate (pinned; expiry is checked)")
	open.Flags().StringVar(&openIn, "in", "", "sealed file (DER or PEM)")
	open.Flags().StringVar(&openOut, "out", "", "where to write the content")
	open.Flags().StringVar(&openPass, "passphrase-file", "", "file holding the key passphrase (else $"+crypto.EnvPassphrase+")")
	open.Flags().StringVar(&openID, "signer-id", "", "sender's SM2 signer ID (default "+crypto.DefaultSignerID+")")
	open.Flags().StringVar(&openCipher, "cipher", "", "insist on sm4-gcm or sm4-cbc (default: accept either)")
	open.Flags().BoolVar(&openCFCA, "cfca", false, "CFCA profile")
	open.Flags().Int64Var(&openMax, "max-bytes", crypto.DefaultMaxBytes, "largest payload held in memory")

	fileCmd.AddCommand(sign, verify, seal, open)
}

func verifyRawFile(cert *smx509.Certificate, path, uid string, sig []byte) error {
	pub, err := crypto.LoadPublicKeyFromCert(cert)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("file verify: %w", err)
	}
	defer f.Close()
	return crypto.VerifyReader(pub, []byte(uid), f, sig)
}

func orDefaultID(id string) string {
	if id == "" {
		return crypto.DefaultSignerID
	}
	return id
}

func cipherName(c string) string {
	if c == "" {
		return crypto.CipherSM4GCM
	}
	return c
}

func cfcaNote(on bool) string {
	if on {
		return ", CFCA profile"
	}
	return ""
}
