package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the file's dirty pages to
// disk now, without waiting for them (sync_file_range SYNC_FILE_RANGE_WRITE).
// It makes no promise about durability: that is still the commit's fsync.
//
// A stage commits with synchronous=NORMAL (txRelaxed), so the log of a big
// intake sits dirty in the page cache until Finalize's commit syncs it: at
// 1,000,000 records about 250 MiB, which that one fsync then wrote while the
// client waited (BenchmarkStageAndFinalize: Finalize 0.56-0.60 s, 0.41-0.43 s
// with the log written back as it grows). Errors are ignored: the fsync
// still does all the work.
func startWriteback(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	// SQLite takes no POSIX lock on the -wal file (its WAL locks are on the
	// -shm file), so closing this descriptor cannot drop one of its locks.
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	_ = f.Close()
}
