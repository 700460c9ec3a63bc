package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"yktgw/banks"
	"yktgw/banks/format"
	_ "yktgw/banks/sftp"
	"yktgw/crypto"
	"yktgw/internal/gen"
)

const demoProfile = "../../testdata/banks/demo/profile.yaml"

var (
	keysOnce sync.Once
	keys     *KeySet
	intruder crypto.Party
	keysErr  error
	keysDir  string
)

func TestMain(m *testing.M) {
	crypto.PBKDF2Iterations = 2048 // test keys only; the count is stored in each key file
	rejectGrace = 300 * time.Millisecond
	code := m.Run()
	if keysDir != "" {
		_ = os.RemoveAll(keysDir)
	}
	os.Exit(code)
}

// testKeys makes one key set per test binary (SM2 key generation and
// PBKDF2 are the slow part under -race).
func testKeys(t testing.TB) *KeySet {
	t.Helper()
	keysOnce.Do(func() {
		keysDir, keysErr = os.MkdirTemp("", "banksim-keys-")
		if keysErr != nil {
			return
		}
		keys, keysErr = SetupKeys(keysDir, []byte("test passphrase"))
		if keysErr != nil {
			return
		}
		if keysErr = crypto.GenerateParty(keysDir, "intruder", keys.Passphrase, time.Hour); keysErr != nil {
			return
		}
		k, _, c := crypto.PartyFiles(keysDir, "intruder")
		intruder, keysErr = LoadParty(k, c, keys.Passphrase)
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

func demo(t testing.TB) *banks.Profile {
	t.Helper()
	p, err := banks.LoadProfile(demoProfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type env struct {
	t    testing.TB
	ks   *KeySet
	prof *banks.Profile
	sim  *Sim
	addr string
	root string
	ch   banks.Channel
}

// start runs a simulator over the DEMO profile on a fresh root (or the one
// given) and connects the real sftp channel to it, host key pinned.
func start(t testing.TB, root string, mod func(*Config)) *env {
	t.Helper()
	ks := testKeys(t)
	if root == "" {
		root = t.TempDir()
	}
	e := &env{t: t, ks: ks, prof: demo(t), root: root}
	cfg := Config{
		Listen: "127.0.0.1:0", Root: root, HostKey: ks.HostKey,
		AuthorizedKeys: []ssh.PublicKey{ks.ClientKey.PublicKey()}, User: "ykt",
		Profile: e.prof, Bank: ks.Bank, Gateway: ks.Gateway.Cert,
		FailRate: 0.3, Seed: 7, Delay: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e.sim, e.addr = s, addr
	e.ch = e.channel(ks.ClientKeyFile, ks.KnownHostsLine)
	return e
}

func (e *env) channel(keyFile, hostKey string) banks.Channel {
	e.t.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	ctx := banks.WithLogger(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ch, err := banks.New(ctx, "sftp", banks.Options{
		"host": host, "port": port, "user": "ykt", "key_file": keyFile, "host_key": hostKey,
		"outbound_dir": "upload", "inbound_dir": "feedback", "min_age": "0s", "settle": "0s", "timeout": "10s",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// batch renders a DEMO outbound file of n generated records and seals it
// from `from` to the bank. It returns the sealed bytes and the records.
func (e *env) batch(bbn string, n int, from crypto.Party) ([]byte, []format.Record) {
	e.t.Helper()
	var recs []format.Record
	var total int64
	for i := 1; i <= n; i++ {
		name, id, acct := gen.Person(i)
		amt := int64(1000 + 37*i)
		recs = append(recs, format.Record{Seq: i, Name: name, IDNumber: id, Account: acct, AccountKind: "card", AmountFen: amt, Remark: "测试"})
		total += amt
	}
	b := format.Batch{BankBatchNo: bbn, FileSeq: 1, Date: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), Count: n, TotalFen: total, Memo: "耕地补贴"}
	var plain bytes.Buffer
	if err := e.prof.Outbound.Render(&plain, b, func(yield func(format.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}); err != nil {
		e.t.Fatal(err)
	}
	var sealed bytes.Buffer
	opt := crypto.SealOptions{Cipher: e.prof.Envelope.Cipher, SignerID: []byte(e.prof.SignerID)}
	if err := crypto.SignAndSeal(&sealed, &plain, from, []*smx509.Certificate{e.ks.Bank.Cert}, opt); err != nil {
		e.t.Fatal(err)
	}
	return sealed.Bytes(), recs
}

func outbound(bbn, name string, data []byte) *banks.Outbound {
	return &banks.Outbound{Bank: "DEMO", BankBatchNo: bbn, Name: name, Size: int64(len(data)), SM3: sm3.Sum(data),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

func (e *env) send(bbn, name string, data []byte) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.ch.Send(ctx, outbound(bbn, name, data))
	return err
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) feedback() []banks.FeedbackRef {
	e.t.Helper()
	refs, err := e.ch.ListFeedback(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return refs
}

func (e *env) fetch(ref banks.FeedbackRef) []byte {
	e.t.Helper()
	r, err := e.ch.OpenFeedback(context.Background(), ref)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// open is what the gateway does with a return file: open, verify, parse.
func (e *env) open(sealed []byte) ([]format.Result, format.Summary, error) {
	var plain bytes.Buffer
	opt := crypto.SealOptions{Cipher: e.prof.Envelope.Cipher, SignerID: []byte(e.prof.SignerID)}
	if err := crypto.OpenAndVerify(&plain, bytes.NewReader(sealed), e.ks.Gateway, e.ks.Bank.Cert, opt); err != nil {
		e.t.Fatalf("open return file: %v", err)
	}
	var res []format.Result
	s, err := e.prof.Return.Parse(&plain, func(r format.Result) error { res = append(res, r); return nil })
	return res, s, err
}

func TestSendAcceptReturnDuplicate(t *testing.T) {
	e := start(t, "", nil)
	sealed, recs := e.batch("B0001", 40, e.ks.Gateway)
	if err := e.send("B0001", "DEMO_PAY_B0001.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	var refs []banks.FeedbackRef
	waitFor(t, "return file", 10*time.Second, func() bool { refs = e.feedback(); return len(refs) > 0 })
	if len(refs) != 1 || refs[0].ID != "DEMO_RET_B0001.txt.p7" {
		t.Fatalf("feedback = %+v", refs)
	}
	if ok, _ := filepath.Match(e.prof.FeedbackPattern, refs[0].ID); !ok {
		t.Fatalf("%s does not match %s", refs[0].ID, e.prof.FeedbackPattern)
	}
	res, sum, err := e.open(e.fetch(refs[0]))
	if err != nil {
		t.Fatalf("Return.Parse: %v", err)
	}
	if len(res) != len(recs) {
		t.Fatalf("%d results for %d records", len(res), len(recs))
	}
	var total, paid, failed int64
	var nPaid, nFailed int
	for i, r := range res {
		want := recs[i]
		if r.Seq != want.Seq || r.AmountFen != want.AmountFen || r.Account != want.Account || r.Name != want.Name {
			t.Fatalf("result %d = seq %d amount %d, want seq %d amount %d (or account/name differ)", i, r.Seq, r.AmountFen, want.Seq, want.AmountFen)
		}
		o := e.sim.outcome("B0001", r.Seq)
		if r.Code != o.code || r.BankSerial != o.serial || r.Paid != o.paid || r.Paid != e.prof.IsPaid(r.Code) {
			t.Fatalf("seq %d: code %s serial %s paid %v, want %s %s %v", r.Seq, r.Code, r.BankSerial, r.Paid, o.code, o.serial, o.paid)
		}
		if !r.Paid && e.prof.Classify(r.Code, r.Message) == banks.ReasonOther {
			t.Fatalf("seq %d: failure code %s not classified by the profile", r.Seq, r.Code)
		}
		total += want.AmountFen
		if r.Paid {
			paid += r.AmountFen
			nPaid++
		} else {
			failed += r.AmountFen
			nFailed++
		}
	}
	if paid+failed != total || sum.PaidFen != paid || sum.FailedFen != failed || sum.BankBatchNo != "B0001" {
		t.Fatalf("paid %d + failed %d != total %d (summary %+v)", paid, failed, total, sum)
	}
	if nFailed == 0 || nPaid == 0 {
		t.Fatalf("fail rate 0.3 over 40 records gave %d paid, %d failed", nPaid, nFailed)
	}
	st := e.sim.Stats()
	if st.Accepted != 1 || st.Duplicates != 0 || st.Rejected != 0 || st.ReturnsWritten != 1 || st.AcceptedByBatchNo["B0001"] != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Records != 40 || st.PaidRecords != nPaid || st.FailedRecords != nFailed || st.PaidFen != paid || st.FailedFen != failed {
		t.Fatalf("stats sums = %+v, want paid %d/%d failed %d/%d", st, nPaid, paid, nFailed, failed)
	}
	// The delivered file stays under its final name (the gateway's probe
	// relies on it) and the stats file says the same as Stats.
	if _, err := os.Stat(filepath.Join(e.root, "upload", "DEMO_PAY_B0001.txt.p7")); err != nil {
		t.Fatal(err)
	}
	disk, err := ReadStats(e.root)
	if err != nil || fmt.Sprint(disk) != fmt.Sprint(st) {
		t.Fatalf("sim-stats.json = %+v (%v), Stats = %+v", disk, err, st)
	}

	// The same file under another name: a duplicate, never paid again.
	if err := e.send("B0001", "DEMO_PAY_B0001_again.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "duplicate counted", 10*time.Second, func() bool { return e.sim.Stats().Duplicates == 1 })
	time.Sleep(100 * time.Millisecond) // > Delay: a second return would be there by now
	st = e.sim.Stats()
	if st.Accepted != 1 || st.ReturnsWritten != 1 || st.DuplicatesByBatchNo["B0001"] != 1 || st.Files["DEMO_PAY_B0001_again.txt.p7"] != "duplicate" {
		t.Fatalf("stats after duplicate = %+v", st)
	}
	if refs := e.feedback(); len(refs) != 1 {
		t.Fatalf("feedback after duplicate = %+v", refs)
	}
	// Re-sending the same name is the channel's no-op (already delivered):
	// nothing new arrives at the bank.
	if err := e.send("B0001", "DEMO_PAY_B0001.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if st := e.sim.Stats(); st.Accepted != 1 || st.Duplicates != 1 {
		t.Fatalf("stats after re-send of the same name = %+v", st)
	}
	// The gateway archives the return file; it is no longer listed.
	if err := e.ch.AckFeedback(context.Background(), refs[0]); err != nil {
		t.Fatal(err)
	}
	if refs := e.feedback(); len(refs) != 0 {
		t.Fatalf("feedback after ack = %+v", refs)
	}
}

func TestOutcomesDeterministic(t *testing.T) {
	ks := testKeys(t)
	mk := func(seed int64, rate float64) *Sim {
		s, err := New(Config{Listen: "127.0.0.1:0", Root: t.TempDir(), HostKey: ks.HostKey,
			AuthorizedKeys: []ssh.PublicKey{ks.ClientKey.PublicKey()}, User: "u", Profile: demo(t),
			Bank: ks.Bank, Gateway: ks.Gateway.Cert, FailRate: rate, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b, c := mk(1, 0.2), mk(1, 0.2), mk(2, 0.2)
	differ, failed := 0, 0
	codes := map[string]bool{}
	const n = 5000
	for seq := 1; seq <= n; seq++ {
		oa, ob, oc := a.outcome("B77", seq), b.outcome("B77", seq), c.outcome("B77", seq)
		if oa != ob {
			t.Fatalf("seq %d: same seed, different outcomes %+v %+v", seq, oa, ob)
		}
		if oa != oc {
			differ++
		}
		if !oa.paid {
			failed++
			codes[oa.code] = true
		}
	}
	if differ == 0 {
		t.Fatal("seeds 1 and 2 gave identical outcomes")
	}
	if failed < n*15/100 || failed > n*25/100 {
		t.Fatalf("fail rate 0.2: %d of %d failed", failed, n)
	}
	if len(codes) != len(a.reasons) {
		t.Fatalf("codes drawn %v, want all of %v", codes, a.reasons)
	}
	for _, tc := range []struct {
		rate       float64
		wantFailed bool
	}{{0, false}, {1, true}} {
		s := mk(3, tc.rate)
		for seq := 1; seq <= 200; seq++ {
			if o := s.outcome("X", seq); o.paid == tc.wantFailed {
				t.Fatalf("fail rate %v: seq %d paid=%v", tc.rate, seq, o.paid)
			}
		}
	}
}

func TestWrongSignerRejected(t *testing.T) {
	e := start(t, "", nil)
	sealed, _ := e.batch("B0002", 3, intruder)
	if err := e.send("B0002", "DEMO_PAY_B0002.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rejection", 10*time.Second, func() bool { return e.sim.Stats().Rejected == 1 })
	st := e.sim.Stats()
	if st.Accepted != 0 || st.Files["DEMO_PAY_B0002.txt.p7"] != "rejected" || len(st.AcceptedByBatchNo) != 0 {
		t.Fatalf("stats = %+v", st)
	}
	waitFor(t, "rejected file moved aside", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.root, "rejected", "DEMO_PAY_B0002.txt.p7"))
		return err == nil
	})
	// Garbage is rejected too, and a later good file with the same bank
	// batch number is still accepted (a rejected file paid nothing).
	if err := e.send("B0002", "DEMO_PAY_B0002_junk.txt.p7", []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	good, _ := e.batch("B0002", 3, e.ks.Gateway)
	if err := e.send("B0002", "DEMO_PAY_B0002.txt.p7", good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acceptance", 10*time.Second, func() bool { st := e.sim.Stats(); return st.Accepted == 1 && st.Rejected == 2 })
	waitFor(t, "return", 10*time.Second, func() bool { return len(e.feedback()) == 1 })
}

func TestFaults(t *testing.T) {
	t.Run("drop mid-upload", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{DropMidUpload: 1})
		sealed, _ := e.batch("B0100", 20, e.ks.Gateway)
		err := e.send("B0100", "DEMO_PAY_B0100.txt.p7", sealed)
		if err == nil {
			t.Fatal("send survived a dropped connection")
		}
		if errors.Is(err, banks.ErrOutcomeUnknown) || !banks.IsRetryable(err) {
			t.Fatalf("drop before commit: err = %v (want retryable, outcome known)", err)
		}
		if _, err := os.Stat(filepath.Join(e.root, "upload", "DEMO_PAY_B0100.txt.p7")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("final-named file after a drop: %v", err)
		}
		tmp, err := os.Stat(filepath.Join(e.root, "upload", ".DEMO_PAY_B0100.txt.p7.part"))
		if err != nil || tmp.Size() == 0 || tmp.Size() >= int64(len(sealed)) {
			t.Fatalf("temporary file after the drop: %v (size %v of %d)", err, tmp, len(sealed))
		}
		time.Sleep(100 * time.Millisecond)
		if st := e.sim.Stats(); st.Accepted != 0 || st.DroppedUploads != 1 || len(st.Files) != 0 {
			t.Fatalf("stats after drop = %+v", st)
		}
		// The fault is used up: the retry goes through, exactly once.
		if err := e.send("B0100", "DEMO_PAY_B0100.txt.p7", sealed); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "acceptance", 10*time.Second, func() bool { return e.sim.Stats().Accepted == 1 })
		waitFor(t, "return", 10*time.Second, func() bool { return len(e.feedback()) == 1 })
		if st := e.sim.Stats(); st.AcceptedByBatchNo["B0100"] != 1 || st.Duplicates != 0 {
			t.Fatalf("stats = %+v", st)
		}
	})
	t.Run("slow writes", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{SlowWrites: 300 * time.Millisecond})
		sealed, _ := e.batch("B0101", 5, e.ks.Gateway)
		t0 := time.Now()
		if err := e.send("B0101", "DEMO_PAY_B0101.txt.p7", sealed); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < 300*time.Millisecond {
			t.Fatalf("send took %s with 300ms slow writes", d)
		}
		waitFor(t, "acceptance", 10*time.Second, func() bool { return e.sim.Stats().Accepted == 1 })
	})
	t.Run("duplicate return", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{DuplicateReturn: true})
		sealed, _ := e.batch("B0102", 10, e.ks.Gateway)
		if err := e.send("B0102", "DEMO_PAY_B0102.txt.p7", sealed); err != nil {
			t.Fatal(err)
		}
		var refs []banks.FeedbackRef
		waitFor(t, "two return files", 10*time.Second, func() bool { refs = e.feedback(); return len(refs) == 2 })
		a, b := e.fetch(refs[0]), e.fetch(refs[1])
		if refs[0].ID == refs[1].ID || !bytes.Equal(a, b) {
			t.Fatalf("copies %s and %s: same bytes %v", refs[0].ID, refs[1].ID, bytes.Equal(a, b))
		}
		for _, r := range refs {
			if ok, _ := filepath.Match(e.prof.FeedbackPattern, r.ID); !ok {
				t.Fatalf("%s does not match the feedback pattern", r.ID)
			}
		}
		if _, _, err := e.open(a); err != nil {
			t.Fatal(err)
		}
		st := e.sim.Stats()
		if st.ReturnsWritten != 1 || st.DuplicateReturns != 1 || st.Records != 10 {
			t.Fatalf("stats = %+v", st)
		}
	})
	t.Run("malformed return", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{MalformedReturn: 1})
		for i, bbn := range []string{"B0103", "B0104"} {
			sealed, _ := e.batch(bbn, 10, e.ks.Gateway)
			if err := e.send(bbn, "DEMO_PAY_"+bbn+".txt.p7", sealed); err != nil {
				t.Fatal(err)
			}
			var refs []banks.FeedbackRef
			waitFor(t, "return file", 10*time.Second, func() bool { refs = e.feedback(); return len(refs) == i+1 })
			_, _, err := e.open(e.fetch(refs[i])) // sealed and signed properly: open succeeds
			if i == 0 {
				var pe format.ParseErrors
				if !errors.As(err, &pe) {
					t.Fatalf("malformed return parsed: %v", err)
				}
			} else if err != nil {
				t.Fatalf("fault used up, yet the next return is malformed: %v", err)
			}
		}
		waitFor(t, "stats", 10*time.Second, func() bool { st := e.sim.Stats(); return st.MalformedReturns == 1 && st.ReturnsWritten == 2 })
	})
	t.Run("late return", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{LateReturn: 700 * time.Millisecond})
		sealed, _ := e.batch("B0105", 3, e.ks.Gateway)
		if err := e.send("B0105", "DEMO_PAY_B0105.txt.p7", sealed); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "acceptance", 10*time.Second, func() bool { return e.sim.Stats().Accepted == 1 })
		if refs := e.feedback(); len(refs) != 0 {
			t.Fatalf("return file before its late delay: %+v", refs)
		}
		waitFor(t, "late return", 10*time.Second, func() bool { return len(e.feedback()) == 1 })
	})
	t.Run("withhold returns", func(t *testing.T) {
		e := start(t, "", nil)
		e.sim.SetFaults(Faults{WithholdReturns: true})
		sealed, _ := e.batch("B0106", 3, e.ks.Gateway)
		if err := e.send("B0106", "DEMO_PAY_B0106.txt.p7", sealed); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "acceptance", 10*time.Second, func() bool { return e.sim.Stats().Accepted == 1 })
		time.Sleep(200 * time.Millisecond)
		if refs := e.feedback(); len(refs) != 0 {
			t.Fatalf("withheld return written: %+v", refs)
		}
		if st := e.sim.Stats(); st.WithheldReturns != 1 || st.ReturnsWritten != 0 {
			t.Fatalf("stats = %+v", st)
		}
	})
}

func TestRestartKeepsIdempotencyAndPendingReturns(t *testing.T) {
	root := t.TempDir()
	e := start(t, root, func(c *Config) { c.Delay = time.Hour })
	sealed, _ := e.batch("B0200", 5, e.ks.Gateway)
	if err := e.send("B0200", "DEMO_PAY_B0200.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acceptance", 10*time.Second, func() bool { return e.sim.Stats().Accepted == 1 })
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	// A new simulator on the same root: the staged return is written after
	// the (new) delay, and the old bank batch number is still known.
	e2 := start(t, root, func(c *Config) { c.Delay = 10 * time.Millisecond })
	waitFor(t, "resumed return", 10*time.Second, func() bool { return len(e2.feedback()) == 1 })
	if err := e2.send("B0200", "DEMO_PAY_B0200_b.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "duplicate", 10*time.Second, func() bool { return e2.sim.Stats().Duplicates == 1 })
	st := e2.sim.Stats()
	if st.Accepted != 1 || st.ReturnsWritten != 1 || st.Records != 5 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAuthAndPinning(t *testing.T) {
	e := start(t, "", nil)
	ctx := context.Background()
	dir := t.TempDir()
	other, err := setupSSHKey(filepath.Join(dir, "other"), "other")
	if err != nil {
		t.Fatal(err)
	}
	ping := func(ch banks.Channel) error { return ch.(banks.Pinger).Ping(ctx) }
	if err := ping(e.ch); err != nil {
		t.Fatalf("ping with the right keys: %v", err)
	}
	if err := ping(e.channel(filepath.Join(dir, "other"), e.ks.KnownHostsLine)); !errors.Is(err, banks.ErrAuth) {
		t.Fatalf("unknown client key: %v, want ErrAuth", err)
	}
	if err := ping(e.channel(e.ks.ClientKeyFile, ssh.FingerprintSHA256(other.PublicKey()))); !errors.Is(err, banks.ErrHostKey) {
		t.Fatalf("other host key pinned: %v, want ErrHostKey", err)
	}
	if err := ping(e.channel(e.ks.ClientKeyFile, e.ks.HostKeyFingerprint)); err != nil {
		t.Fatalf("pinned by fingerprint: %v", err)
	}
}

// rawClient is a plain pkg/sftp client on the simulator, for the tests of
// the server side itself.
func (e *env) rawClient() *sftp.Client {
	e.t.Helper()
	cc := &ssh.ClientConfig{User: "ykt", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.ks.ClientKey)},
		HostKeyCallback: ssh.FixedHostKey(e.ks.HostKey.PublicKey()), Timeout: 5 * time.Second}
	c, err := ssh.Dial("tcp", e.addr, cc)
	if err != nil {
		e.t.Fatal(err)
	}
	fc, err := sftp.NewClient(c)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = fc.Close(); _ = c.Close() })
	return fc
}

func TestConfinedToRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t, "", nil)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(e.root, "link")); err != nil {
		t.Fatal(err)
	}
	fc := e.rawClient()
	rel, _ := filepath.Rel(e.root, filepath.Join(outside, "secret"))
	for _, p := range []string{"/link", "link", "/../../../../" + filepath.Join(outside, "secret"), rel} {
		if f, err := fc.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) == "outside" {
				t.Fatalf("read outside the root through %q", p)
			}
		}
	}
	// ".." at the top stays at the top.
	f, err := fc.Create("/../../escape.txt")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if _, err := os.Stat(filepath.Join(e.root, "escape.txt")); err != nil {
		t.Fatalf("file created with /../../ is not at the root: %v", err)
	}
	// Plain rename refuses to overwrite; posix-rename replaces.
	if err := fc.Mkdir("/misc"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"/misc/a", "/misc/b", "/upload/junk"} {
		f, err := fc.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(n))
		f.Close()
	}
	if err := fc.Rename("/misc/a", "/misc/b"); err == nil {
		t.Fatal("plain rename overwrote an existing file")
	}
	if err := fc.PosixRename("/misc/a", "/misc/b"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.root, "misc", "b")); string(b) != "/misc/a" {
		t.Fatalf("posix-rename: b holds %q", b)
	}
	// mkdir, list, stat, remove.
	if err := fc.MkdirAll("/feedback/archive/x"); err != nil {
		t.Fatal(err)
	}
	infos, err := fc.ReadDir("/misc")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	if fmt.Sprint(names) != "[b]" {
		t.Fatalf("list /misc = %v", names)
	}
	if err := fc.Remove("/misc/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Stat("/misc/b"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after remove: %v", err)
	}
	// A junk file that appeared under a final name is rejected, not paid.
	waitFor(t, "junk rejected", 10*time.Second, func() bool { return e.sim.Stats().Rejected == 1 })
	if st := e.sim.Stats(); st.Accepted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestReturnName(t *testing.T) {
	for _, tc := range []struct {
		pattern, stem, want string
		bad                 bool
	}{
		{"DEMO_RET_*.txt.p7", "B1", "DEMO_RET_B1.txt.p7", false},
		{"RET_*.p7", "B 1/2", "RET_B_1_2.p7", false},
		{"RET_??_*_*.txt", "X", "RET_00_X_.txt", false},
		{"R[AB]_*", "7", "RA_7", false},
		{`R\*_*`, "7", "R*_7", false},
		{"RET.txt", "X", "", true},
		{"R[^A]_*", "X", "", true},
	} {
		got, err := returnName(tc.pattern, tc.stem)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("returnName(%q, %q) = %q, %v; want %q (error %v)", tc.pattern, tc.stem, got, err, tc.want, tc.bad)
		}
	}
}

func TestBatchNoFromName(t *testing.T) {
	for _, tc := range []struct{ tmpl, name, want string }{
		{"DEMO_PAY_{bank_batch_no}.txt.p7", "DEMO_PAY_B0001.txt.p7", "B0001"},
		{"{code}_{date}_{bank_batch_no}_{file_seq:3}.dat", "ICBC_20261128_X9_001.dat", "X9"},
		{"DEMO_PAY_{bank_batch_no}.txt.p7", "other.txt", ""},
		{"no_placeholder.txt", "no_placeholder.txt", ""},
	} {
		if got := batchNoFromName(tc.tmpl)(tc.name); got != tc.want {
			t.Errorf("batchNoFromName(%q)(%q) = %q, want %q", tc.tmpl, tc.name, got, tc.want)
		}
	}
}

func TestSetupKeysIdempotent(t *testing.T) {
	ks := testKeys(t)
	again, err := SetupKeys(ks.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.HostKeyFingerprint != ks.HostKeyFingerprint || !again.Bank.Cert.Equal(ks.Bank.Cert) || !again.Gateway.Cert.Equal(ks.Gateway.Cert) {
		t.Fatal("second SetupKeys replaced keys")
	}
	if _, err := SetupKeys(ks.Dir, []byte("another passphrase")); err == nil {
		t.Fatal("SetupKeys accepted a passphrase that differs from the file's")
	}
	for _, f := range []string{ks.PassphraseFile, ks.DataKeyFile, ks.GatewayKeyFile, ks.GatewayCertFile, ks.BankKeyFile,
		ks.BankCertFile, ks.HostKeyFile, ks.HostPubFile, ks.ClientKeyFile, ks.ClientPubFile, ks.KnownHostsFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	pubs, err := LoadAuthorizedKeys(ks.ClientPubFile)
	if err != nil || len(pubs) != 1 || !bytes.Equal(pubs[0].Marshal(), ks.ClientKey.PublicKey().Marshal()) {
		t.Fatalf("client .pub: %v", err)
	}
	// A partial party is refused rather than silently re-made.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bank-demo.cert.pem"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := SetupKeys(dir, []byte("p")); err == nil {
		t.Fatal("incomplete party accepted")
	}
}

// TestFaultsFile: another process sets faults through <root>/sim-faults.json.
func TestFaultsFile(t *testing.T) {
	e := start(t, "", nil)
	want := Faults{DuplicateReturn: true, DropMidUpload: 1, SlowWrites: time.Millisecond, LateReturn: 30 * time.Millisecond}
	if err := WriteFaultsFile(e.root, want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "faults applied", 10*time.Second, func() bool { return e.sim.faults() == want })
	sealed, _ := e.batch("B0300", 4, e.ks.Gateway)
	if err := e.send("B0300", "DEMO_PAY_B0300.txt.p7", sealed); err == nil {
		t.Fatal("armed drop did not happen")
	}
	if err := e.send("B0300", "DEMO_PAY_B0300.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two return files", 10*time.Second, func() bool { return len(e.feedback()) == 2 })
	// The same faults written again arm the drop again; junk is ignored.
	if err := WriteFaultsFile(e.root, want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drop re-armed", 10*time.Second, func() bool { return e.sim.faults().DropMidUpload == 1 })
	if err := os.WriteFile(filepath.Join(e.root, FaultsFile), []byte(`{"late_return":"soon"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if got := e.sim.faults(); got != want {
		t.Fatalf("a bad faults file changed the faults: %+v", got)
	}
	for _, bad := range []string{`{`, `{"slow_writes":"-1s"}`, `{"drop_mid_upload":-1}`} {
		if _, err := parseFaults([]byte(bad)); err == nil {
			t.Errorf("parseFaults(%s) accepted", bad)
		}
	}
}

func TestTooManyRecordsRejected(t *testing.T) {
	e := start(t, "", func(c *Config) { c.Profile.MaxRecordsPerFile = 3 })
	sealed, _ := e.batch("B0400", 4, e.ks.Gateway)
	if err := e.send("B0400", "DEMO_PAY_B0400.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rejection", 10*time.Second, func() bool { return e.sim.Stats().Rejected == 1 })
	if st := e.sim.Stats(); st.Accepted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}
