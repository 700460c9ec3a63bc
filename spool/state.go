package spool

import "fmt"

// The state machine of DESIGN.md, in one place. Every Store calls CheckBatch /
// CheckRecord before it writes a state, so an illegal transition is an error,
// never a silent update.

var batchNext = map[BatchState][]BatchState{
	BatchStaging:  {BatchReceived},
	BatchReceived: {BatchQueued, BatchCancelled},
	BatchQueued:   {BatchSending, BatchCancelled},
	BatchSending:  {BatchSent, BatchDead},
	BatchSent:     {BatchSettled, BatchDead},
	BatchDead:     {BatchSending}, // ops replay, after asking the bank (money rule 5)
}

var recordNext = map[RecordState][]RecordState{
	RecordStaged:  {RecordPending},
	RecordPending: {RecordSent, RecordCancelled},
	RecordSent:    {RecordPaid, RecordFailed, RecordUnknown},
	RecordUnknown: {RecordPaid, RecordFailed}, // only the bank's word resolves UNKNOWN
}

// CheckBatch reports whether a batch may move from one state to another.
func CheckBatch(from, to BatchState) error {
	for _, s := range batchNext[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: batch %s -> %s", ErrTransition, from, to)
}

// CheckRecord reports whether a record may move from one state to another.
func CheckRecord(from, to RecordState) error {
	for _, s := range recordNext[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("%w: record %s -> %s", ErrTransition, from, to)
}

// Final reports whether a record state is final (no further transition).
func (s RecordState) Final() bool { return len(recordNext[s]) == 0 }

// Final reports whether a batch state is final.
func (s BatchState) Final() bool { return len(batchNext[s]) == 0 }

// ActiveForDedupe reports whether a record in this state blocks another record
// of the same person, subsidy and period (money rule 4).
func (s RecordState) ActiveForDedupe() bool {
	switch s {
	case RecordPending, RecordSent, RecordPaid, RecordUnknown:
		return true
	}
	return false
}
