package main

// The crash and daemon tests of the real binary, run for the HTTPS channel:
// the same assertions as for SFTP (crash_test.go, daemon_test.go), with the
// bank simulator's HTTPS bank on loopback (mutual TLS, SM2-signed requests
// and answers) pushing its return files to the daemon's
// /v1/banks/DEMO/callback. Each sets YKT_TEST_CHANNEL=https for its
// duration and runs the SFTP test's body; the crash points only the SFTP
// channel reaches (mid-upload, uploaded-before-rename) are skipped there
// with the reason, and feedback-before-archive is the callback's "applied,
// not yet answered 200" here.

import "testing"

func useHTTPS(t *testing.T) { t.Setenv("YKT_TEST_CHANNEL", "https") }

func TestCrashPointsHTTPS(t *testing.T) {
	useHTTPS(t)
	TestCrashPoints(t)
}

func TestRandomKillsHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	useHTTPS(t)
	TestRandomKills(t)
}

func TestDaemonKilledKeepsAcknowledgedBatchHTTPS(t *testing.T) {
	useHTTPS(t)
	TestDaemonKilledKeepsAcknowledgedBatch(t)
}

func TestDaemonKilledMidStreamLeavesNothingHTTPS(t *testing.T) {
	useHTTPS(t)
	TestDaemonKilledMidStreamLeavesNothing(t)
}
