package validate

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// codesTable renders every stable code as a markdown table (README material).
func codesTable() string {
	codes := Codes()
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("| code | message |\n|---|---|\n")
	for _, k := range keys {
		b.WriteString("| `" + k + "` | " + codes[k] + " |\n")
	}
	return b.String()
}

// TestCodesGolden pins the stable codes: changing or removing one breaks clients,
// so it must show up as a diff of testdata/codes.md (go test -run CodesGolden -update).
func TestCodesGolden(t *testing.T) {
	golden := filepath.Join("testdata", "codes.md")
	got := codesTable()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Fatalf("codes changed; review and run with -update:\n got:\n%s\nwant:\n%s", got, want)
	}
}
