package gateway

import "yktgw/internal/failpoint"

// Crash points honoured with YKT_FAILPOINT=<name>: the process dies (SIGKILL)
// the first time it reaches the point. The names live in internal/failpoint
// so that plugins can reach them too; this is the one list, and the README
// repeats it.
const (
	FPIntakeCommitted         = failpoint.IntakeCommitted
	FPSealedBeforeSend        = failpoint.SealedBeforeSend
	FPMidUpload               = failpoint.MidUpload
	FPUploadedBeforeRename    = failpoint.UploadedBeforeRename
	FPRenamedBeforeSpoolKnows = failpoint.RenamedBeforeSpoolKnows
	FPMidFeedbackApply        = failpoint.MidFeedbackApply
	FPFeedbackBeforeArchive   = failpoint.FeedbackBeforeArchive
)

// Failpoints lists every crash point, in the order a batch meets them.
var Failpoints = []string{FPIntakeCommitted, FPSealedBeforeSend, FPMidUpload, FPUploadedBeforeRename,
	FPRenamedBeforeSpoolKnows, FPMidFeedbackApply, FPFeedbackBeforeArchive}

func hit(name string) { failpoint.Hit(name) }
