package spool

import (
	"context"
	"time"
)

// Webhook outbox and ops statistics: optional abilities a Store may have
// beyond the Store interface. gateway asks for them with a type assertion;
// spool/sqlite implements both.

// Outbox event kinds.
const (
	EventBatchSettled = "batch.settled" // one per settled batch: totals by status
	EventBatchResults = "batch.results" // one per page of record results
)

// OutboxPageSize is the number of record results one batch.results event carries.
const OutboxPageSize = 1000

// OutboxState is the life of one event's delivery to one endpoint.
//
//	PENDING -> DELIVERED
//	PENDING -> FAILING (after the alarm threshold; an alarm is raised) -> DELIVERED (alarm resolved)
//
// Nothing is ever given up: a FAILING delivery keeps being retried at the
// backoff ceiling until it lands or ops removes the endpoint from the config
// (it then stays FAILING, visible).
type OutboxState string

const (
	OutboxPending   OutboxState = "PENDING"
	OutboxFailing   OutboxState = "FAILING"
	OutboxDelivered OutboxState = "DELIVERED"
)

// OutboxEvent is an event written by the transaction that produced it.
type OutboxEvent struct {
	ID        int64
	EventID   string // stable: receivers dedupe on it
	Kind      string
	BatchID   string
	Tenant    string
	Page      int // batch.results: 1..Pages
	Pages     int // number of batch.results events of the batch
	FirstSeq  int // batch.results: records [FirstSeq, LastSeq]
	LastSeq   int
	CreatedAt time.Time
}

// OutboxItem is one event's delivery to one endpoint.
type OutboxItem struct {
	ID          int64
	Event       OutboxEvent
	URL         string
	Tenant      string // the webhook's tenant
	State       OutboxState
	Attempts    int
	NextAttempt time.Time
	LastError   string
	LastStatus  int // HTTP status of the last attempt (0: no answer)
	DeliveredAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// OutboxTarget is an endpoint an event is routed to.
type OutboxTarget struct {
	URL    string
	Tenant string
}

// OutboxFilter selects outbox items.
type OutboxFilter struct {
	States  []OutboxState
	BatchID string
	DueBy   time.Time // NextAttempt <= DueBy (zero: any)
	AfterID int64     // paging: items with ID > AfterID
	Limit   int
}

// OutboxFailure is a failed attempt to record.
type OutboxFailure struct {
	ID          int64
	Status      int // HTTP status, 0 if none
	Error       string
	NextAttempt time.Time
	// AlarmAfter: once the item has failed this many attempts it becomes
	// FAILING and one alarm (kind webhook_failing) is raised.
	AlarmAfter int
}

// Outbox is the durable webhook outbox. Events are enqueued by the Store
// itself inside the transactions that produce them (a batch becoming
// SETTLED), so a crash can never lose one.
type Outbox interface {
	// RouteOutbox takes up to limit events not yet routed, asks route for
	// the endpoints covering each event's tenant and creates one PENDING
	// item per endpoint (due now), marking the events routed, in one
	// transaction. An event no endpoint covers is marked routed with no
	// item. Returns the number of events routed.
	RouteOutbox(ctx context.Context, route func(tenant string) []OutboxTarget, limit int) (int, error)
	// OutboxItems lists items in id order, or, with DueBy set, the due ones
	// longest waiting first.
	OutboxItems(ctx context.Context, f OutboxFilter) ([]OutboxItem, error)
	// OutboxDelivered records a 2xx answer: the item becomes DELIVERED and
	// the alarm it raised, if any, is resolved.
	OutboxDelivered(ctx context.Context, id int64, status int) error
	// OutboxFailed records a failed attempt and when to try again.
	// It reports whether this failure raised the alarm.
	OutboxFailed(ctx context.Context, f OutboxFailure) (alarmed bool, err error)
}

// KeyCount is a count and a sum of fen under labels.
type KeyCount struct {
	State string
	Bank  string
	Count int64
	Fen   int64
}

// OpsStats is what the metrics collector reads from the spool at scrape time.
type OpsStats struct {
	Batches           []KeyCount           // by state and bank; Fen = declared total
	Records           []KeyCount           // by state and bank; Fen = amount
	DeadDeliveries    map[string]int64     // by bank
	OldestUnanswered  map[string]time.Time // by bank: sent_at of the oldest SENT delivery without applied feedback
	OverdueRecords    map[string]int64     // by bank: records SENT or UNKNOWN past their delivery's feedback deadline
	OpenAlarms        map[string]int64     // by kind
	Outbox            map[OutboxState]int64
	OldestUndelivered time.Time // created_at of the oldest undelivered outbox item (zero: none)
	SpoolBytes        int64     // database file plus its WAL
}

// OpsStatser is a Store that can summarise itself for metrics, read-only.
type OpsStatser interface {
	OpsStats(ctx context.Context, now time.Time) (*OpsStats, error)
}
