package gateway

import (
	"context"
	"errors"
	"fmt"

	"yktgw/crypto"
	"yktgw/spool"
)

// RotateResult counts what a rotation did.
type RotateResult struct {
	Records     int
	Reencrypted int
	ActiveKey   string
}

// RotateDataKeys re-encrypts, in small transactions and while the daemon
// runs, every personal field not yet under the data-key file's active key
// (`yktgw keys rotate-data-key`). Each row keeps its layout: a combined
// ciphertext is re-encrypted as one (and must hold a well-formed combined
// plaintext), legacy rows field by field. Blind indexes do not change (the
// index key never rotates). A running daemon keeps reading both: it reloads
// the file when it meets a key it has not loaded.
func RotateDataKeys(ctx context.Context, st spool.Store, keyFile string, progress func(read, changed int)) (RotateResult, error) {
	rw, ok := st.(spool.FieldRewriter)
	if !ok {
		return RotateResult{}, errors.New("gateway: this spool cannot rewrite fields")
	}
	ring, err := crypto.LoadDataKeyring(keyFile)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{ActiveKey: ring.ActiveKeyID()}
	var aad, plain []byte
	reseal := func(batchID string, seq int, field string, ct []byte) ([]byte, bool, error) {
		id, err := crypto.FieldKeyID(ct)
		if err != nil {
			return nil, false, fmt.Errorf("record %s/%d %s: %w", batchID, seq, field, err)
		}
		if id == res.ActiveKey {
			return ct, false, nil
		}
		aad = FieldAAD(aad[:0], batchID, seq, field)
		if plain, err = ring.DecryptTo(plain[:0], ct, aad); err != nil {
			return nil, false, fmt.Errorf("record %s/%d %s: %w", batchID, seq, field, err)
		}
		if field == fieldsLabel {
			if _, _, _, err := decodeFields(plain); err != nil {
				clear(plain)
				return nil, false, fmt.Errorf("record %s/%d %s: %w", batchID, seq, field, err)
			}
		}
		out, err := ring.EncryptTo(nil, plain, aad)
		clear(plain)
		return out, err == nil, err
	}
	var cur spool.FieldCursor
	for {
		next, read, changed, err := rw.RewriteFields(ctx, cur, 1000, func(r *spool.FieldRow) (bool, error) {
			var any bool
			type sealed struct {
				name string
				ct   *[]byte
			}
			fields := []sealed{{"name", &r.NameEnc}, {"id_number", &r.IDEnc}, {"account", &r.AccountEnc}}
			if len(r.FieldsEnc) > 0 {
				fields = []sealed{{fieldsLabel, &r.FieldsEnc}}
			}
			for _, f := range fields {
				out, ch, err := reseal(r.BatchID, r.Seq, f.name, *f.ct)
				if err != nil {
					return false, err
				}
				if ch {
					*f.ct, any = out, true
				}
			}
			return any, nil
		})
		if err != nil {
			return res, err
		}
		if read == 0 {
			break
		}
		res.Records += read
		res.Reencrypted += changed
		cur = next
		if progress != nil {
			progress(read, changed)
		}
	}
	if err := st.Audit(ctx, spool.Event{Actor: "cli", Action: "keys.rotated", Subject: res.ActiveKey,
		Detail: []byte(fmt.Sprintf(`{"records":%d,"reencrypted":%d}`, res.Records, res.Reencrypted))}); err != nil {
		return res, err
	}
	return res, nil
}
