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
	FPPublishedBeforeConfirm  = failpoint.PublishedBeforeConfirm
	FPRenamedBeforeSpoolKnows = failpoint.RenamedBeforeSpoolKnows
	FPMidFeedbackApply        = failpoint.MidFeedbackApply
	FPFeedbackBeforeArchive   = failpoint.FeedbackBeforeArchive
)

// Failpoints lists every crash point, in the order a batch meets them.
var Failpoints = []string{FPIntakeCommitted, FPSealedBeforeSend, FPMidUpload, FPUploadedBeforeRename,
	FPPublishedBeforeConfirm, FPRenamedBeforeSpoolKnows, FPMidFeedbackApply, FPFeedbackBeforeArchive}

// ChannelFailpoints names the crash points only one channel kind reaches
// (its plugin calls them); the others are reached on every channel.
var ChannelFailpoints = map[string]string{
	FPMidUpload:              "sftp",
	FPUploadedBeforeRename:   "sftp",
	FPPublishedBeforeConfirm: "amqp",
}

func hit(name string) { failpoint.Hit(name) }
