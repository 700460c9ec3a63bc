// Package failpoint lets tests crash the real binary at a named point:
// with YKT_FAILPOINT=<name> the process kills itself with SIGKILL the first
// time it reaches Hit(name), exactly as `kill -9` would. The names are listed
// in gateway (failpoints.go) and in the README. Without the variable Hit costs
// one string comparison.
package failpoint

import (
	"os"
	"syscall"
)

// The crash points. gateway.Failpoints lists them all; the README too.
const (
	IntakeCommitted         = "intake-committed"                  // batch committed in the spool, HTTP reply not yet written
	SealedBeforeSend        = "sealed-before-send"                // sealed file and SEALED state committed, nothing sent
	MidUpload               = "mid-upload"                        // about half of the sealed bytes written to the bank's temporary name
	UploadedBeforeRename    = "uploaded-before-rename"            // temporary file complete on the bank side, not yet renamed
	PublishedBeforeConfirm  = "published-before-confirm"          // AMQP: the batch message published to the broker, its confirm not yet received
	RenamedBeforeSpoolKnows = "renamed-before-spool-knows"        // final name in place at the bank, the spool still says SENDING
	MidFeedbackApply        = "mid-feedback-apply"                // half of a return file's results inserted, transaction open
	FeedbackBeforeArchive   = "feedback-committed-before-archive" // return file applied and committed, not yet archived at the bank
)

// Env is the variable that arms a failpoint.
const Env = "YKT_FAILPOINT"

var armed = os.Getenv(Env)

// Hit dies at once if name is the armed failpoint.
func Hit(name string) {
	if armed == "" || armed != name {
		return
	}
	os.Stderr.WriteString("failpoint " + name + ": SIGKILL\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}

// Armed returns the armed failpoint name ("" when none).
func Armed() string { return armed }
