// Package sim is the bank simulator: a paying bank that the gateway talks to
// over a real SFTP connection (x/crypto/ssh + pkg/sftp server side), used by
// `yktgw banksim`, `yktgw demo` and the end-to-end and crash tests.
//
// It owns the bank's side of a file exchange: public-key SSH login, an SFTP
// tree confined to one root directory, picking up files that appear under
// their final name in the outbound directory, opening them (SM2/SM4
// envelope, signature checked against the gateway's certificate), parsing
// them with the bank's outbound layout, deciding each record's outcome
// (deterministic under a seed), and writing a sealed return file in the
// bank's return layout, through a temporary name, after a delay. It keeps
// the bank's own idempotency (a bank batch number is accepted once, later
// files with it are counted as duplicates and never paid), counts everything
// in Stats (also written to <root>/sim-stats.json), and injects faults on
// demand (SetFaults, or <root>/sim-faults.json from another process).
//
// It must not be used as a real bank, know about the spool or the gateway's
// state, or log personal data: it logs file names, bank batch numbers and
// counts only. SetupKeys creates a throw-away key set for demos and tests.
package sim
