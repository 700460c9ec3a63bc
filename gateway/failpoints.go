package gateway

import "yktgw/internal/failpoint"

// Crash points honoured with YKT_FAILPOINT=<name>: the process dies (SIGKILL)
// the first time it reaches the point. The README lists the same names.
const (
	// FPIntakeCommitted: the batch is committed in the spool, the HTTP reply not yet written.
	FPIntakeCommitted = "intake-committed"
)

// Failpoints lists every crash point, for docs and tests.
var Failpoints = []string{FPIntakeCommitted}

func hit(name string) { failpoint.Hit(name) }
