package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yktgw/banks"
)

func TestFileRenderAndParse(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pay.txt")
	if code := execute([]string{"file", "render", "--profile", "../../testdata/banks/pipe", "--batch",
		"../../testdata/banks/pipe/render_all/batch.json", "--out", out}); code != 0 {
		t.Fatalf("render exit %d", code)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../testdata/banks/pipe/render_all/expected.out")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rendered file differs from the golden file")
	}
	// A refused record leaves no file behind.
	bad := filepath.Join(dir, "bad.txt")
	if code := execute([]string{"file", "render", "--profile", "../../testdata/banks/rcc/profile.yaml", "--batch",
		"../../testdata/banks/rcc/render_nonbmp/batch.json", "--out", bad}); code != 1 {
		t.Fatalf("render of an unencodable name: exit %d, want 1", code)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a refused render left %s", bad)
	}
}

func TestFileParseOutput(t *testing.T) {
	p, err := banks.LoadProfile("../../testdata/banks/demo")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../testdata/banks/demo/mixed_failures/input")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stdout, stderr bytes.Buffer
	if err := runFileParse(p, f, false, false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[4], `{"summary":{"count":4,`) {
		t.Fatalf("output:\n%s", stdout.String())
	}
	if !strings.Contains(lines[1], `"reason":"NAME_MISMATCH"`) || !strings.Contains(lines[1], `"account":"6228***********0018"`) {
		t.Fatalf("line 2: %s", lines[1])
	}
	if strings.Contains(stdout.String(), "6228480402564890018") {
		t.Fatal("account number printed unmasked")
	}

	g, err := os.Open("../../testdata/banks/demo/truncated/input")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	stdout.Reset()
	err = runFileParse(p, g, false, false, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("malformed file: %v, want exit 2", err)
	}
	if !strings.Contains(stderr.String(), "line 4: bad_encoding") || strings.Contains(stdout.String(), "summary") {
		t.Fatalf("stderr:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
	}
}

func TestMaskDigits(t *testing.T) {
	for in, want := range map[string]string{"11010519491231002X": "1101**********002X", "6222": "6222", "": ""} {
		if got := maskDigits(in, 4, 4); got != want {
			t.Errorf("maskDigits(%q) = %q, want %q", in, got, want)
		}
	}
}
