package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// HTTPSTLS are the transport certificates of the simulated HTTPS bank and
// of the gateway talking to it: a throw-away test CA (ECDSA P-256) that
// signed the bank's server certificate (for 127.0.0.1, ::1 and localhost)
// and the gateway's client certificate. The SM2 keys of both sides are the
// KeySet's; these only carry TLS (Go's crypto/tls has no SM2/TLCP).
type HTTPSTLS struct {
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile string
	CA                            *x509.Certificate
	Server                        tls.Certificate
}

// File names SetupHTTPSTLS writes in its directory.
const (
	TLSCAFile         = "https-ca.pem"
	TLSServerCertFile = "https-bank.pem"
	TLSServerKeyFile  = "https-bank.key"
	TLSClientCertFile = "https-gateway.pem"
	TLSClientKeyFile  = "https-gateway.key"
)

// SetupHTTPSTLS makes (or loads, when all are there) the test CA, the
// bank's server certificate and the gateway's client certificate in dir.
func SetupHTTPSTLS(dir string) (*HTTPSTLS, error) {
	t := &HTTPSTLS{
		CAFile:         filepath.Join(dir, TLSCAFile),
		ServerCertFile: filepath.Join(dir, TLSServerCertFile),
		ServerKeyFile:  filepath.Join(dir, TLSServerKeyFile),
		ClientCertFile: filepath.Join(dir, TLSClientCertFile),
		ClientKeyFile:  filepath.Join(dir, TLSClientKeyFile),
	}
	all := []string{t.CAFile, t.ServerCertFile, t.ServerKeyFile, t.ClientCertFile, t.ClientKeyFile}
	n := 0
	for _, f := range all {
		if _, err := os.Stat(f); err == nil {
			n++
		}
	}
	switch n {
	case 0:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sim: tls: %w", err)
		}
		if err := t.generate(); err != nil {
			return nil, fmt.Errorf("sim: tls: %w", err)
		}
	case len(all):
	default:
		return nil, fmt.Errorf("sim: tls: %s holds %d of the %d TLS files; remove them or add the rest", dir, n, len(all))
	}
	if err := t.load(); err != nil {
		return nil, fmt.Errorf("sim: tls: %w", err)
	}
	return t, nil
}

func (t *HTTPSTLS) load() error {
	b, err := os.ReadFile(t.CAFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s: no PEM", t.CAFile)
	}
	if t.CA, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return err
	}
	t.Server, err = tls.LoadX509KeyPair(t.ServerCertFile, t.ServerKeyFile)
	return err
}

// ServerConfig is the bank's TLS configuration: its certificate, and only
// clients with a certificate from the test CA.
func (t *HTTPSTLS) ServerConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(t.CA)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{t.Server},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
}

func (t *HTTPSTLS) generate() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "yktgw banksim test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, certFile, keyFile string, server bool) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certValidity),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		kd, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
			return err
		}
		return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	}
	if err := leaf("banksim https", x509.ExtKeyUsageServerAuth, t.ServerCertFile, t.ServerKeyFile, true); err != nil {
		return err
	}
	if err := leaf("yktgw gateway", x509.ExtKeyUsageClientAuth, t.ClientCertFile, t.ClientKeyFile, false); err != nil {
		return err
	}
	// The CA last: its presence means the set is complete.
	return os.WriteFile(t.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(errors.New("sim: no randomness"))
	}
	return n
}
