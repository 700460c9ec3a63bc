package spool

import "time"

// LogStats describe how a store copies its write-ahead log into its
// database: SQLite's checkpoints. A store with such a log implements
// LogStatter; the gateway serves the figures on /metrics.
type LogStats struct {
	// Deferred is true while a copy is due by size but held back because
	// commits keep coming (the copy waits for a quiet spool, up to a bound).
	Deferred bool
	// Copies counts the checkpoints run (each copies what was committed
	// since the one before) and Time is the wall time they took.
	Copies int64
	Time   time.Duration
	// LogBytes is the size of the log file now.
	LogBytes int64
}

// LogStatter is a store that reports on its write-ahead log.
type LogStatter interface {
	LogStats() LogStats
}
