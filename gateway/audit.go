package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"yktgw/config"
	"yktgw/spool"
	"yktgw/spool/sqlite"
)

// OpenSpoolReadOnly opens the config's spool for looking only, safe beside
// a running daemon (no migration, no start-up recovery, no writes).
func OpenSpoolReadOnly(ctx context.Context, cfg *config.Config) (*sqlite.Store, error) {
	if cfg.Spool.Driver != "sqlite" {
		return nil, fmt.Errorf("gateway: spool driver %q not supported (sqlite)", cfg.Spool.Driver)
	}
	return sqlite.OpenReadOnly(ctx, cfg.Spool.Path)
}

// Kinds of broken audit links.
const (
	AuditPrevMismatch = "prev_mismatch" // the entry's prev is not the hash of the entry before it
	AuditHashMismatch = "hash_mismatch" // the entry's content does not hash to its stored hash
	AuditSeqGap       = "seq_gap"       // entries are missing (deleted) before this one
)

// BrokenLink names the first place the audit chain does not hold.
type BrokenLink struct {
	Seq    int64  // the entry where the chain breaks (for a gap: the first missing seq)
	Kind   string // AuditPrevMismatch, AuditHashMismatch, AuditSeqGap
	Detail string
}

func (b *BrokenLink) String() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s: %s", b.Seq, b.Kind, b.Detail)
}

// VerifyAudit walks the whole audit chain in seq order and recomputes every
// link: each entry's hash from its content (spool.AuditHash), each entry's
// prev against the previous entry's hash (genesis for the first), and the
// seqs for gaps. It returns the number of entries read and the first broken
// link (nil when the chain holds). Deleting the newest entries cannot be
// told from a shorter chain; everything else can.
func VerifyAudit(ctx context.Context, st spool.Store) (entries int, firstBroken *BrokenLink, err error) {
	prevHash := spool.GenesisHash
	var last int64
	for {
		page, err := st.AuditEntries(ctx, last, 5000)
		if err != nil {
			return entries, nil, fmt.Errorf("gateway: audit verify: %w", err)
		}
		if len(page) == 0 {
			return entries, nil, nil
		}
		for i := range page {
			e := &page[i]
			entries++
			if e.Seq != last+1 {
				return entries, &BrokenLink{Seq: last + 1, Kind: AuditSeqGap,
					Detail: fmt.Sprintf("entries %d..%d are missing (next present entry is %d)", last+1, e.Seq-1, e.Seq)}, nil
			}
			if !bytes.Equal(e.Prev, prevHash) {
				return entries, &BrokenLink{Seq: e.Seq, Kind: AuditPrevMismatch,
					Detail: fmt.Sprintf("prev %x is not the hash %x of entry %d", e.Prev, prevHash, e.Seq-1)}, nil
			}
			if want := spool.AuditHash(e.Prev, e); !bytes.Equal(want, e.Hash) {
				return entries, &BrokenLink{Seq: e.Seq, Kind: AuditHashMismatch,
					Detail: fmt.Sprintf("content (%s %s by %s) hashes to %x, stored %x", e.Action, e.Subject, e.Actor, want, e.Hash)}, nil
			}
			prevHash, last = e.Hash, e.Seq
		}
	}
}

// AuditLine is one exported audit entry (JSON lines).
type AuditLine struct {
	Seq     int64           `json:"seq"`
	At      string          `json:"at"` // RFC 3339, UTC, nanoseconds
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Subject string          `json:"subject"`
	Reason  string          `json:"reason,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	Prev    string          `json:"prev"` // hex
	Hash    string          `json:"hash"` // hex
}

// ExportAudit writes the entries with from <= At < to (a zero bound is
// open) as JSON lines, in seq order, and returns how many it wrote. A
// detail that is not JSON is written as a JSON string.
func ExportAudit(ctx context.Context, st spool.Store, from, to time.Time, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	var last int64
	for {
		page, err := st.AuditEntries(ctx, last, 5000)
		if err != nil {
			return n, fmt.Errorf("gateway: audit export: %w", err)
		}
		if len(page) == 0 {
			return n, nil
		}
		for i := range page {
			e := &page[i]
			last = e.Seq
			if (!from.IsZero() && e.At.Before(from)) || (!to.IsZero() && !e.At.Before(to)) {
				continue
			}
			l := AuditLine{Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action, Subject: e.Subject,
				Reason: e.Reason, Prev: hex.EncodeToString(e.Prev), Hash: hex.EncodeToString(e.Hash)}
			if len(e.Detail) > 0 {
				if json.Valid(e.Detail) {
					l.Detail = e.Detail
				} else {
					q, _ := json.Marshal(string(e.Detail))
					l.Detail = q
				}
			}
			if err := enc.Encode(l); err != nil {
				return n, fmt.Errorf("gateway: audit export: %w", err)
			}
			n++
		}
	}
}
