package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func addRecordSeeds(f *testing.F) {
	for _, c := range recordCases {
		f.Add([]byte(c))
	}
	recs := genLines(f, 20)
	f.Add(recs)
	for line := range bytes.Lines(recs) {
		f.Add(bytes.TrimSpace(line))
	}
}

// FuzzRecordJSON: whatever the fast decoder takes (the object at the start
// of the input), encoding/json decodes to the same record without error (DisallowUnknownFields, as intake reads).
// What it declines goes to encoding/json anyway.
func FuzzRecordJSON(f *testing.F) {
	addRecordSeeds(f)
	var scratch []byte
	f.Fuzz(func(t *testing.T, v []byte) {
		var got, want recordJSON
		n := decodeRecordFast(v, &got, &scratch)
		if n <= 0 {
			return
		}
		got = copyRecord(&got)
		v = v[:n]
		if !json.Valid(v) {
			t.Fatalf("took invalid JSON %q", v)
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("took %q, encoding/json: %v", v, err)
		}
		if !sameRecord(got, want) {
			t.Fatalf("%q: %+v, want %+v", v, got, want)
		}
	})
}

// FuzzRecordStream: walkRecords reads any body to the same records, errors
// and end as one json.Decoder over the body did.
func FuzzRecordStream(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkWalk(t, body)
	})
}
