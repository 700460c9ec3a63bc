//go:build !linux

package sqlite

// startWriteback is a no-op where sync_file_range is not available: the
// commit's fsync writes everything, as it always must.
func startWriteback(string) {}
