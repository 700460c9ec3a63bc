package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestUseNonce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	steps := []struct {
		bank, nonce string
		fresh       bool
	}{
		{"DEMO", "n1", true},
		{"DEMO", "n1", false},
		{"OTHER", "n1", true},
		{"DEMO", "n2", true},
	}
	for _, st := range steps {
		fresh, err := s.UseNonce(ctx, st.bank, st.nonce, now)
		if err != nil || fresh != st.fresh {
			t.Fatalf("UseNonce(%s, %s) = %v, %v; want %v", st.bank, st.nonce, fresh, err, st.fresh)
		}
	}
	// Durable: a reopened spool still knows it.
	s.Close()
	if s, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fresh, err := s.UseNonce(ctx, "DEMO", "n1", now); err != nil || fresh {
		t.Fatalf("after reopen: UseNonce = %v, %v; want a replay", fresh, err)
	}
	// Old nonces are forgotten.
	s.SetClock(func() time.Time { return now.Add(NonceRetention + time.Hour) })
	if fresh, err := s.UseNonce(ctx, "DEMO", "n3", now.Add(NonceRetention+time.Hour)); err != nil || !fresh {
		t.Fatalf("UseNonce = %v, %v", fresh, err)
	}
	if fresh, err := s.UseNonce(ctx, "DEMO", "n1", now.Add(NonceRetention+time.Hour)); err != nil || !fresh {
		t.Fatalf("nonce older than the retention not forgotten: %v, %v", fresh, err)
	}
	if _, err := s.UseNonce(ctx, "", "x", now); err == nil {
		t.Error("empty bank accepted")
	}
}
