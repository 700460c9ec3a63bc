package sqlite

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dirtyBytes reads the kernel's count of dirty page-cache bytes.
func dirtyBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("no /proc/meminfo: %v", err)
	}
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Dirty:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no Dirty: line in /proc/meminfo")
	return 0
}

// startWriteback has the kernel write a file's dirty pages now, where they
// would otherwise wait for their age (30 s) or the next fsync.
func TestStartWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	const size = 128 << 20
	before := dirtyBytes(t)
	if err := os.WriteFile(path, bytes.Repeat([]byte{0x5a}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	written := dirtyBytes(t)
	if written-before < size/2 {
		t.Skipf("writing %d bytes raised Dirty by %d only (a filesystem without a dirty page cache, or one written back at once)", size, written-before)
	}
	startWriteback(path)
	deadline := time.Now().Add(5 * time.Second)
	for dirtyBytes(t) > written-size/2 {
		if time.Now().After(deadline) {
			t.Fatalf("Dirty still %d bytes 5 s after asking for the writeback (%d after writing, %d before)", dirtyBytes(t), written, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	startWriteback(filepath.Join(t.TempDir(), "absent")) // no file: nothing to do, no panic
}
