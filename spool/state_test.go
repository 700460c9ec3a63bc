package spool

import (
	"errors"
	"testing"
)

func TestBatchTransitions(t *testing.T) {
	legal := map[[2]BatchState]bool{
		{BatchStaging, BatchReceived}: true, {BatchReceived, BatchQueued}: true, {BatchReceived, BatchCancelled}: true,
		{BatchQueued, BatchSending}: true, {BatchQueued, BatchCancelled}: true, {BatchSending, BatchSent}: true,
		{BatchSending, BatchDead}: true, {BatchSent, BatchSettled}: true, {BatchSent, BatchDead}: true, {BatchDead, BatchSending}: true,
	}
	all := []BatchState{BatchStaging, BatchReceived, BatchQueued, BatchSending, BatchSent, BatchSettled, BatchCancelled, BatchDead}
	for _, from := range all {
		for _, to := range all {
			err := CheckBatch(from, to)
			if legal[[2]BatchState{from, to}] != (err == nil) {
				t.Errorf("%s -> %s: err = %v", from, to, err)
			}
			if err != nil && !errors.Is(err, ErrTransition) {
				t.Errorf("%s -> %s: %v is not ErrTransition", from, to, err)
			}
		}
	}
	if !BatchSettled.Final() || !BatchCancelled.Final() || BatchDead.Final() {
		t.Error("Final() wrong")
	}
}

func TestRecordTransitions(t *testing.T) {
	legal := map[[2]RecordState]bool{
		{RecordStaged, RecordPending}: true, {RecordPending, RecordSent}: true, {RecordPending, RecordCancelled}: true,
		{RecordSent, RecordPaid}: true, {RecordSent, RecordFailed}: true, {RecordSent, RecordUnknown}: true,
		{RecordUnknown, RecordPaid}: true, {RecordUnknown, RecordFailed}: true,
	}
	all := []RecordState{RecordStaged, RecordPending, RecordSent, RecordPaid, RecordFailed, RecordUnknown, RecordCancelled}
	for _, from := range all {
		for _, to := range all {
			if err := CheckRecord(from, to); legal[[2]RecordState{from, to}] != (err == nil) {
				t.Errorf("%s -> %s: err = %v", from, to, err)
			}
		}
	}
	// A PAID record can never change again: no double payment by state games.
	for _, to := range all {
		if CheckRecord(RecordPaid, to) == nil {
			t.Errorf("PAID -> %s allowed", to)
		}
	}
	for s, want := range map[RecordState]bool{RecordPending: true, RecordSent: true, RecordPaid: true, RecordUnknown: true, RecordFailed: false, RecordCancelled: false, RecordStaged: false} {
		if s.ActiveForDedupe() != want {
			t.Errorf("%s.ActiveForDedupe() = %v", s, !want)
		}
	}
}
