package amqp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/banks/banktest"
)

// testCA makes a CA and a certificate it issued for 127.0.0.1 (client and
// server use); it returns the CA's PEM and the leaf as a tls.Certificate
// with its PEM files.
func testCA(t *testing.T, dir, name string) (caPEM []byte, leaf tls.Certificate, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	leaf, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return caPEM, leaf, certFile, keyFile
}

// tlsFront terminates TLS (requiring a client certificate from clientCA) on
// loopback and forwards the plain bytes to the broker: the broker as an
// amqps server.
func tlsFront(t *testing.T, broker string, cert tls.Certificate, clientCA []byte) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				s, err := net.Dial("tcp", broker)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				io.Copy(c, s)
			}()
		}
	}()
	return ln.Addr().String()
}

// amqps with a pinned CA and a client certificate: it works through TLS;
// a broker certificate from another CA is ErrHostKey (permanent).
func TestAMQPS(t *testing.T) {
	u := needBroker(t)
	dir := t.TempDir()
	serverCA, serverCert, _, _ := testCA(t, dir, "broker")
	clientCA, _, clientCertFile, clientKeyFile := testCA(t, dir, "gateway")
	otherCA, _, _, _ := testCA(t, dir, "other")
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	os.WriteFile(caFile, serverCA, 0o600)
	os.WriteFile(otherFile, otherCA, 0o600)

	pu, _ := url.Parse(u)
	front := tlsFront(t, pu.Host, serverCert, clientCA)
	pu.Scheme, pu.Host = "amqps", front
	queue, fb := randName(t, "out"), randName(t, "fb")
	bank := startTestBank(t, u, queue, fb)

	ch := newChannel(t, pu.String(), queue, fb, map[string]string{"ca_file": caFile, "cert_file": clientCertFile, "key_file": clientKeyFile})
	data := banktest.RandomBytes(t, 10_000)
	o := banktest.NewOutbound("TEST", randName(t, "tls")+".dat", data)
	if _, err := ch.Send(context.Background(), o); err != nil {
		t.Fatalf("Send over amqps: %v", err)
	}
	if r, err := ch.(banks.Prober).Probe(context.Background(), o); err != nil || r != banks.ProbeArrived {
		t.Fatalf("Probe over amqps = %v, %v", r, err)
	}
	if got := bank.Received(t)[o.Name]; string(got) != string(data) {
		t.Fatal("the bank did not get the bytes sent over amqps")
	}

	for name, opts := range map[string]map[string]string{
		"other CA":     {"ca_file": otherFile, "cert_file": clientCertFile, "key_file": clientKeyFile},
		"system roots": {"cert_file": clientCertFile, "key_file": clientKeyFile},
	} {
		ch := newChannel(t, pu.String(), queue, fb, opts)
		err := ch.(banks.Pinger).Ping(context.Background())
		if !errors.Is(err, banks.ErrHostKey) || banks.IsRetryable(err) {
			t.Errorf("%s: Ping = %v, want permanent ErrHostKey", name, err)
		}
	}
	// Without our client certificate the TLS front refuses us: no success.
	ch = newChannel(t, pu.String(), queue, fb, map[string]string{"ca_file": caFile})
	if err := ch.(banks.Pinger).Ping(context.Background()); err == nil {
		t.Error("Ping without a client certificate succeeded")
	}
}
