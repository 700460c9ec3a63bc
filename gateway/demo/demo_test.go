package demo

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "yktgw/banks/all"
)

// The demo runs the whole path (real SFTP to the simulator, real HTTP API,
// SQLite spool) and reconciles; its line is what `make demo` prints.
func TestDemoReconciles(t *testing.T) {
	r, err := Run(context.Background(), Options{Records: 1500, FailRate: 0.1, Seed: 7,
		Root: "../..",
		Dir:  t.TempDir(), Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Reconciled {
		t.Fatalf("not reconciled: %s", r.Why)
	}
	if r.Paid+r.Failed != 1500 || r.Failed == 0 || r.Paid == 0 || r.Unknown != 0 || r.PaidFen+r.FailedFen != r.TotalFen {
		t.Fatalf("result %+v", r)
	}
	if r.SimAccepted != r.Deliveries || r.SimDuplicates != 0 || r.SimPaidFen != r.PaidFen {
		t.Fatalf("bank side %+v", r)
	}
	line := r.Line()
	if !strings.HasPrefix(line, "demo: records=1500 paid=") || !strings.HasSuffix(line, "unknown=0 paid_fen="+itoa(r.PaidFen)+" failed_fen="+itoa(r.FailedFen)+" reconciled=true") {
		t.Fatalf("line %q", line)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
