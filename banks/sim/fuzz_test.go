package sim

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReturnName: any feedback pattern and stem either give a name that
// matches the pattern (so the gateway lists it), is a plain file name and
// carries the stem, or an error; never a panic.
func FuzzReturnName(f *testing.F) {
	for _, s := range [][2]string{
		{"DEMO_RET_*.txt.p7", "B0001"}, {"RET_??_*_*.txt", "X"}, {"R[AB]_*", "7"}, {`R\*_*`, "7"},
		{"R[^A]_*", "X"}, {"RET.txt", "X"}, {"*", "../x"}, {"[", ""}, {`*\`, "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, stem string) {
		name, err := returnName(pattern, stem)
		if err != nil {
			return
		}
		if ok, merr := path.Match(pattern, name); merr != nil || !ok {
			t.Fatalf("returnName(%q, %q) = %q does not match", pattern, stem, name)
		}
		if !strings.Contains(name, safeName(stem)) {
			t.Fatalf("returnName(%q, %q) = %q lost the stem", pattern, stem, name)
		}
	})
}

// FuzzBatchNoFromName: a name made from a file name template gives back
// the bank batch number it was made with.
func FuzzBatchNoFromName(f *testing.F) {
	for _, s := range [][3]string{
		{"DEMO_PAY_{bank_batch_no}.txt.p7", "B0001", "x"},
		{"{code}_{date}_{bank_batch_no}_{file_seq:3}.dat", "X9", "001"},
		{"{bank_batch_no}", "a.b-c", ""},
		{"{bank_batch_no}{bank_batch_no}", "Q", ""},
		{"P{period}{bank_batch_no}", "7", "2026-11"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, tmpl, bbn, other string) {
		get := batchNoFromName(tmpl)
		bbn, other = safeName(bbn), safeName(other)
		if bbn == "" || !utf8.ValidString(tmpl) || strings.Count(tmpl, "{bank_batch_no}") != 1 || strings.ContainsAny(placeholderRE.ReplaceAllString(tmpl, ""), "{}") {
			_ = get(bbn) // anything goes, but no panic
			return
		}
		name := placeholderRE.ReplaceAllStringFunc(tmpl, func(ph string) string {
			if ph == "{bank_batch_no}" {
				return bbn
			}
			return other
		})
		got := get(name)
		if got == "" {
			t.Fatalf("template %q, name %q: no bank batch number", tmpl, name)
		}
		if !strings.Contains(name, got) {
			t.Fatalf("template %q, name %q: got %q", tmpl, name, got)
		}
	})
}
