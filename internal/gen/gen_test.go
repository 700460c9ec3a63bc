package gen

import (
	"testing"
	"time"

	"yktgw/gateway/validate"
)

func TestPeopleAreValidAndDistinct(t *testing.T) {
	seen := map[string]int{}
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 200000; i += 7 {
		name, id, acct := Person(i)
		if _, err := validate.NormalizeName(name); err != nil {
			t.Fatalf("person %d name %q: %v", i, name, err)
		}
		if got, err := validate.NormalizeIDNumberAt(id, now); err != nil || got != id {
			t.Fatalf("person %d id: %v", i, err)
		}
		if _, err := validate.NormalizeAccount(acct, "card"); err != nil || !validate.Luhn(acct) {
			t.Fatalf("person %d account invalid: %v", i, err)
		}
		if j, dup := seen[id]; dup {
			t.Fatalf("persons %d and %d share an ID number", j, i)
		}
		seen[id] = i
	}
}
