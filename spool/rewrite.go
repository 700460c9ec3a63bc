package spool

import "context"

// FieldCursor is a position in the spool's records, in (batch, seq) order.
type FieldCursor struct {
	Batch int64 // internal batch key
	Seq   int
}

// FieldRow is one record's encrypted personal fields, in either layout (see
// Record): FieldsEnc, or the three legacy ciphertexts when it is empty.
type FieldRow struct {
	BatchID    string
	Seq        int
	FieldsEnc  []byte
	NameEnc    []byte
	IDEnc      []byte
	AccountEnc []byte
}

// FieldRewriter lets `yktgw keys rotate-data-key` re-encrypt personal
// fields under a new data key while the daemon runs. *sqlite.Store
// implements it.
type FieldRewriter interface {
	// RewriteFields reads about limit records after the cursor (visible
	// batches only; records a store keeps together, such as SQLite's packs of
	// up to 32, are read whole, so a page may hold a few more), calls fn for
	// each, and stores the rows fn changed in one transaction. It returns the cursor to continue from and how many rows
	// were read and changed; read == 0 means the end.
	RewriteFields(ctx context.Context, after FieldCursor, limit int, fn func(*FieldRow) (bool, error)) (next FieldCursor, read, changed int, err error)
}
