package banks

import (
	"testing"
)

func TestLoadShippedProfiles(t *testing.T) {
	for _, dir := range []string{"rcc", "pipe", "xml", "demo"} {
		p, err := LoadProfile("../testdata/banks/" + dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if p.Outbound == nil || p.Return == nil {
			t.Fatalf("%s: layouts missing", dir)
		}
	}
}
