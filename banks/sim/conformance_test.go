package sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"yktgw/banks"
	"yktgw/banks/banktest"
)

// dirBank is the simulator's tree as banktest sees it: a delivery area the
// simulator does not process (so the suite's random bytes are not
// rejected and moved away), and a return file area.
type dirBank struct{ out, in, archive string }

func (b *dirBank) Received(t *testing.T) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(b.out)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = data
	}
	return m
}

func (b *dirBank) Replace(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(b.out, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *dirBank) PutFeedback(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(b.in, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *dirBank) Backdate(t *testing.T, name string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(b.in, name), at, at); err != nil {
		t.Fatal(err)
	}
}

func (b *dirBank) Archived(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(b.archive)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestConformance runs the channel conformance suite with the real sftp
// channel against the simulator's SFTP server: what the gateway's channel
// needs of a bank's server (temporary name, rename semantics, stat, read
// back, list, archive, mkdir) the simulator does.
func TestConformance(t *testing.T) {
	e := start(t, "", nil)
	b := &dirBank{out: filepath.Join(e.root, "drop"), in: filepath.Join(e.root, "inbox")}
	b.archive = filepath.Join(b.in, "archive")
	for _, d := range []string{b.out, b.in} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(e.addr)
	const minAge = 10 * time.Second
	banktest.Run(t, banktest.Opts{
		New: func(t *testing.T) banks.Channel {
			ctx := banks.WithLogger(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			ch, err := banks.New(ctx, "sftp", banks.Options{
				"host": host, "port": port, "user": "ykt", "key_file": e.ks.ClientKeyFile, "host_key": e.ks.KnownHostsLine,
				"outbound_dir": "/drop", "inbound_dir": "/inbox", "feedback_pattern": "FB_*.txt",
				"min_age": minAge.String(), "settle": "20ms", "timeout": "10s", "max_conns": "4",
			})
			if err != nil {
				t.Fatal(err)
			}
			return ch
		},
		Bank:                b,
		MinAge:              minAge,
		IgnoredFeedbackName: "OTHER_1.txt",
	})
	if st := e.sim.Stats(); st.Accepted+st.Rejected+st.Duplicates != 0 {
		t.Fatalf("files outside the outbound dir were processed: %+v", st)
	}
}
