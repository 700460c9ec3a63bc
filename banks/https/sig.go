package https

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"yktgw/crypto"
)

// Headers of the signed exchange, in both directions (our requests to the
// bank, the bank's answers, and the bank's pushes to the gateway callback).
const (
	// HeaderTimestamp is the signer's time, decimal Unix milliseconds.
	HeaderTimestamp = "X-Ykt-Timestamp"
	// HeaderNonce is a fresh random value per request (32 hex digits); a
	// response carries the nonce of the request it answers.
	HeaderNonce = "X-Ykt-Nonce"
	// HeaderSignature is the base64 (std) ASN.1 SM2 signature over the
	// signing string (RequestString or ResponseString).
	HeaderSignature = "X-Ykt-Signature"
	// HeaderIdempotencyKey carries our bank batch number on Send.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderContentSM3 is the hex SM3 of the body, informative (the
	// verifier always hashes the body itself).
	HeaderContentSM3 = "X-Ykt-Content-Sm3"
)

// RequestString is what a request's signature covers, one item a line:
//
//	YKT-SM2-REQ-V1
//	<METHOD>
//	<request URI: escaped path and, if any, "?" raw query>
//	<timestamp>
//	<nonce>
//	<hex SM3 of the body (of zero bytes when there is none)>
func RequestString(method, uri, ts, nonce string, bodySM3 [32]byte) []byte {
	return fmt.Appendf(nil, "YKT-SM2-REQ-V1\n%s\n%s\n%s\n%s\n%s", method, uri, ts, nonce, hex.EncodeToString(bodySM3[:]))
}

// ResponseString is what a response's signature covers: the status and
// the request it answers (method, URI, the request's nonce), the
// responder's timestamp and the SM3 of the response body.
//
//	YKT-SM2-RSP-V1
//	<status code>
//	<METHOD>
//	<request URI>
//	<timestamp>
//	<request nonce>
//	<hex SM3 of the response body>
func ResponseString(status int, method, uri, ts, nonce string, bodySM3 [32]byte) []byte {
	return fmt.Appendf(nil, "YKT-SM2-RSP-V1\n%d\n%s\n%s\n%s\n%s\n%s", status, method, uri, ts, nonce, hex.EncodeToString(bodySM3[:]))
}

// ErrSignature is wrapped by every signature, timestamp or nonce failure
// of a signed exchange.
var ErrSignature = errors.New("https: bad or missing SM2 signature")

// Sign signs msg with key (uid empty: crypto.DefaultSignerID) and returns
// the header value.
func Sign(key *sm2.PrivateKey, uid []byte, msg []byte) (string, error) {
	sig, err := crypto.SignDetached(key, uid, msg)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Verify checks a header value made by Sign against cert's public key.
func Verify(cert *smx509.Certificate, uid []byte, msg []byte, header string) error {
	if header == "" {
		return fmt.Errorf("%w: no %s header", ErrSignature, HeaderSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return fmt.Errorf("%w: %s is not base64", ErrSignature, HeaderSignature)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate %q holds no SM2 public key", ErrSignature, cert.Subject.CommonName)
	}
	if err := crypto.VerifyDetached(pub, uid, msg, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// NewNonce returns 16 random bytes in hex.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Timestamp formats t as the HeaderTimestamp value.
func Timestamp(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// CheckTimestamp parses a HeaderTimestamp value and checks it lies within
// window of now (either side).
func CheckTimestamp(v string, now time.Time, window time.Duration) (time.Time, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, fmt.Errorf("%w: %s %q is not Unix milliseconds", ErrSignature, HeaderTimestamp, v)
	}
	t := time.UnixMilli(ms)
	if d := now.Sub(t); d > window || d < -window {
		return t, fmt.Errorf("%w: %s is %s away from now (window %s)", ErrSignature, HeaderTimestamp, d.Round(time.Second), window)
	}
	return t, nil
}

// validNonce: 16 to 64 characters of [0-9A-Za-z_-].
func validNonce(n string) bool {
	if len(n) < 16 || len(n) > 64 {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SignRequest sets the timestamp, nonce, content SM3 and signature headers
// of req, whose body has the given SM3.
func SignRequest(req *http.Request, key *sm2.PrivateKey, uid []byte, now time.Time, bodySM3 [32]byte) error {
	ts, nonce := Timestamp(now), NewNonce()
	sig, err := Sign(key, uid, RequestString(req.Method, req.URL.RequestURI(), ts, nonce, bodySM3))
	if err != nil {
		return err
	}
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderContentSM3, hex.EncodeToString(bodySM3[:]))
	req.Header.Set(HeaderSignature, sig)
	return nil
}

// SignedRequest is what VerifyRequest found.
type SignedRequest struct {
	Time  time.Time
	Nonce string
}

// VerifyRequest checks the signature of a received request whose body (read
// in full by the caller) is body, against cert, and that its timestamp is
// within window of now. It does not check the nonce for replay: the caller
// remembers nonces durably.
func VerifyRequest(r *http.Request, body []byte, cert *smx509.Certificate, uid []byte, now time.Time, window time.Duration) (SignedRequest, error) {
	ts, nonce := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce)
	if !validNonce(nonce) {
		return SignedRequest{}, fmt.Errorf("%w: %s missing or malformed", ErrSignature, HeaderNonce)
	}
	msg := RequestString(r.Method, r.URL.RequestURI(), ts, nonce, sm3.Sum(body))
	if err := Verify(cert, uid, msg, r.Header.Get(HeaderSignature)); err != nil {
		return SignedRequest{}, err
	}
	t, err := CheckTimestamp(ts, now, window)
	if err != nil {
		return SignedRequest{}, err
	}
	return SignedRequest{Time: t, Nonce: nonce}, nil
}

// WriteSigned writes a signed response to the request r: status, body and
// the timestamp, nonce (the request's) and signature headers. Content-Type
// is the caller's.
func WriteSigned(w http.ResponseWriter, r *http.Request, key *sm2.PrivateKey, uid []byte, now time.Time, status int, body []byte) {
	ts := Timestamp(now)
	nonce := r.Header.Get(HeaderNonce)
	sig, err := Sign(key, uid, ResponseString(status, r.Method, r.URL.RequestURI(), ts, nonce, sm3.Sum(body)))
	if err != nil {
		http.Error(w, "signing failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, sig)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// VerifyResponse checks a response's signature (over status, the request's
// method, URI and nonce, its timestamp and SM3 of body) against cert, and
// that its timestamp lies within window of now.
func VerifyResponse(res *http.Response, reqURI, reqNonce string, body []byte, cert *smx509.Certificate, uid []byte, now time.Time, window time.Duration) error {
	ts := res.Header.Get(HeaderTimestamp)
	if got := res.Header.Get(HeaderNonce); got != reqNonce {
		return fmt.Errorf("%w: response nonce does not echo the request's", ErrSignature)
	}
	msg := ResponseString(res.StatusCode, res.Request.Method, reqURI, ts, reqNonce, sm3.Sum(body))
	if err := Verify(cert, uid, msg, res.Header.Get(HeaderSignature)); err != nil {
		return err
	}
	_, err := CheckTimestamp(ts, now, window)
	return err
}
