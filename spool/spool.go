// Package spool owns yktgw's durable state: batches, records, deliveries, results,
// API tokens and the audit chain, behind the Store interface, and the state machine
// that every Store enforces (state.go).
//
// A Store persists what it is given and answers queries; it never validates
// business content (that is gateway's job) and never sees personal data in clear:
// names, ID numbers and account numbers arrive already encrypted, with keyed blind
// indexes for the lookups the money rules need. Everything a Store acknowledges is
// committed (fsync'd) before the call returns.
//
// Implementations: spool/sqlite (embedded, the default). Every implementation passes
// spool/spooltest.
package spool

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them; callers use errors.Is.
var (
	ErrNotFound   = errors.New("spool: not found")
	ErrConflict   = errors.New("spool: conflict")                 // unique key taken by other content
	ErrTransition = errors.New("spool: illegal transition")       // see state.go
	ErrStale      = errors.New("spool: state changed underneath") // the row was not in the expected state
	ErrClosed     = errors.New("spool: closed")
)

// BatchState is the life of a platform batch (DESIGN.md "Core types").
type BatchState string

const (
	BatchStaging   BatchState = "STAGING" // internal: records still streaming in; invisible to everyone
	BatchReceived  BatchState = "RECEIVED"
	BatchQueued    BatchState = "QUEUED"
	BatchSending   BatchState = "SENDING"
	BatchSent      BatchState = "SENT"
	BatchSettled   BatchState = "SETTLED"
	BatchCancelled BatchState = "CANCELLED"
	BatchDead      BatchState = "DEAD"
)

// RecordState is the life of one payment record.
type RecordState string

const (
	RecordStaged    RecordState = "STAGED" // internal: a reissue in a STAGING batch (other staged records are PENDING under the STAGING batch)
	RecordPending   RecordState = "PENDING"
	RecordSent      RecordState = "SENT"
	RecordPaid      RecordState = "PAID"
	RecordFailed    RecordState = "FAILED"
	RecordUnknown   RecordState = "UNKNOWN"
	RecordCancelled RecordState = "CANCELLED"
)

// Batch is a platform batch as the spool keeps it.
type Batch struct {
	BatchID     string // the platform's id, unique, the idempotency key
	Tenant      string // division code
	Bank        string // bank profile code
	SubsidyCode string
	SubsidyName string
	Period      string
	Memo        string
	TotalCount  int
	TotalFen    int64
	ContentHash []byte // SM3 of the canonical content (idempotency, money rule 3)
	State       BatchState
	Warnings    []byte // JSON array of validation warnings returned with the 201
	SubmittedBy string // token id
	// ReissueOf is the batch whose FAILED records this batch pays again
	// (money rule 6); each record names its original in ReissueOfSeq.
	ReissueOf string
	// Body names the batch's pre-rendered, sealed detail lines in the spool
	// directory (written at intake; a cache the dispatcher may use instead of
	// reading every record; empty: none).
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Record is one payment line. Personal fields are ciphertexts (gateway encrypts
// them); the indexes are keyed blind indexes. The fields come in one of two
// layouts, which the store keeps as given: FieldsEnc (one ciphertext of all
// three, records accepted since spool migration 0014) or, when FieldsEnc is
// empty, NameEnc, IDEnc and AccountEnc (one each, older records).
type Record struct {
	Seq          int
	FieldsEnc    []byte
	NameEnc      []byte
	IDEnc        []byte
	AccountEnc   []byte
	IDIndex      []byte // blind index of the ID number
	AccountIndex []byte // blind index of the account number
	// DedupeKey identifies (person, subsidy, period). At most one record with a
	// given key may be PENDING, SENT, PAID or UNKNOWN across the whole spool
	// (money rule 4); the store enforces it itself as a backstop (SQLite: the
	// dedupe_active table, kept by triggers, with the key as primary key).
	DedupeKey   []byte
	AccountKind string
	AmountFen   int64
	Remark      string
	State       RecordState
	// ReissueOfSeq is the seq, in the batch's ReissueOf, of the FAILED
	// record this one pays again (0: not a reissue).
	ReissueOfSeq int
	// ReissuedBy is the record (batch id and seq) that reissued this one, if any.
	ReissuedByBatch string
	ReissuedBySeq   int

	// Result, once the bank has spoken.
	Reason      string
	BankCode    string
	BankMessage string
	BankSerial  string
	ResultAt    time.Time
}

// BatchHeader is what intake knows before the records stream in.
type BatchHeader = Batch

// Conflict is a record refused by the duplicate guards at Finalize.
type Conflict struct {
	Seq int
	// Kind: "in_batch" (same person twice in this batch), "cross_batch"
	// (money rule 4), "reissue_unknown" (no such original record),
	// "reissue_not_failed" (the original is not FAILED: money rule 6),
	// "reissue_twice" (the original was reissued already).
	Kind       string
	OtherBatch string // the batch holding the active record (cross_batch) or this batch
	OtherSeq   int
	OtherState RecordState
}

// SharedAccount is a warning: one account used by several ID numbers in this batch.
type SharedAccount struct {
	Seqs []int // the records sharing it, ascending
}

// FinalizeResult is what the duplicate guards found.
type FinalizeResult struct {
	Conflicts        []Conflict      // non-empty: nothing was committed, the stage is gone
	SharedAccounts   []SharedAccount // warnings
	PreviouslyFailed []int           // seqs whose person had a FAILED record for the same subsidy/period (warning)
	// BadAccounts: seqs whose account a bank reported closed, dormant,
	// frozen ... before (warning), with that reason.
	BadAccounts []SeqReason
}

// SeqReason is a record and a reason.
type SeqReason struct {
	Seq    int
	Reason string
}

// Stage receives a batch's records in chunks, invisibly, then makes the batch
// visible in one transaction (Finalize) or removes every trace (Abort). A crash
// before Finalize leaves a stage that Open's recovery removes.
type Stage interface {
	// Add appends records; seqs must be unique within the stage.
	Add(ctx context.Context, recs []Record) error
	// Finalize runs the duplicate guards (money rule 4 across batches and the
	// same person twice within the batch) and, if none fires, stores the final
	// header (b's counts, hash, warnings) and moves the batch to RECEIVED with one
	// audit event, atomically. If batch_id already exists it returns ErrConflict
	// (wrapping) and removes the stage; callers compare hashes first.
	// With conflicts it removes the stage and returns them with a nil error.
	// warnings, if not nil, is called inside the transaction with the guards'
	// findings and returns the JSON stored as b.Warnings.
	Finalize(ctx context.Context, b *Batch, actor string, warnings func(FinalizeResult) []byte) (FinalizeResult, error)
	// Abort removes the stage and its records. Safe to call after Finalize.
	Abort(ctx context.Context) error
}

// RecordFilter pages through a batch's records in seq order.
type RecordFilter struct {
	State    RecordState // "" = all
	AfterSeq int
	Limit    int
}

// BatchFilter lists batches.
type BatchFilter struct {
	Tenants []string // prefixes; nil = all
	State   BatchState
	Limit   int
	Before  string // batch_id cursor: list batches created before this one
}

// StateCount is a per-state tally of a batch's records.
type StateCount struct {
	State RecordState
	Count int
	Fen   int64
}

// Token is an API token; only its hash is stored.
type Token struct {
	ID        string // public part, appears in the token string
	Name      string
	Hash      []byte // SM3 of the secret part
	Tenants   []string
	Roles     []string
	CreatedAt time.Time
	RevokedAt time.Time // zero while valid
}

// Event is an audit event before it is chained.
type Event struct {
	Actor   string // token id, "system", or an OS user for CLI actions
	Action  string // e.g. "batch.received", "batch.cancelled", "token.created"
	Subject string // e.g. batch id
	Reason  string
	Detail  []byte // JSON, never personal data in clear
}

// AuditEntry is a chained, stored event.
type AuditEntry struct {
	Seq int64
	At  time.Time
	Event
	Prev []byte // hash of the previous entry (32 zero bytes for the first)
	Hash []byte // SM3(prev || canonical(entry))
}

// Store is the durable spool. All methods are safe for concurrent use.
type Store interface {
	// BeginBatch opens an invisible stage for a batch's records. h.TotalCount
	// is the count the submission declares, or 0 when none is known: a store
	// may size what it keeps for Finalize by it (it is never trusted; Finalize
	// counts what the stage holds).
	BeginBatch(ctx context.Context, h *BatchHeader) (Stage, error)
	// Batch returns a visible batch by its platform id (ErrNotFound).
	Batch(ctx context.Context, batchID string) (*Batch, error)
	// Batches lists visible batches, newest first.
	Batches(ctx context.Context, f BatchFilter) ([]Batch, error)
	// TransitionBatch moves a batch from one state to another, checked against
	// the state machine and against the stored state (ErrStale if it moved),
	// in one transaction with one audit event. Leaving for CANCELLED also
	// cancels its PENDING records.
	TransitionBatch(ctx context.Context, batchID string, from, to BatchState, ev Event) error
	// Records pages through a batch's records.
	Records(ctx context.Context, batchID string, f RecordFilter) ([]Record, error)
	// RecordCounts tallies a batch's records by state.
	RecordCounts(ctx context.Context, batchID string) ([]StateCount, error)

	CreateToken(ctx context.Context, t *Token, actor string) error
	Token(ctx context.Context, id string) (*Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, id, actor string) error

	// Audit appends a standalone event (admin actions) to the chain.
	Audit(ctx context.Context, ev Event) error
	// AuditEntries returns chained entries with Seq > after, ascending.
	AuditEntries(ctx context.Context, after int64, limit int) ([]AuditEntry, error)

	DeliveryStore
	ReplayStore

	// Ping checks the spool is usable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
