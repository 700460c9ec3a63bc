// Package banks owns what yktgw knows about paying banks: the Channel
// interface that moves sealed files or messages to a bank and brings its
// feedback back, the plugin registry channels register with, the bank
// profiles and the normalized failure reasons.
//
// A channel only moves bytes and reports what the far side said. It must
// not keep delivery state, retry on its own, decide what to re-send or
// touch the spool: state, retries, idempotency and ordering live in
// gateway and spool. Plugins live in banks/<name>, register themselves in
// init() and are compiled in by banks/all; every plugin passes the
// conformance suite in banks/banktest.
package banks

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// Outbound is one sealed file (or message) for a bank, as the gateway hands
// it to a Channel. The bytes are already rendered, signed and sealed; a
// channel never looks inside them.
type Outbound struct {
	// Bank is the bank profile code.
	Bank string
	// BankBatchNo is our batch number, unique per bank and never reused.
	// It is the idempotency key (file name stem, message id) on the far side.
	BankBatchNo string
	// Name is the final remote file name (a base name, no directories).
	Name string
	// Size is the exact length of the sealed bytes.
	Size int64
	// SM3 is the SM3 digest of the sealed bytes. A channel verifies the
	// bytes it read from Open against Size and SM3 before committing them.
	SM3 [32]byte
	// Open returns a fresh reader over the sealed bytes from the start
	// (a spool file). It may be called more than once.
	Open func() (io.ReadCloser, error)
}

// LogValue keeps log lines short; an Outbound holds no personal data.
func (o *Outbound) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bank", o.Bank),
		slog.String("bank_batch_no", o.BankBatchNo),
		slog.String("name", o.Name),
		slog.Int64("size", o.Size),
	)
}

// Receipt is what the far side confirmed for a Send.
type Receipt struct {
	// Ref is the far side's reference: the final remote path for file
	// channels, a message or transaction id for message channels.
	Ref string
	// Size is the size the far side reports having (equal to Outbound.Size
	// on success).
	Size int64
	// At is the far side's time for the delivery when it reports one
	// (remote modification time), else the local time of confirmation.
	At time.Time
}

// FeedbackRef names one feedback item on the far side: a return file (ID
// is the file's base name) or a message (ID is the message id).
type FeedbackRef struct {
	ID      string
	Size    int64
	ModTime time.Time
}

// Channel moves sealed files to one bank and brings its feedback back.
//
// Every method takes a context; a cancelled or expired context makes the
// method return promptly with an error that wraps ctx.Err() (and, for
// Send, also ErrOutcomeUnknown when the cancellation hit the commit step).
// Errors wrap the sentinels in errors.go where they apply:
//
//   - ErrHostKey, ErrAuth: permanent, from any method that connects;
//   - ErrNotFound: OpenFeedback and AckFeedback of a reference that is not
//     there (AckFeedback of an already archived one is not an error);
//   - ErrOutcomeUnknown: Send only, the file may or may not have landed;
//   - ErrConflict: Send only, the final name already holds other bytes;
//   - ErrClosed: any method after Close.
//
// Transient failures (network, timeouts) satisfy IsRetryable. Any other
// error is permanent. A Channel is safe for concurrent use; its
// implementation bounds its own concurrency.
type Channel interface {
	// Send delivers o under its final name so that the bank can never see
	// a partial file: the bytes go to a temporary name first, are checked
	// against o.Size and o.SM3, and are then renamed; the final size is
	// checked after the rename. If the final name already holds exactly
	// these bytes (same size and SM3, or same size where the far side does
	// not allow reading back), Send returns a Receipt without uploading
	// again; if it holds other bytes, ErrConflict. Send never overwrites.
	Send(ctx context.Context, o *Outbound) (Receipt, error)

	// ListFeedback lists the feedback that is ready to be fetched: for file
	// channels, files matching the feedback pattern that are old enough and
	// not growing. Order is by name. Items already acknowledged are not
	// listed.
	ListFeedback(ctx context.Context) ([]FeedbackRef, error)

	// OpenFeedback opens one listed item for reading. The reader honours
	// ctx until it is closed; the caller must close it. ErrNotFound when
	// the item is gone.
	OpenFeedback(ctx context.Context, ref FeedbackRef) (io.ReadCloser, error)

	// AckFeedback tells the far side the item has been applied (files are
	// moved to the archive directory, messages acked). It is idempotent:
	// acknowledging an already acknowledged item returns nil. The gateway
	// calls it only after the feedback is committed in the spool.
	AckFeedback(ctx context.Context, ref FeedbackRef) error

	// Close releases connections. Later calls return ErrClosed. Close is
	// idempotent.
	Close() error
}

// ProbeResult is the far side's answer to "did this delivery arrive?".
type ProbeResult int

const (
	// ProbeUnknown: the far side could not be asked or could not say.
	ProbeUnknown ProbeResult = iota
	// ProbeNotArrived: provably not there; re-send under the same
	// BankBatchNo and name is safe.
	ProbeNotArrived
	// ProbeArrived: there, same size and (where readable) same SM3.
	ProbeArrived
	// ProbeMismatch: something is there under the name but with another
	// size or SM3; ops must look.
	ProbeMismatch
)

// String returns the lower-case name of r.
func (r ProbeResult) String() string {
	switch r {
	case ProbeUnknown:
		return "unknown"
	case ProbeNotArrived:
		return "not_arrived"
	case ProbeArrived:
		return "arrived"
	case ProbeMismatch:
		return "mismatch"
	}
	return "ProbeResult(" + strconv.Itoa(int(r)) + ")"
}

// Prober is the optional ability to ask the bank side whether a delivery
// arrived (money rule 5). The gateway asks it after a crash or an
// ErrOutcomeUnknown before anything is re-sent. On error the result is
// ProbeUnknown.
type Prober interface {
	Probe(ctx context.Context, o *Outbound) (ProbeResult, error)
}

// Pinger is the optional ability to check that the far side is reachable
// and our credentials and pins still work, without moving any data.
type Pinger interface {
	Ping(ctx context.Context) error
}
