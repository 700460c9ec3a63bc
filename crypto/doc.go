// Package crypto owns yktgw's national (ShangMi) cryptography, built on
// github.com/emmansun/gmsm v0.44.1: SM2/SM3 signatures with a configurable
// signer ID (raw ASN.1 and PKCS#7 SignedData, attached or detached), GB/T
// 35275 digital envelopes (PKCS#7 EnvelopedData with SM OIDs, SM4-GCM by
// default, SM4-CBC and the CFCA profile on request) with sign-then-seal and
// open-then-verify as one call each, field encryption of personal data
// (SM4-GCM with a key id in every ciphertext, so data keys rotate) with
// HMAC-SM3 blind indexes, and the key store (encrypted PKCS#8 PEM private
// keys, certificates with expiry checked at load).
//
// It must not: log, print or return in an error any private key, data key,
// passphrase or plaintext; decide policy (which bank uses which cipher or
// signer ID comes from config and bank profiles); talk to the network or the
// spool. Every failed check wraps one sentinel error (ErrTampered,
// ErrNotRecipient, ErrBadSignature, ErrWrongSigner, ErrCertExpired,
// ErrTooLarge, ErrUnknownKeyID) so callers classify with errors.Is.
//
// # Bounds
//
// SignAndSeal and OpenAndVerify hold the payload in memory (the GCM tag and
// the signature both come after the content): at most SealOptions.MaxBytes
// (DefaultMaxBytes, 64 MiB); larger input fails with ErrTooLarge. A bank
// profile's max_records_per_file must keep rendered files under it. The
// payload is read once, straight into its place inside the SignedData, and
// encrypted (or decrypted) in place, so peak memory is about one payload
// plus what the caller's dst holds; the large buffers are recycled through a
// sync.Pool. The SignedData and EnvelopedData DER is written by this package
// and read by a strict DER parser of its own; TestEnvelopeMatchesGmsm and
// TestPKCS7SignedData prove that gmsm's pkcs7 and cfca packages read what we
// write and that we read what they write. Detached signatures (SignReader,
// VerifyReader) stream and have no bound.
//
// # Constant time
//
// gmsm v0.44.1 on amd64 with AES-NI (internal/sm4) runs SM4 in two ways:
// bulk operations (GCM encrypt/decrypt via gcmSm4Enc/gcmSm4Dec, CBC
// decryption via decryptBlocksChain, ECB/CTR with several blocks) use
// AES-NI (or GFNI with AVX2) assembly that computes the S-box with AES
// instructions, constant time. Single-block calls (cipher.Block.Encrypt and
// Decrypt) use encryptBlockGo, a table-based implementation whose lookups
// depend on key and data (cache-timing leaks), unless the variable
// useAESNI4SingleBlock is set, which gmsm sets from FORCE_SM4BLOCK_AESNI=1 at
// process start. Single blocks are used by: every block of SM4-CBC
// encryption (CBC encryption is serial), the GCM tag mask E(K, J0) and, for
// non-12-byte nonces, GHASH setup, the SM4-CBC wrap of PKCS#8 private keys,
// and our SM4CBCEncrypt. This package therefore sets useAESNI4SingleBlock
// itself at init (go:linkname, see ct.go) whenever gmsm uses AES-NI, so the
// binary is constant time without relying on the environment; the variable
// FORCE_SM4BLOCK_AESNI=1 is then redundant but harmless. SM4Path reports the
// path in use ("aesni"; "generic" on a CPU without AES-NI, where gmsm has
// no constant-time SM4 at all and yktgw should warn). Building with the
// purego tag removes gmsm's assembly and makes this package fail to link,
// on purpose. TestSM4SingleBlockPathIsAssembly proves the path with a CPU
// profile.
//
// # Files
//
// The data-key file format and field ciphertext layout are documented in
// datakey.go; private keys are PKCS#8 EncryptedPrivateKeyInfo with the
// ShangMi PBES2 profile (GM/T 0010 OIDs: PBKDF2 with HMAC-SM3, 100,000
// rounds, SM4-CBC). OpenSSL 3.0 cannot read that profile (it lacks the
// HMAC-SM3 PRF); LoadPrivateKey reads OpenSSL's own PBES2 SM4-CBC keys.
package crypto
