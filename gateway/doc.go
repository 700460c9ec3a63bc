// Package gateway is yktgw's core: intake (validation, idempotency, duplicate
// guards), the HTTP API and its authentication, and — as the delivery issues
// land — the dispatcher, feedback poller, reconciler, replay and audit tools.
//
// It owns every money rule of DESIGN.md. It must not speak a bank protocol
// (that is a banks plugin's job) nor write SQL (that is the spool's), and it
// never logs personal data unmasked (internal/pii).
package gateway
