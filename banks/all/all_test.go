package all

import (
	"slices"
	"testing"

	"yktgw/banks"
)

func TestPluginsRegistered(t *testing.T) {
	for _, name := range []string{"sftp"} {
		p, ok := banks.Lookup(name)
		if !ok {
			t.Errorf("plugin %q not registered (have %v)", name, banks.Names())
			continue
		}
		if len(p.Options) == 0 || p.New == nil {
			t.Errorf("plugin %q has no options or constructor", name)
		}
	}
	if !slices.IsSorted(banks.Names()) {
		t.Error("Names not sorted")
	}
}
