package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A record's personal fields are stored at rest in one of two layouts:
//
//   - combined (records accepted since migration 0014): record_fields.fields_enc
//     is one field ciphertext (crypto's format v1) of the three fields encoded
//     by appendFields, with AAD FieldAAD(batch, seq, fieldsLabel); the three
//     legacy columns are empty;
//   - legacy (records accepted before): name_enc, id_enc and account_enc, one
//     ciphertext each with AAD FieldAAD(batch, seq, "name" | "id_number" |
//     "account"); fields_enc is empty.
//
// One seal a record instead of three halves the sealer's SM4-GCM work and
// stores the ciphertext overhead (version, key id, nonce, tag) once. The
// labels differ, so a ciphertext of one layout never opens as the other.
// Every reader goes through fieldOpener.openFields, which takes either.

// fieldsLabel is the field name in the AAD of a combined ciphertext.
const fieldsLabel = "fields"

// fieldsVersion is the first byte of a combined plaintext.
const fieldsVersion = 0x01

// appendFields appends the combined plaintext of a record's personal fields:
//
//	0x01 | uvarint(len(name)) | name | uvarint(len(id)) | id | uvarint(len(account)) | account
func appendFields(dst []byte, name, id, account string) []byte {
	dst = append(dst, fieldsVersion)
	for _, s := range [3]string{name, id, account} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

var errFieldsEncoding = errors.New("bad encoding of the combined plaintext")

// decodeFields splits a combined plaintext into its three fields (slices of
// p). It takes exactly what appendFields writes and nothing else: another
// version, a length not in its shortest form or beyond the end, and bytes
// after the third field are refused.
func decodeFields(p []byte) (name, id, account []byte, err error) {
	if len(p) == 0 || p[0] != fieldsVersion {
		return nil, nil, nil, errFieldsEncoding
	}
	p = p[1:]
	var out [3][]byte
	for i := range out {
		l, n := binary.Uvarint(p)
		if n <= 0 || n != uvarintLen(l) || l > uint64(len(p)-n) {
			return nil, nil, nil, errFieldsEncoding
		}
		p = p[n:]
		out[i] = p[:l:l]
		p = p[l:]
	}
	if len(p) != 0 {
		return nil, nil, nil, errFieldsEncoding
	}
	return out[0], out[1], out[2], nil
}

// uvarintLen is the length of v's shortest uvarint encoding.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// fieldOpener opens records' personal fields into one reused plaintext
// buffer. Not safe for concurrent use; wipe clears the buffer.
type fieldOpener struct {
	fc    FieldCipher
	aad   []byte
	plain []byte
}

// openFields opens a record's personal fields, whichever layout it was
// stored in: fieldsEnc when it is not empty, else the three legacy
// ciphertexts. The results point into the opener's buffer and are valid
// until the next call or wipe. Errors name the layout and field, never a value.
func (o *fieldOpener) openFields(batchID string, seq int, fieldsEnc, nameEnc, idEnc, accountEnc []byte) (name, id, account []byte, err error) {
	o.room(len(fieldsEnc) + len(nameEnc) + len(idEnc) + len(accountEnc))
	if len(fieldsEnc) > 0 {
		o.aad = FieldAAD(o.aad[:0], batchID, seq, fieldsLabel)
		if o.plain, err = o.fc.DecryptTo(o.plain[:0], fieldsEnc, o.aad); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", fieldsLabel, err)
		}
		if name, id, account, err = decodeFields(o.plain); err != nil {
			clear(o.plain)
			return nil, nil, nil, fmt.Errorf("%s: %w", fieldsLabel, err)
		}
		return name, id, account, nil
	}
	var ends [3]int
	o.plain = o.plain[:0]
	for i, f := range [3]struct {
		name string
		ct   []byte
	}{{"name", nameEnc}, {"id_number", idEnc}, {"account", accountEnc}} {
		o.aad = FieldAAD(o.aad[:0], batchID, seq, f.name)
		out, err := o.fc.DecryptTo(o.plain, f.ct, o.aad)
		if err != nil {
			clear(o.plain)
			return nil, nil, nil, fmt.Errorf("%s: %w", f.name, err)
		}
		o.plain = out
		ends[i] = len(out)
	}
	p := o.plain
	return p[:ends[0]:ends[0]], p[ends[0]:ends[1]:ends[1]], p[ends[1]:ends[2]:ends[2]], nil
}

// room wipes the buffer and makes sure n bytes fit, so no plaintext is left
// behind in an array the buffer outgrew.
func (o *fieldOpener) room(n int) {
	o.wipe()
	if cap(o.plain) < n {
		o.plain = make([]byte, 0, max(n, 256))
	}
}

// wipe clears the plaintext buffer.
func (o *fieldOpener) wipe() { clear(o.plain[:cap(o.plain)]) }
