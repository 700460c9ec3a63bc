package banks

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"yktgw/banks/format"
)

var update = flag.Bool("update", false, "rewrite golden files (expected.out, expected.json, expected.err)")

// goldenResult is a parsed result plus what the profile makes of its code.
type goldenResult struct {
	format.Result
	Reason Reason      `json:"reason"`
	Class  ReasonClass `json:"class"`
}

type goldenParsed struct {
	Results []goldenResult `json:"results"`
	Summary format.Summary `json:"summary"`
}

// TestGoldenProfiles runs every case folder of every shipped profile:
// batch.json -> rendered bytes (expected.out) or the refusal (expected.err);
// input (a return file) -> results with reasons and the summary
// (expected.json) or every problem (expected.err).
func TestGoldenProfiles(t *testing.T) {
	for _, code := range []string{"rcc", "pipe", "xml", "demo"} {
		t.Run(code, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "banks", code)
			p, err := LoadProfile(dir)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range entries {
				if !e.IsDir() {
					continue
				}
				cdir := filepath.Join(dir, e.Name())
				if _, err := os.Stat(filepath.Join(cdir, "batch.json")); err == nil {
					n++
					t.Run(e.Name(), func(t *testing.T) { goldenRender(t, p, cdir) })
				}
				if _, err := os.Stat(filepath.Join(cdir, "input")); err == nil {
					n++
					t.Run(e.Name(), func(t *testing.T) { goldenParse(t, p, cdir) })
				}
			}
			if n < 10 {
				t.Fatalf("only %d cases in %s", n, dir)
			}
		})
	}
}

func goldenRender(t *testing.T, p *Profile, dir string) {
	f, err := os.Open(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, recs, err := format.ReadBatchJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = p.Outbound.Render(&out, b, recs)
	if err != nil {
		compareGolden(t, filepath.Join(dir, "expected.err"), []byte(err.Error()+"\n"), filepath.Join(dir, "expected.out"))
		return
	}
	compareGolden(t, filepath.Join(dir, "expected.out"), out.Bytes(), filepath.Join(dir, "expected.err"))
}

func goldenParse(t *testing.T, p *Profile, dir string) {
	f, err := os.Open(filepath.Join(dir, "input"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := goldenParsed{Results: []goldenResult{}}
	sum, err := p.Return.Parse(f, func(r format.Result) error {
		reason := p.Classify(r.Code, r.Message)
		got.Results = append(got.Results, goldenResult{Result: r, Reason: reason, Class: reason.Class()})
		return nil
	})
	if err != nil {
		compareGolden(t, filepath.Join(dir, "expected.err"), []byte(err.Error()+"\n"), filepath.Join(dir, "expected.json"))
		return
	}
	got.Summary = sum
	js, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, filepath.Join(dir, "expected.json"), append(js, '\n'), filepath.Join(dir, "expected.err"))
}

// compareGolden checks got against the golden file; with -update it writes
// it (and removes the other outcome's file, other).
func compareGolden(t *testing.T, path string, got []byte, other string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(other)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		if _, e2 := os.Stat(other); e2 == nil {
			t.Fatalf("got %s, but the case expects %s:\n%s", filepath.Base(path), filepath.Base(other), got)
		}
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
