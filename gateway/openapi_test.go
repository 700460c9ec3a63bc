package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"yktgw/internal/gen"
)

// TestOpenAPI holds the server to api/openapi.yaml: every response of a
// scenario touching each endpoint and status is validated against the spec,
// and a route or status the spec lacks fails the test.
func TestOpenAPI(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml invalid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.t = t
	var mu sync.Mutex
	seen := map[string]bool{}
	inner := e.g.Handler()
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())

		vr := r.Clone(context.Background())
		vr.URL.Scheme, vr.URL.Host = "http", "127.0.0.1:8470"
		vr.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := router.FindRoute(vr)
		if err != nil {
			if rec.Code == 404 && strings.Contains(rec.Body.String(), `"not_found"`) {
				return // unknown path, answered 404 by design
			}
			t.Errorf("%s %s: not in openapi.yaml: %v", r.Method, r.URL.Path, err)
			return
		}
		in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: true}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s -> %d does not match openapi.yaml: %v\nbody: %s", r.Method, r.URL.Path, rec.Code, err, rec.Body.String())
		}
		mu.Lock()
		seen[r.Method+" "+route.Path+" "+http.StatusText(rec.Code)] = true
		mu.Unlock()
	})

	b := gen.Full(gen.Spec{BatchID: "B-OAS", N: 5})
	e.do("GET", "/healthz", "", "", nil)
	e.do("GET", "/readyz", "", "", nil)
	e.post("", b)       // 401
	e.post("viewer", b) // 403
	e.post("county", b) // 201
	e.post("county", b) // 200
	b.Records[0].AmountFen++
	e.post("county", b)                                                               // 409
	e.postRaw("county", `{"batch_id":"x","tenant":"210102","records":[{"seq":1.5}]}`) // 422
	e.postRaw("county", `{"batch_id":`)                                               // 400
	e.do("POST", "/v1/batches", "county", "text/csv", strings.NewReader("a,b"))       // 415
	e.do("GET", "/v1/batches", "county", "", nil)
	e.do("GET", "/v1/batches/B-OAS", "county", "", nil)
	e.do("GET", "/v1/batches/NOPE", "county", "", nil)
	e.do("GET", "/v1/batches/B-OAS/results?limit=2", "county", "", nil)
	e.do("GET", "/v1/batches/B-OAS/results?status=BOGUS", "county", "", nil)
	e.do("POST", "/v1/batches/B-OAS/cancel", "county", "application/json", strings.NewReader(`{"reason":"test"}`))
	e.do("POST", "/v1/batches/B-OAS/cancel", "county", "", nil) // 409
	e.do("GET", "/v1/nothing-here", "county", "", nil)
	e.do("GET", "/v1/deliveries?state=DEAD", "ops", "", nil)
	e.do("GET", "/v1/deliveries", "county", "", nil)
	e.do("POST", "/v1/deliveries/999/replay", "ops", "application/json", strings.NewReader(`{"reason":"x"}`))
	e.do("GET", "/v1/replays", "ops", "", nil)
	e.do("GET", "/v1/webhooks/outbox?state=failing", "ops", "", nil)
	e.do("POST", "/v1/banks/NOPE/callback?name=x", "", "application/octet-stream", strings.NewReader("x")) // 404: no pushing bank

	for _, want := range []string{
		"POST /v1/batches Created", "POST /v1/batches OK", "POST /v1/batches Conflict", "POST /v1/batches Unprocessable Entity",
		"POST /v1/batches Unauthorized", "POST /v1/batches Forbidden", "POST /v1/batches Bad Request", "POST /v1/batches Unsupported Media Type",
		"GET /v1/batches OK", "GET /v1/batches/{id} OK", "GET /v1/batches/{id} Not Found", "GET /v1/batches/{id}/results OK",
		"GET /v1/batches/{id}/results Bad Request", "POST /v1/batches/{id}/cancel OK", "POST /v1/batches/{id}/cancel Conflict",
		"GET /healthz OK", "GET /readyz OK", "POST /v1/banks/{code}/callback Not Found",
	} {
		if !seen[want] {
			got, _ := json.Marshal(seen)
			t.Errorf("scenario did not exercise %q (saw %s)", want, got)
		}
	}
}
