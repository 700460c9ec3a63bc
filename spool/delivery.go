package spool

import (
	"context"
	"fmt"
	"time"
)

// DeliveryState is the life of one file (or message) for a bank.
//
//	PLANNED -> SEALED -> SENDING -> SENT
//	              ^         |
//	              +---------+ (retry later: the send provably did not land)
//	SENDING -> DEAD, SEALED -> DEAD, PLANNED -> DEAD (gave up; ops decides)
//	DEAD -> SEALED | SENT | PLANNED (ops replay, after the bank side was asked:
//	                                  not arrived | arrived | never sealed)
//
// A delivery found in SENDING at start-up may or may not have reached the
// bank: the dispatcher asks the bank side before anything is re-sent
// (money rule 5).
type DeliveryState string

const (
	DeliveryPlanned DeliveryState = "PLANNED"
	DeliverySealed  DeliveryState = "SEALED"
	DeliverySending DeliveryState = "SENDING"
	DeliverySent    DeliveryState = "SENT"
	DeliveryDead    DeliveryState = "DEAD"
)

var deliveryNext = map[DeliveryState][]DeliveryState{
	DeliveryPlanned: {DeliverySealed, DeliveryDead},
	DeliverySealed:  {DeliverySending, DeliveryDead},
	DeliverySending: {DeliverySent, DeliverySealed, DeliveryDead},
	DeliveryDead:    {DeliverySealed, DeliverySent, DeliveryPlanned},
}

// CheckDelivery reports whether a delivery may move between two states.
func CheckDelivery(from, to DeliveryState) error {
	for _, s := range deliveryNext[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: delivery %s -> %s", ErrTransition, from, to)
}

// Delivery is one file for a bank: part or all of a platform batch.
type Delivery struct {
	ID          int64
	BatchID     string
	Bank        string
	BankBatchNo string // ours, unique per bank, never reused
	FileSeq     int
	FirstSeq    int // records [FirstSeq, LastSeq] of the batch
	LastSeq     int
	Count       int
	TotalFen    int64
	FileName    string // final remote name, set when sealed
	SealedPath  string // spool file holding the sealed bytes
	Size        int64
	SM3         []byte
	State       DeliveryState
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Receipt     string
	SentAt      time.Time
	DeadlineAt  time.Time // feedback due; records still SENT after it become UNKNOWN
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DeliveryFilter selects deliveries.
type DeliveryFilter struct {
	States  []DeliveryState
	BatchID string
	Bank    string
	DueBy   time.Time // NextAttempt <= DueBy (zero: any)
	Limit   int
}

// DeliveryChange is one transition of a delivery with what it records.
type DeliveryChange struct {
	ID   int64
	From DeliveryState
	To   DeliveryState
	// Sealed: file name, spool path, size and SM3 (PLANNED -> SEALED).
	FileName   string
	SealedPath string
	Size       int64
	SM3        []byte
	// Attempt bookkeeping: SEALED -> SENDING counts an attempt.
	NextAttempt time.Time
	Error       string
	// Sent: the far side's receipt and the feedback deadline (-> SENT).
	Receipt    string
	SentAt     time.Time
	DeadlineAt time.Time
	Event      Event
}

// ResultRow is one record's outcome from a bank return file, matched to its seq.
type ResultRow struct {
	Seq         int
	Paid        bool
	AmountFen   int64 // processed amount as the bank says
	Reason      string
	BankCode    string
	BankMessage string
	BankSerial  string
}

// FeedbackFile identifies a bank return file (or message) in the spool.
type FeedbackFile struct {
	ID          int64
	Bank        string
	Name        string
	Size        int64
	SM3         []byte
	State       string // APPLIED | DUPLICATE | ANOMALY
	DeliveryID  int64
	BankBatchNo string
	Detail      string
	At          time.Time
}

// Anomaly is a reason a return file was not applied.
type Anomaly struct {
	Seq     int
	Kind    string // unknown_batch_no, unknown_record, duplicate_result, conflicting_result, amount_mismatch, missing_results, sum_mismatch, parse
	Message string
}

// ApplyResult is what applying one return file did.
type ApplyResult struct {
	Duplicate  bool // the same bytes were applied before: nothing changed
	Anomalies  []Anomaly
	DeliveryID int64
	BatchID    string
	Paid       int
	PaidFen    int64
	Failed     int
	FailedFen  int64
	Resolved   int  // UNKNOWN records the bank's word resolved
	Settled    bool // the batch became SETTLED
}

// Alarm is something ops must look at.
type Alarm struct {
	ID         int64
	At         time.Time
	Kind       string // dead_delivery, feedback_anomaly, feedback_overdue, probe_mismatch, ...
	Bank       string
	BatchID    string
	DeliveryID int64
	Detail     string
	ResolvedAt time.Time
}

// Feedback describes a return file being applied.
type Feedback struct {
	Bank        string
	Name        string
	Size        int64
	SM3         []byte
	BankBatchNo string
	// BadReasons are the normalized reasons whose accounts are remembered
	// (closed, dormant, frozen ...) and flagged in later batches.
	BadReasons map[string]bool
}

// DeliveryStore is the part of the spool the dispatcher and the reconciler use.
type DeliveryStore interface {
	// PlanDeliveries splits a QUEUED batch into deliveries of at most
	// maxPerFile records, allocating each a bank batch number from the
	// bank's never-reused counter (name formats it), and moves the batch to
	// SENDING, in one transaction.
	PlanDeliveries(ctx context.Context, batchID string, maxPerFile int, name func(bank string, n int64) string, ev Event) ([]Delivery, error)
	Delivery(ctx context.Context, id int64) (*Delivery, error)
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// ChangeDelivery applies one checked transition with its bookkeeping
	// and one audit event. Moving to SENT also moves the delivery's
	// records PENDING -> SENT and the batch SENDING -> SENT once every
	// delivery is SENT; moving to DEAD moves the batch to DEAD and raises
	// an alarm.
	ChangeDelivery(ctx context.Context, c DeliveryChange) error
	// RecordRange calls fn for the batch's records with FirstSeq <= seq <=
	// LastSeq in seq order, streaming.
	RecordRange(ctx context.Context, batchID string, first, last int, fn func(*Record) error) error

	// FeedbackByDigest finds an applied or refused return file of the bank
	// with the same SM3 (any name).
	FeedbackByDigest(ctx context.Context, bank string, sm3 []byte) (*FeedbackFile, error)
	// ApplyFeedback applies one return file in one transaction: produce
	// streams the parsed, seq-matched rows; any anomaly (or an error from
	// produce) rolls everything back, records the file as ANOMALY and
	// raises an alarm. Otherwise records move SENT|UNKNOWN -> PAID|FAILED,
	// accounts with bad reasons are remembered, the file is recorded as
	// APPLIED and the batch is SETTLED when every record is final.
	ApplyFeedback(ctx context.Context, f Feedback, produce func(add func(ResultRow) error) error) (ApplyResult, error)
	// ExpireOverdue moves records still SENT in deliveries whose feedback
	// deadline passed to UNKNOWN, with an alarm per delivery.
	ExpireOverdue(ctx context.Context, now time.Time) ([]Delivery, error)
	// BadAccounts returns, for a batch, the seqs whose account was reported
	// closed/dormant/frozen before, with the reason.
	BadAccounts(ctx context.Context, batchID string) (map[int]string, error)

	RaiseAlarm(ctx context.Context, a Alarm) error
	Alarms(ctx context.Context, openOnly bool, limit int) ([]Alarm, error)
}
