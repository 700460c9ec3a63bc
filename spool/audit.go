package spool

import (
	"encoding/binary"

	"github.com/emmansun/gmsm/sm3"
)

// GenesisHash is the "previous hash" of the first audit entry.
var GenesisHash = make([]byte, sm3.Size)

// AuditHash computes an entry's chain hash: SM3 over the previous hash and a
// length-prefixed canonical encoding of the entry (seq, time, actor, action,
// subject, reason, detail). Stores call it when they append; `yktgw audit
// verify` calls it to check the chain.
func AuditHash(prev []byte, e *AuditEntry) []byte {
	h := sm3.New()
	h.Write(prev)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.At.UnixNano()))
	h.Write(n[:])
	for _, f := range [][]byte{[]byte(e.Actor), []byte(e.Action), []byte(e.Subject), []byte(e.Reason), e.Detail} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}
