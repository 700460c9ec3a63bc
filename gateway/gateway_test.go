package gateway

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/config"
	"yktgw/crypto"
	"yktgw/internal/gen"
	"yktgw/spool"
	"yktgw/spool/sqlite"

	_ "github.com/mattn/go-sqlite3"
)

type env struct {
	t      testing.TB
	g      *Gateway
	store  *sqlite.Store
	srv    *httptest.Server
	dir    string
	tokens map[string]string // name -> secret
}

func repoRoot() string { return filepath.Join("..") }

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keyFile := filepath.Join(dir, "data.key")
	if err := crypto.GenerateDataKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	ring, err := OpenLiveKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Subsidies = []config.Subsidy{{Code: "GDZL", Name: "耕地地力保护补贴", CapFen: 5000000}, {Code: "DBBZ", Name: "低保", CapFen: 300000}}
	cfg.Intake.MaxErrors = 50
	cfg.Spool.Dir = filepath.Join(dir, "spool")
	prof, err := banks.LoadProfile(filepath.Join(repoRoot(), "testdata/banks/demo/profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	g, err := New(Deps{Config: cfg, Store: st, Fields: ring, Profiles: map[string]*banks.Profile{"DEMO": prof}, Log: log,
		Now: func() time.Time { return time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, g: g, store: st, dir: dir, tokens: map[string]string{}}
	e.srv = httptest.NewServer(g.Handler())
	t.Cleanup(e.srv.Close)
	for _, tk := range []struct {
		name    string
		tenants []string
		roles   []string
	}{
		{"county", []string{"210102"}, []string{RoleSubmitter}},
		{"city", []string{"210100"}, []string{RoleViewer}},
		{"other", []string{"220102"}, []string{RoleSubmitter, RoleViewer}},
		{"viewer", []string{"210102"}, []string{RoleViewer}},
		{"ops", []string{"*"}, []string{RoleOperator}},
	} {
		secret, _, err := CreateToken(ctx, st, tk.name, tk.tenants, tk.roles, "test")
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[tk.name] = secret
	}
	return e
}

type resp struct {
	status int
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func (e *env) do(method, path, token, ctype string, body io.Reader) resp {
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[token])
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b}
}

func (e *env) post(token string, v any) resp {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do("POST", "/v1/batches", token, "application/json", bytes.NewReader(b))
}

func (e *env) postRaw(token, body string) resp {
	return e.do("POST", "/v1/batches", token, "application/json", strings.NewReader(body))
}

func codes(t *testing.T, r resp) []string {
	t.Helper()
	var eb ErrorBody
	r.json(t, &eb)
	var out []string
	for _, i := range eb.Errors {
		out = append(out, fmt.Sprintf("%d:%s:%s", i.Seq, i.Field, i.Code))
	}
	return out
}

func hasCode(list []string, want string) bool {
	for _, c := range list {
		if c == want {
			return true
		}
	}
	return false
}

func TestSubmitAndRead(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-001", N: 20})
	r := e.post("county", b)
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var v BatchView
	r.json(t, &v)
	if v.BatchID != "B-001" || v.State != spool.BatchQueued || v.TotalCount != 20 || v.TotalFen != b.TotalFen {
		t.Fatalf("view = %+v", v)
	}
	g := e.do("GET", "/v1/batches/B-001", "county", "", nil)
	if g.status != 200 {
		t.Fatalf("GET %d %s", g.status, g.body)
	}
	var gv BatchView
	g.json(t, &gv)
	if len(gv.Records) != 1 || gv.Records[0].Status != "PENDING" || gv.Records[0].Count != 20 || gv.Records[0].Fen != b.TotalFen {
		t.Fatalf("GET view = %+v", gv)
	}
	// Results page through with a cursor, all PENDING, personal data masked.
	var items []ResultItem
	cursor := ""
	for {
		rr := e.do("GET", "/v1/batches/B-001/results?limit=7&cursor="+cursor, "city", "", nil)
		if rr.status != 200 {
			t.Fatalf("results %d %s", rr.status, rr.body)
		}
		var p ResultPage
		rr.json(t, &p)
		items = append(items, p.Items...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(items) != 20 {
		t.Fatalf("%d result items", len(items))
	}
	for i, it := range items {
		rec := b.Records[i]
		if it.Seq != i+1 || it.Status != "PENDING" || it.AmountFen != rec.AmountFen {
			t.Fatalf("item %d = %+v", i, it)
		}
		if it.IDNumber != rec.IDNumber[:4]+"**********"+rec.IDNumber[14:] || strings.Contains(it.Account, rec.Account[4:15]) {
			t.Fatalf("item %d not masked right: %+v", i, it)
		}
	}
}

// Money rule 3: same batch_id + same content returns the first answer; other content is a conflict.
func TestIdempotentIntake(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-IDEM", N: 5})
	if r := e.post("county", b); r.status != 201 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := e.post("county", b)
	if r.status != 200 {
		t.Fatalf("same again: %d %s", r.status, r.body)
	}
	var v BatchView
	r.json(t, &v)
	if v.BatchID != "B-IDEM" || v.TotalCount != 5 {
		t.Fatalf("same again view: %+v", v)
	}
	// Same content as NDJSON is the same content.
	var nd bytes.Buffer
	gen.WriteNDJSON(&nd, gen.Spec{BatchID: "B-IDEM", N: 5})
	if r := e.do("POST", "/v1/batches", "county", "application/x-ndjson", &nd); r.status != 200 {
		t.Fatalf("same as NDJSON: %d %s", r.status, r.body)
	}
	b2 := gen.Full(gen.Spec{BatchID: "B-IDEM", N: 5})
	b2.Records[3].AmountFen++
	b2.TotalFen++
	r = e.post("county", b2)
	if r.status != 409 {
		t.Fatalf("other content: %d %s", r.status, r.body)
	}
	// Nothing was queued twice: still exactly 5 records.
	counts, _ := e.store.RecordCounts(context.Background(), "B-IDEM")
	if len(counts) != 1 || counts[0].Count != 5 {
		t.Fatalf("counts after replays: %+v", counts)
	}
	bs, _ := e.store.Batches(context.Background(), spool.BatchFilter{})
	if len(bs) != 1 {
		t.Fatalf("%d batches", len(bs))
	}
}

// Money rule 1: amounts are JSON integers in fen; floats and strings are refused.
func TestAmountsAreIntegerFen(t *testing.T) {
	e := newEnv(t)
	e.t = t
	for _, amt := range []string{`100.0`, `"100"`, `1e2`, `100.5`, `-5`, `0`, `9223372036854775808`, `null`} {
		body := `{"batch_id":"B-AMT","tenant":"210102","bank":"DEMO","subsidy":{"code":"GDZL","name":"x"},"period":"2026-11","memo":"补贴","total_count":1,"total_fen":100,"records":[` +
			`{"seq":1,"name":"张三","id_number":"11010519491231002X","account":"6222020200112230126","account_kind":"card","amount_fen":` + amt + `}]}`
		r := e.postRaw("county", body)
		if r.status != 422 {
			t.Fatalf("amount %s: status %d %s", amt, r.status, r.body)
		}
		c := codes(t, r)
		found := false
		for _, x := range c {
			if strings.HasPrefix(x, "1:amount_fen:") {
				found = true
			}
		}
		if !found {
			t.Fatalf("amount %s: codes %v", amt, c)
		}
	}
	r := e.postRaw("county", `{"batch_id":"B-AMT","tenant":"210102","bank":"DEMO","subsidy":{"code":"GDZL","name":"x"},"period":"2026-11","memo":"补贴","total_count":1,"total_fen":100.0,"records":[`+
		`{"seq":1,"name":"张三","id_number":"11010519491231002X","account":"6222020200112230126","account_kind":"card","amount_fen":100}]}`)
	if r.status != 422 || !hasCode(codes(t, r), "0:total_fen:total_fen.invalid") {
		t.Fatalf("float total: %d %s", r.status, r.body)
	}
	if _, err := e.store.Batch(context.Background(), "B-AMT"); err == nil {
		t.Fatal("refused batch stored")
	}
}

// Money rule 2: control totals must match the records.
func TestControlTotals(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-TOT", N: 10})
	b.TotalFen++
	r := e.post("county", b)
	if r.status != 422 || !hasCode(codes(t, r), "0:total_fen:control.total_fen") {
		t.Fatalf("fen off by one: %d %s", r.status, r.body)
	}
	b.TotalFen--
	b.TotalCount = 11
	r = e.post("county", b)
	if r.status != 422 || !hasCode(codes(t, r), "0:total_count:control.count") {
		t.Fatalf("count off by one: %d %s", r.status, r.body)
	}
	b.TotalCount = 10
	if r := e.post("county", b); r.status != 201 {
		t.Fatalf("correct totals refused: %d %s", r.status, r.body)
	}
}

// Money rule 4: the same person for the same subsidy and period is paid once across batches.
func TestNoDoublePaymentAcrossBatches(t *testing.T) {
	e := newEnv(t)
	e.t = t
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "B-A", N: 10})); r.status != 201 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	// B-B pays persons 6..15: 6..10 are already PENDING in B-A.
	r := e.post("county", gen.Full(gen.Spec{BatchID: "B-B", N: 10, PersonOffset: 5}))
	if r.status != 422 {
		t.Fatalf("overlapping batch: %d %s", r.status, r.body)
	}
	c := codes(t, r)
	if len(c) != 5 || c[0] != "1:id_number:id_number.already_paid" || c[4] != "5:id_number:id_number.already_paid" {
		t.Fatalf("codes = %v", c)
	}
	if _, err := e.store.Batch(context.Background(), "B-B"); err == nil {
		t.Fatal("refused batch stored")
	}
	// Other period: fine. Same person twice in one batch: refused.
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "B-C", N: 10, Period: "2026-12"})); r.status != 201 {
		t.Fatalf("other period: %d %s", r.status, r.body)
	}
	dup := gen.Full(gen.Spec{BatchID: "B-D", N: 3, PersonOffset: 100})
	dup.Records[2].IDNumber = strings.ToLower(dup.Records[0].IDNumber) // same person, lower-case x or not
	r = e.post("county", dup)
	if r.status != 422 || !hasCode(codes(t, r), "3:id_number:id_number.duplicate_in_batch") {
		t.Fatalf("in-batch duplicate: %d %s", r.status, r.body)
	}
}

func TestAllErrorsAtOnceWithCap(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-BAD", N: 200})
	for i := range b.Records {
		b.Records[i].IDNumber = b.Records[i].IDNumber[:17] + "0" // wrong check character (mostly)
		if b.Records[i].IDNumber == gen.Full(gen.Spec{BatchID: "x", N: 200}).Records[i].IDNumber {
			b.Records[i].IDNumber = b.Records[i].IDNumber[:17] + "1"
		}
	}
	b.Records[0].Name = ""
	r := e.post("county", b)
	if r.status != 422 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var eb ErrorBody
	r.json(t, &eb)
	if len(eb.Errors) != 50 || eb.ErrorsDropped != 151 {
		t.Fatalf("listed %d, dropped %d; want 50 and 151", len(eb.Errors), eb.ErrorsDropped)
	}
	if eb.Errors[0].Seq != 1 || eb.Errors[0].Field != "name" || eb.Errors[0].Message == "" {
		t.Fatalf("first error = %+v", eb.Errors[0])
	}
}

func TestLuhnWarningReturnedAndStored(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-LUHN", N: 3})
	a := []byte(b.Records[1].Account)
	a[len(a)-1] = '0' + (a[len(a)-1]-'0'+1)%10
	b.Records[1].Account = string(a)
	r := e.post("county", b)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var v BatchView
	r.json(t, &v)
	if len(v.Warnings) != 1 || v.Warnings[0].Seq != 2 || v.Warnings[0].Code != "account.luhn" {
		t.Fatalf("warnings = %+v", v.Warnings)
	}
	var gv BatchView
	e.do("GET", "/v1/batches/B-LUHN", "county", "", nil).json(t, &gv)
	if len(gv.Warnings) != 1 {
		t.Fatalf("stored warnings = %+v", gv.Warnings)
	}
}

func TestSharedAccountWarning(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-SHARE", N: 4})
	b.Records[3].Account = b.Records[0].Account
	r := e.post("county", b)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var v BatchView
	r.json(t, &v)
	if len(v.Warnings) != 2 || v.Warnings[0].Code != "account.shared" || v.Warnings[0].Seq != 1 || v.Warnings[1].Seq != 4 {
		t.Fatalf("warnings = %+v", v.Warnings)
	}
}

func TestAuthAndTenancy(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-AUTH", N: 2})
	body, _ := json.Marshal(b)
	if r := e.do("POST", "/v1/batches", "", "application/json", bytes.NewReader(body)); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/batches/B-AUTH", nil)
	req.Header.Set("Authorization", "Bearer ykt_0123456789abcdef_wrong")
	res, _ := http.DefaultClient.Do(req)
	if res.StatusCode != 401 {
		t.Fatalf("bad token: %d", res.StatusCode)
	}
	res.Body.Close()
	if r := e.post("viewer", b); r.status != 403 {
		t.Fatalf("viewer submitting: %d %s", r.status, r.body)
	}
	if r := e.post("other", b); r.status != 403 {
		t.Fatalf("other tenant submitting: %d %s", r.status, r.body)
	}
	if r := e.post("county", b); r.status != 201 {
		t.Fatalf("county: %d %s", r.status, r.body)
	}
	// City token covers its county; the other province's token sees nothing,
	// and gets exactly what a missing batch gets.
	if r := e.do("GET", "/v1/batches/B-AUTH", "city", "", nil); r.status != 200 {
		t.Fatalf("city: %d", r.status)
	}
	other := e.do("GET", "/v1/batches/B-AUTH", "other", "", nil)
	missing := e.do("GET", "/v1/batches/NO-SUCH", "other", "", nil)
	if other.status != 404 || missing.status != 404 || !bytes.Equal(other.body, missing.body) {
		t.Fatalf("other tenant: %d %s vs missing %d %s", other.status, other.body, missing.status, missing.body)
	}
	if r := e.do("GET", "/v1/batches/B-AUTH/results", "other", "", nil); r.status != 404 {
		t.Fatalf("other tenant results: %d", r.status)
	}
	if r := e.do("POST", "/v1/batches/B-AUTH/cancel", "other", "", nil); r.status != 404 {
		t.Fatalf("other tenant cancel: %d", r.status)
	}
	if r := e.do("POST", "/v1/batches/B-AUTH/cancel", "viewer", "", nil); r.status != 403 {
		t.Fatalf("viewer cancel: %d", r.status)
	}
	var list BatchList
	e.do("GET", "/v1/batches", "other", "", nil).json(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("other tenant lists %d batches", len(list.Items))
	}
	e.do("GET", "/v1/batches", "ops", "", nil).json(t, &list)
	if len(list.Items) != 1 {
		t.Fatalf("ops lists %d batches", len(list.Items))
	}
	// A revoked token is refused.
	tok, _ := e.store.Tokens(context.Background())
	for _, tk := range tok {
		if tk.Name == "city" {
			e.store.RevokeToken(context.Background(), tk.ID, "test")
		}
	}
	if r := e.do("GET", "/v1/batches/B-AUTH", "city", "", nil); r.status != 401 {
		t.Fatalf("revoked: %d", r.status)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	e.t = t
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "B-CAN", N: 3})); r.status != 201 {
		t.Fatal(r.status)
	}
	r := e.do("POST", "/v1/batches/B-CAN/cancel", "county", "application/json", strings.NewReader(`{"reason":"wrong period"}`))
	if r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	var v BatchView
	r.json(t, &v)
	if v.State != spool.BatchCancelled || len(v.Records) != 1 || v.Records[0].Status != "CANCELLED" {
		t.Fatalf("after cancel: %+v", v)
	}
	if r := e.do("POST", "/v1/batches/B-CAN/cancel", "county", "", nil); r.status != 409 {
		t.Fatalf("second cancel: %d", r.status)
	}
	// The cancelled people may be paid in a new batch.
	if r := e.post("county", gen.Full(gen.Spec{BatchID: "B-CAN2", N: 3})); r.status != 201 {
		t.Fatalf("after cancel: %d %s", r.status, r.body)
	}
}

func TestNDJSONIntake(t *testing.T) {
	e := newEnv(t)
	e.t = t
	var buf bytes.Buffer
	gen.WriteNDJSON(&buf, gen.Spec{BatchID: "B-ND", N: 12000})
	r := e.do("POST", "/v1/batches", "county", "application/x-ndjson", &buf)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	counts, _ := e.store.RecordCounts(context.Background(), "B-ND")
	if len(counts) != 1 || counts[0].Count != 12000 {
		t.Fatalf("counts %+v", counts)
	}
}

// A submission cut off mid-stream leaves no partial batch.
func TestCutOffStreamLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.t = t
	var buf bytes.Buffer
	gen.WriteNDJSON(&buf, gen.Spec{BatchID: "B-CUT", N: 12000})
	cut := buf.Bytes()[:buf.Len()*2/3]
	r := e.do("POST", "/v1/batches", "county", "application/x-ndjson", bytes.NewReader(cut))
	if r.status != 422 && r.status != 400 {
		t.Fatalf("cut stream: %d %s", r.status, r.body)
	}
	var n int
	db := e.store
	if err := rawCount(db, &n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d records left behind", n)
	}
	if _, err := e.store.Batch(context.Background(), "B-CUT"); err == nil {
		t.Fatal("partial batch visible")
	}
}

// After intake no ID number or account number is in the spool files in clear.
func TestNoPlaintextInSpool(t *testing.T) {
	e := newEnv(t)
	e.t = t
	b := gen.Full(gen.Spec{BatchID: "B-PII", N: 300})
	if r := e.post("county", b); r.status != 201 {
		t.Fatal(r.status)
	}
	e.store.Close()
	files, _ := filepath.Glob(filepath.Join(e.dir, "spool.db*"))
	if len(files) == 0 {
		t.Fatal("no spool files")
	}
	// The files' detail lines rendered at intake (bodies) are sealed too.
	bodies, _ := filepath.Glob(filepath.Join(e.g.cfg.Spool.Dir, "body", "*", "*"))
	if len(bodies) == 0 {
		t.Fatal("no bodies rendered at intake")
	}
	files = append(files, bodies...)
	var all []byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, raw...)
	}
	for _, r := range b.Records {
		for _, secret := range []string{r.IDNumber, r.Account, r.IDNumber[6:14] + r.IDNumber[14:17], r.Name} {
			if bytes.Contains(all, []byte(secret)) {
				t.Fatalf("seq %d: %q found in clear in the spool files", r.Seq, secret)
			}
		}
	}
}

func TestBodyLimitsAndContentType(t *testing.T) {
	e := newEnv(t)
	e.t = t
	if r := e.do("POST", "/v1/batches", "county", "text/plain", strings.NewReader("x")); r.status != 415 {
		t.Fatalf("text/plain: %d", r.status)
	}
	if r := e.postRaw("county", `{"batch_id": "x", `); r.status != 400 {
		t.Fatalf("truncated JSON: %d %s", r.status, r.body)
	}
	if r := e.postRaw("county", `[1,2]`); r.status != 400 {
		t.Fatalf("array: %d %s", r.status, r.body)
	}
	e.g.cfg.Intake.MaxBodyBytes = 1000
	b, _ := json.Marshal(gen.Full(gen.Spec{BatchID: "B-BIG", N: 50}))
	if r := e.do("POST", "/v1/batches", "county", "application/json", bytes.NewReader(b)); r.status != 413 {
		t.Fatalf("too large: %d %s", r.status, r.body)
	}
}

func rawCount(s *sqlite.Store, n *int) error {
	db, err := sql.Open("sqlite3", "file:"+s.Path()+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRow(`SELECT count(*) FROM records`).Scan(n)
}

func rawStaged(s *sqlite.Store, n *int) error {
	db, err := sql.Open("sqlite3", "file:"+s.Path()+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRow(`SELECT count(*) FROM batches WHERE state = 'STAGING'`).Scan(n)
}

// failingCipher fails every encryption after the first n.
type failingCipher struct {
	FieldCipher
	n atomic.Int64
}

func (f *failingCipher) EncryptTo(dst, p, aad []byte) ([]byte, error) {
	if f.n.Add(-1) < 0 {
		return nil, errors.New("keyring gone")
	}
	return f.FieldCipher.EncryptTo(dst, p, aad)
}

// Sealing runs beside decoding (a chunk at a time): a seal that fails in a
// later chunk still refuses the whole batch and leaves nothing behind.
func TestSealFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.t = t
	e.g.cfg.Intake.ChunkRecords = 10
	fc := &failingCipher{FieldCipher: e.g.fields}
	fc.n.Store(25) // one seal a record: chunks 1 and 2 seal, chunk 3 fails
	e.g.fields = fc
	r := e.post("county", gen.Full(gen.Spec{BatchID: "B-SEAL", N: 40}))
	if r.status < 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if _, err := e.store.Batch(context.Background(), "B-SEAL"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("batch after a failed seal: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.dir, "spool.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM record_fields) + (SELECT count(*) FROM record_packs) + (SELECT count(*) FROM batches)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows left (%v)", n, err)
	}
}
