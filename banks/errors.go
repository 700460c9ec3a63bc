package banks

import "errors"

// Sentinel errors a Channel returns (wrapped, test with errors.Is). The
// conformance suite in banks/banktest checks them.
var (
	// ErrNotFound: the named feedback (file or message) does not exist on
	// the far side. Permanent for that reference.
	ErrNotFound = errors.New("banks: not found")

	// ErrHostKey: the far side presented a host key (or TLS certificate)
	// that is unknown or differs from the pinned one. Permanent: ops must
	// check the bank's new key and pin it; never retried automatically.
	ErrHostKey = errors.New("banks: host key not pinned or mismatched")

	// ErrAuth: the far side refused our credentials. Permanent.
	ErrAuth = errors.New("banks: authentication refused")

	// ErrOutcomeUnknown: a Send may or may not have landed (the connection
	// failed or the context ended after the bytes were complete, while the
	// file was being committed under its final name). The gateway must ask
	// the bank side (Prober) before anything is re-sent (money rule 5).
	// Such an error is often Retryable as well; ErrOutcomeUnknown wins.
	ErrOutcomeUnknown = errors.New("banks: delivery outcome unknown")

	// ErrConflict: the final name already holds other content on the far
	// side. Permanent; ops must look (never overwritten by a plugin).
	ErrConflict = errors.New("banks: remote name holds other content")

	// ErrClosed: the Channel was closed.
	ErrClosed = errors.New("banks: channel closed")
)

// Retryable is the classification interface for transient errors (network
// down, timeout, connection reset): errors.As(err, &r) with r Retryable and
// r.Retryable() == true means the same call may be retried later as is.
// Errors that do not implement it are permanent. For Send, check
// ErrOutcomeUnknown first: a retryable error on an unknown outcome still
// needs a Probe before the re-send.
type Retryable interface {
	Retryable() bool
}

// transientError marks an error as retryable.
type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Retryable() bool { return true }

// Transient wraps err so that IsRetryable reports true. Plugins wrap
// network failures and timeouts with it. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsRetryable reports whether err (or anything it wraps) says it is
// retryable.
func IsRetryable(err error) bool {
	var r Retryable
	return errors.As(err, &r) && r.Retryable()
}
