package crypto

import (
	"errors"
	"time"
)

// Sentinel errors. Every error this package returns for a failed check wraps
// exactly one of these, so callers classify with errors.Is and never by text.
var (
	// ErrTampered: a sealed file or a field ciphertext failed its integrity
	// check (GCM tag, CBC padding, SM2 C3 hash) or its structure is not the
	// strict DER we write.
	ErrTampered = errors.New("data tampered or corrupt")
	// ErrNotRecipient: the envelope is intact but not addressed to our certificate.
	ErrNotRecipient = errors.New("envelope not addressed to this certificate")
	// ErrBadSignature: the signature does not verify with the expected key.
	ErrBadSignature = errors.New("bad signature")
	// ErrWrongSigner: the data was signed by a certificate other than the pinned one.
	ErrWrongSigner = errors.New("signed by another certificate")
	// ErrCertExpired: a certificate is outside its validity period.
	ErrCertExpired = errors.New("certificate expired or not yet valid")
	// ErrTooLarge: an in-memory format exceeded its documented bound.
	ErrTooLarge = errors.New("too large for an in-memory envelope")
	// ErrUnknownKeyID: a field ciphertext names a data key the keyring lacks.
	ErrUnknownKeyID = errors.New("unknown data key id")
	// ErrNoPassphrase: neither a passphrase file nor YKT_KEY_PASSPHRASE was given.
	ErrNoPassphrase = errors.New("no passphrase: give --passphrase-file or set " + EnvPassphrase)
	// ErrUnencryptedKey: a private key file is not encrypted.
	ErrUnencryptedKey = errors.New("private key is not encrypted at rest")
)

// timeNow is replaced in tests that need another clock.
var timeNow = time.Now
