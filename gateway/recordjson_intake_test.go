package gateway

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"yktgw/internal/gen"
)

// Through the intake: the outcomes that the reader decides.
func TestNDJSONIntakeRecordShapes(t *testing.T) {
	e := newEnv(t)
	who := &Principal{TokenID: "t", Tenants: []string{"210102"}, Roles: []string{RoleSubmitter}}
	var nd bytes.Buffer
	gen.WriteNDJSON(&nd, gen.Spec{BatchID: "RJ-SHAPES", N: 3})
	lines := strings.SplitAfter(nd.String(), "\n")
	header, recs := lines[0], strings.Join(lines[1:], "")
	submit := func(body string) SubmitResult {
		t.Helper()
		res, err := e.g.Submit(context.Background(), who, strings.NewReader(body), true)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	code := func(res SubmitResult) string {
		if res.Errors == nil || len(res.Errors.Errors) == 0 {
			return ""
		}
		return res.Errors.Errors[0].Code
	}
	for _, c := range []struct {
		body   string
		status int
		code   string
		seq    int
	}{
		{header + recs[:len(recs)-20], StatusBad, "body.truncated", 3},
		{header + recs + "]", StatusBad, "body.malformed", 3},
		{header + recs + `{"seq":4,"colour":"red"}`, StatusBad, "body.malformed", 4},
		{header + `{"seq":1,"remark":"` + strings.Repeat("x", maxRecordBytes) + "\"}\n", StatusBad, "body.malformed", 1},
		{header + "null\n" + recs, StatusInvalid, "seq.invalid", 1},
	} {
		res := submit(c.body)
		if res.Status != c.status || code(res) != c.code || res.Errors.Errors[0].Seq != c.seq {
			t.Fatalf("%.60q...: %d %+v, want %d %s seq %d", c.body[len(header):], res.Status, res.Errors, c.status, c.code, c.seq)
		}
	}
	// Keys in another case, escapes and records on one line are what
	// encoding/json made of them: the same batch.
	odd := strings.Replace(recs, `"seq"`, `"SEQ"`, 1)
	odd = strings.Replace(odd, `"card"`, `"\u0063ard"`, 1)
	odd = strings.ReplaceAll(odd, "}\n{", "} {")
	if res := submit(header + odd); res.Status != StatusCreated {
		t.Fatalf("odd spelling: %d %+v", res.Status, res.Errors)
	}
	if res := submit(header + recs); res.Status != StatusSame {
		t.Fatalf("same content: %d", res.Status)
	}
}
