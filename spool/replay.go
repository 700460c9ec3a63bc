package spool

import (
	"context"
	"time"
)

// Replay is an ops request to send a DEAD delivery again (maker-checker
// above a configured amount). It is carried out only after the bank side
// was asked whether the file arrived (money rule 5), under the same bank
// batch number and the same sealed file.
type Replay struct {
	ID          int64
	DeliveryID  int64
	BatchID     string
	Bank        string
	BankBatchNo string
	TotalFen    int64
	State       string // PENDING_APPROVAL | APPROVED | DONE | REFUSED
	Reason      string
	RequestedBy string
	ApprovedBy  string
	Outcome     string
	CreatedAt   time.Time
	DecidedAt   time.Time
}

// Replay states.
const (
	ReplayPending  = "PENDING_APPROVAL"
	ReplayApproved = "APPROVED"
	ReplayDone     = "DONE"
	ReplayRefused  = "REFUSED"
)

// ReplayStore keeps replay requests. *sqlite.Store implements it.
type ReplayStore interface {
	// RequestReplay records a request for a DEAD delivery (ErrStale if it
	// is not DEAD, ErrConflict if a request for it is still open).
	RequestReplay(ctx context.Context, deliveryID int64, reason, by string, needsApproval bool) (*Replay, error)
	// ApproveReplay approves a pending request; the approver must not be
	// the requester (ErrConflict).
	ApproveReplay(ctx context.Context, id int64, by string) (*Replay, error)
	// FinishReplay closes an approved request after the bank was asked:
	// to = SEALED (not arrived: send again), PLANNED (never sealed: render
	// again), SENT (it had arrived) or "" (refused: the delivery stays DEAD),
	// moving the delivery and, for a DEAD batch, the batch back to SENDING,
	// in one transaction with an audit event.
	FinishReplay(ctx context.Context, id int64, to DeliveryState, outcome string) (*Replay, error)
	Replay(ctx context.Context, id int64) (*Replay, error)
	Replays(ctx context.Context, state string, limit int) ([]Replay, error)
}
