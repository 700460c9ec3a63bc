package https_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	bankhttps "yktgw/banks/https"
	"yktgw/crypto"
)

var fuzzKeys = sync.OnceValues(func() (*sm2.PrivateKey, *smx509.Certificate) {
	dir, err := os.MkdirTemp("", "ykt-fuzz-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := crypto.GenerateParty(dir, "bank", []byte("pw"), time.Hour); err != nil {
		panic(err)
	}
	k, _, c := crypto.PartyFiles(dir, "bank")
	key, err := crypto.LoadPrivateKey(k, []byte("pw"))
	if err != nil {
		panic(err)
	}
	cert, err := crypto.LoadCertificate(c)
	if err != nil {
		panic(err)
	}
	return key, cert
})

// FuzzVerifyRequest: whatever headers and body arrive, VerifyRequest never
// panics, and accepts only what the key signed (a request signed properly
// and then left alone verifies; changing the body makes it fail).
func FuzzVerifyRequest(f *testing.F) {
	f.Add("1764300000000", "0123456789abcdef0123456789abcdef", "MEUCIQ==", []byte("body"), "/v1/banks/DEMO/callback?name=x", false)
	f.Add("", "", "", []byte{}, "/", true)
	f.Add("-1", "short", "!!", []byte("x"), "/a?b=c&d", true)
	f.Add("99999999999999999999", "zzzzzzzzzzzzzzzzzzzz", "AAAA", []byte("\x00\xff"), "/%2F", true)
	key, cert := fuzzKeys()
	f.Fuzz(func(t *testing.T, ts, nonce, sig string, body []byte, uri string, sign bool) {
		req := httptest.NewRequest(http.MethodPost, "http://gw.example/", bytes.NewReader(body))
		if u, err := req.URL.Parse(uri); err == nil {
			req.URL = u
		}
		now := time.Now()
		if sign {
			if err := bankhttps.SignRequest(req, key, nil, now, sm3Sum(body)); err != nil {
				t.Fatal(err)
			}
			if _, err := bankhttps.VerifyRequest(req, body, cert, nil, now, time.Minute); err != nil {
				t.Fatalf("a properly signed request does not verify: %v", err)
			}
			if _, err := bankhttps.VerifyRequest(req, append(body, 'x'), cert, nil, now, time.Minute); err == nil {
				t.Fatal("a changed body verified")
			}
			return
		}
		req.Header.Set(bankhttps.HeaderTimestamp, ts)
		req.Header.Set(bankhttps.HeaderNonce, nonce)
		req.Header.Set(bankhttps.HeaderSignature, sig)
		if _, err := bankhttps.VerifyRequest(req, body, cert, nil, now, time.Minute); err == nil {
			t.Fatalf("unsigned request verified: ts=%q nonce=%q sig=%q", ts, nonce, sig)
		}
		_, _ = bankhttps.CheckTimestamp(ts, now, time.Minute)
	})
}

func sm3Sum(b []byte) [32]byte { return sm3.Sum(b) }
