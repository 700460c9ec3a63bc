package sftp

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"yktgw/banks"
	"yktgw/banks/banktest"
	"yktgw/internal/sshtest"
)

// dirBank is the bank side of a test server: its directories on disk.
type dirBank struct{ out, in, archive string }

func newDirBank(t testing.TB, root string) *dirBank {
	b := &dirBank{out: filepath.Join(root, "out"), in: filepath.Join(root, "in")}
	b.archive = filepath.Join(b.in, "archive")
	for _, d := range []string{b.out, b.in} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

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

const testMinAge = 10 * time.Second

func options(s *sshtest.Server, b *dirBank) banks.Options {
	return banks.Options{
		"host":             s.Host,
		"port":             strconv.Itoa(s.Port),
		"user":             s.User,
		"key_file":         s.KeyFile,
		"host_key":         s.HostKeyLine,
		"outbound_dir":     b.out,
		"inbound_dir":      b.in,
		"feedback_pattern": "FB_*.txt",
		"min_age":          testMinAge.String(),
		"settle":           "20ms",
		"timeout":          "10s",
		"max_conns":        "4",
	}
}

func open(t testing.TB, o banks.Options) *Channel {
	t.Helper()
	ctx := context.Background()
	if !testing.Verbose() {
		ctx = banks.WithLogger(ctx, slog.New(slog.DiscardHandler))
	}
	ch, err := banks.New(ctx, Kind, o)
	if err != nil {
		t.Fatalf("banks.New: %v", err)
	}
	return ch.(*Channel)
}

func runSuite(t *testing.T, s *sshtest.Server) {
	b := newDirBank(t, s.Dir)
	banktest.Run(t, banktest.Opts{
		New:                 func(t *testing.T) banks.Channel { return open(t, options(s, b)) },
		Bank:                b,
		MinAge:              testMinAge,
		IgnoredFeedbackName: "OTHER_1.txt",
	})
}

func TestConformanceInProcess(t *testing.T) {
	runSuite(t, sshtest.StartInProcess(t).Server)
}

func TestConformanceOpenSSH(t *testing.T) {
	runSuite(t, sshtest.StartOpenSSH(t))
}

func TestHostKeyRefused(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	other := sshtest.StartInProcess(t) // another server: another host key
	b := newDirBank(t, srv.Dir)
	for _, pin := range []string{other.HostKeyLine, other.HostKeyFingerprint} {
		o := options(srv.Server, b)
		o["host_key"] = pin
		ch := open(t, o)
		defer ch.Close()
		if err := ch.Ping(context.Background()); !errors.Is(err, banks.ErrHostKey) {
			t.Errorf("pin %q: Ping err = %v, want ErrHostKey", pin, err)
		} else if banks.IsRetryable(err) {
			t.Errorf("host key error is retryable: %v", err)
		}
		_, err := ch.Send(context.Background(), banktest.NewOutbound("T", "hk.dat", []byte("x")))
		if !errors.Is(err, banks.ErrHostKey) {
			t.Errorf("Send err = %v, want ErrHostKey", err)
		}
	}
	// The right fingerprint works.
	o := options(srv.Server, b)
	o["host_key"] = srv.HostKeyFingerprint
	ch := open(t, o)
	defer ch.Close()
	if err := ch.Ping(context.Background()); err != nil {
		t.Errorf("Ping with the right fingerprint: %v", err)
	}
}

func TestHostKeyRequired(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	for _, v := range []string{"", "   ", "# only a comment\n"} {
		o := options(srv.Server, b)
		o["host_key"] = v
		if _, err := banks.New(context.Background(), Kind, o); err == nil || !strings.Contains(err.Error(), "host_key") {
			t.Errorf("host_key %q: err = %v, want construction refused", v, err)
		}
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("host_key %q: sftp.New accepted it", v)
		}
	}
}

func TestAuthRefused(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	o["key_file"], _ = sshtest.ClientKey(t, t.TempDir(), "stranger")
	ch := open(t, o)
	defer ch.Close()
	err := ch.Ping(context.Background())
	if !errors.Is(err, banks.ErrAuth) || banks.IsRetryable(err) {
		t.Errorf("Ping with an unknown client key: err = %v, want permanent ErrAuth", err)
	}
}

func TestOptionsProblemsListed(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	o["port"] = "70000"
	o["min_age"] = "soon"
	o["max_conns"] = "0"
	o["feedback_pattern"] = "[x"
	o["key_file"] = "relative/key"
	_, err := banks.New(context.Background(), Kind, o)
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"port", "min_age", "max_conns", "feedback_pattern", "key_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestMissingKeyFile(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	o := options(srv.Server, newDirBank(t, srv.Dir))
	o["key_file"] = filepath.Join(t.TempDir(), "missing")
	if _, err := banks.New(context.Background(), Kind, o); err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Errorf("missing key file: err = %v", err)
	}
}

func TestEncryptedKey(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	// Re-encrypt the authorized key with a passphrase.
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc")
	pass := filepath.Join(dir, "pass")
	encryptKey(t, srv.KeyFile, enc, "s3cret-phrase")
	if err := os.WriteFile(pass, []byte("s3cret-phrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o["key_file"] = enc
	if _, err := banks.New(context.Background(), Kind, o); err == nil || !strings.Contains(err.Error(), "key_passphrase_file") {
		t.Errorf("encrypted key without passphrase: err = %v", err)
	}
	o["key_passphrase_file"] = pass
	ch := open(t, o)
	defer ch.Close()
	if err := ch.Ping(context.Background()); err != nil {
		t.Errorf("Ping with encrypted key: %v", err)
	}
}

// TestDropMidUpload: the server drops the connection while the bytes are
// still flowing. Send fails (retryable, known outcome), no final-named file
// exists, and the next Send re-dials and delivers.
func TestDropMidUpload(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv.Server, b))
	defer ch.Close()
	data := banktest.RandomBytes(t, 3<<20)
	o := banktest.NewOutbound("T", "drop.dat", data)
	if err := ch.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.DropAfter(1 << 20)
	_, err := ch.Send(context.Background(), o)
	if err == nil {
		t.Fatal("Send succeeded through a dropped connection")
	}
	if !banks.IsRetryable(err) {
		t.Errorf("err = %v, want retryable", err)
	}
	if errors.Is(err, banks.ErrOutcomeUnknown) {
		t.Errorf("drop mid-upload reported outcome unknown: %v", err)
	}
	if srv.Drops() != 1 {
		t.Fatalf("server dropped %d connections, want 1", srv.Drops())
	}
	if _, err := os.Stat(filepath.Join(b.out, "drop.dat")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final name exists after a dropped upload (stat err %v)", err)
	}
	if r, err := ch.Probe(context.Background(), o); err != nil || r != banks.ProbeNotArrived {
		t.Errorf("Probe = %v, %v; want not_arrived", r, err)
	}
	if _, err := ch.Send(context.Background(), o); err != nil {
		t.Fatalf("Send after re-dial: %v", err)
	}
	if srv.Conns() < 2 {
		t.Errorf("server saw %d connections, want a re-dial", srv.Conns())
	}
	got, err := os.ReadFile(filepath.Join(b.out, "drop.dat"))
	if err != nil || len(got) != len(data) {
		t.Fatalf("delivered %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(b.out, tempName("drop.dat"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left after successful retry")
	}
}

// TestPlainRename covers servers without posix-rename@openssh.com.
func TestPlainRename(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv.Server, b))
	defer ch.Close()
	ch.noPosixRename = true
	data := []byte("plain rename")
	o := banktest.NewOutbound("T", "plain.dat", data)
	if _, err := ch.Send(context.Background(), o); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := ch.Send(context.Background(), o); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(b.out, "plain.dat"))
	if string(got) != string(data) {
		t.Errorf("delivered %q", got)
	}
	// The final name taken by someone else between check and rename is a
	// conflict, not an overwrite.
	if err := ch.rename(mustConn(t, ch), "/nonexistent-temp", filepath.Join(b.out, "plain.dat"), 1); !errors.Is(err, banks.ErrConflict) {
		t.Errorf("rename onto an existing name: %v, want ErrConflict", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.out, "plain.dat")); string(got) != string(data) {
		t.Errorf("existing file changed to %q", got)
	}
}

func mustConn(t *testing.T, ch *Channel) *conn {
	cn, err := ch.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cn
}

// TestGrowingFeedbackSkipped: a file whose size changes between the two
// stats is not listed that round.
func TestGrowingFeedbackSkipped(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	o["settle"] = "300ms"
	ch := open(t, o)
	defer ch.Close()
	p := filepath.Join(b.in, "FB_growing.txt")
	if err := os.WriteFile(p, []byte("part one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(p, old, old)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_, _ = f.WriteString("more\n")
				_ = os.Chtimes(p, old, old) // an uploader that keeps the old mtime
			}
		}
	}()
	refs, err := ch.ListFeedback(context.Background())
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Errorf("growing file listed: %+v", refs)
	}
	refs, err = ch.ListFeedback(context.Background())
	if err != nil || len(refs) != 1 {
		t.Errorf("settled file: refs = %+v, %v; want it listed", refs, err)
	}
}

// TestAckKeepsEarlierArchive: a second return file with an already
// archived name is archived beside it, not over it.
func TestAckKeepsEarlierArchive(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv.Server, b))
	defer ch.Close()
	ctx := context.Background()
	for _, body := range []string{"first", "second"} {
		b.PutFeedback(t, "FB_same.txt", []byte(body))
		if err := ch.AckFeedback(ctx, banks.FeedbackRef{ID: "FB_same.txt"}); err != nil {
			t.Fatalf("Ack %s: %v", body, err)
		}
	}
	arch := b.Archived(t)
	if len(arch) != 2 {
		t.Fatalf("archive = %v, want both files", arch)
	}
	first, _ := os.ReadFile(filepath.Join(b.archive, "FB_same.txt"))
	if string(first) != "first" {
		t.Errorf("earlier archive overwritten: %q", first)
	}
}

func TestBadNames(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv.Server, b))
	defer ch.Close()
	for _, n := range []string{"", "..", "../x", "a/b", "a\\b"} {
		if _, err := ch.Send(context.Background(), banktest.NewOutbound("T", n, []byte("x"))); err == nil {
			t.Errorf("Send name %q accepted", n)
		}
		if _, err := ch.OpenFeedback(context.Background(), banks.FeedbackRef{ID: n}); err == nil {
			t.Errorf("OpenFeedback %q accepted", n)
		}
	}
}

// TestNoProgressTimeout: an operation that stalls longer than the timeout
// fails as retryable and frees the channel.
func TestNoProgressTimeout(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	o["timeout"] = "300ms"
	ch := open(t, o)
	defer ch.Close()
	release := make(chan struct{})
	defer close(release)
	data := []byte("stall")
	out := banktest.NewOutbound("T", "stall.dat", data)
	out.Open = func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("st"), blockReader(release))), nil
	}
	start := time.Now()
	_, err := ch.Send(context.Background(), out)
	if !banks.IsRetryable(err) || !errors.Is(err, errNoProgress) {
		t.Errorf("stalled Send: err = %v, want retryable no-progress", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("stalled Send returned after %s", el)
	}
	if err := ch.Ping(context.Background()); err != nil {
		t.Errorf("Ping after timeout: %v", err)
	}
}

type blockReader <-chan struct{}

func (b blockReader) Read([]byte) (int, error) { <-b; return 0, io.ErrUnexpectedEOF }

func encryptKey(t *testing.T, from, to, pass string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// ssh-keygen can use 1 KDF round (fast under -race); x/crypto always
	// uses 16.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		if err := os.WriteFile(to, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(keygen, "-q", "-p", "-a", "1", "-P", "", "-N", pass, "-f", to).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -p: %v: %s", err, out)
		}
		return
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "enc", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOutcomeUnknown: the connection dies once every byte is written,
// before or after the rename. Send reports ErrOutcomeUnknown (so the
// gateway probes), and Probe tells the two cases apart.
func TestOutcomeUnknown(t *testing.T) {
	servers := map[string]func(t *testing.T) (*sshtest.Server, string, func()){
		"inprocess": func(t *testing.T) (*sshtest.Server, string, func()) {
			srv := sshtest.StartInProcess(t)
			return srv.Server, strconv.Itoa(srv.Port), srv.DropAll
		},
		"openssh": func(t *testing.T) (*sshtest.Server, string, func()) {
			srv := sshtest.StartOpenSSH(t)
			proxy := sshtest.StartProxy(t, srv.Addr)
			return srv, strconv.Itoa(proxy.Port), proxy.DropAll
		},
	}
	for _, server := range []string{"inprocess", "openssh"} {
		for _, tt := range []struct {
			step string
			want banks.ProbeResult
		}{
			{"before-rename", banks.ProbeNotArrived},
			{"after-rename", banks.ProbeArrived},
		} {
			t.Run(server+"/"+tt.step, func(t *testing.T) {
				srv, port, dropAll := servers[server](t)
				b := newDirBank(t, srv.Dir)
				o := options(srv, b)
				o["port"] = port
				ch := open(t, o)
				defer ch.Close()
				ch.hook = func(step string) {
					if step == tt.step {
						dropAll()
						time.Sleep(50 * time.Millisecond) // let the cut reach the client
					}
				}
				data := banktest.RandomBytes(t, 100_000)
				out := banktest.NewOutbound("T", "unknown.dat", data)
				_, err := ch.Send(context.Background(), out)
				if !errors.Is(err, banks.ErrOutcomeUnknown) {
					t.Fatalf("Send: err = %v, want ErrOutcomeUnknown", err)
				}
				ch.hook = nil
				r, err := ch.Probe(context.Background(), out)
				if err != nil || r != tt.want {
					t.Fatalf("Probe = %v, %v; want %v", r, err, tt.want)
				}
				// The gateway's follow-up: re-send only if not arrived; Send
				// is safe either way and ends with one delivered copy.
				if _, err := ch.Send(context.Background(), out); err != nil {
					t.Fatalf("follow-up Send: %v", err)
				}
				got, err := os.ReadFile(filepath.Join(b.out, "unknown.dat"))
				if err != nil || len(got) != len(data) {
					t.Fatalf("delivered %d bytes, %v", len(got), err)
				}
			})
		}
	}
}

// TestCancelDuringCommit: a ctx cancelled while the file is being renamed
// gives ErrOutcomeUnknown wrapping context.Canceled.
func TestCancelDuringCommit(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv.Server, b))
	defer ch.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch.hook = func(step string) {
		if step == "before-rename" {
			cancel()
			time.Sleep(100 * time.Millisecond)
		}
	}
	_, err := ch.Send(ctx, banktest.NewOutbound("T", "commit.dat", []byte("bytes")))
	if !errors.Is(err, banks.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown and context.Canceled", err)
	}
}

// TestDialFailures: refused connections and silent servers give prompt,
// retryable errors; a cancelled dial gives the ctx error.
func TestDialFailures(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // accept, never speak
		}
	}()
	silentPort := silent.Addr().(*net.TCPAddr).Port

	o := options(srv.Server, b)
	o["timeout"] = "300ms"
	o["port"] = strconv.Itoa(closedPort)
	ch := open(t, o)
	defer ch.Close()
	if err := ch.Ping(context.Background()); err == nil || !banks.IsRetryable(err) {
		t.Errorf("refused: err = %v, want retryable", err)
	}

	o["port"] = strconv.Itoa(silentPort)
	ch2 := open(t, o)
	defer ch2.Close()
	start := time.Now()
	if err := ch2.Ping(context.Background()); err == nil || !banks.IsRetryable(err) {
		t.Errorf("silent server: err = %v, want retryable", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("silent server: took %s with a 300ms timeout", el)
	}

	o["timeout"] = "30s"
	ch3 := open(t, o)
	defer ch3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = ch3.Ping(ctx)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("cancelled dial took %s", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired ctx during dial: err = %v, want context.DeadlineExceeded", err)
	}
}

// TestMaxConnsBound: with max_conns=1, an operation in flight holds the
// only slot: another call waits for it (and gives up with its ctx), and
// runs once the slot is free. Close fails waiting calls with ErrClosed.
func TestMaxConnsBound(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	o := options(srv.Server, b)
	o["max_conns"] = "1"
	ch := open(t, o)
	defer ch.Close()
	release := make(chan struct{})
	started := make(chan struct{})
	out := banktest.NewOutbound("T", "slot.dat", []byte("slot"))
	out.Open = func() (io.ReadCloser, error) {
		close(started)
		return io.NopCloser(blockReader(release)), nil
	}
	sendErr := make(chan error, 1)
	go func() { _, err := ch.Send(context.Background(), out); sendErr <- err }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ch.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping while the only slot is busy: err = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := <-sendErr; err == nil {
		t.Error("Send with a failing source succeeded")
	}
	if err := ch.Ping(context.Background()); err != nil {
		t.Errorf("Ping once the slot is free: %v", err)
	}
	ch.Close()
	if err := ch.Ping(context.Background()); !errors.Is(err, banks.ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
}

// TestDropMidUploadOpenSSH: the network under a real sshd fails while the
// bytes flow: Send fails retryably with a known outcome, no final-named
// file appears, and a retry over a fresh connection delivers exactly once.
func TestDropMidUploadOpenSSH(t *testing.T) {
	s := sshtest.StartOpenSSH(t)
	proxy := sshtest.StartProxy(t, s.Addr)
	b := newDirBank(t, s.Dir)
	o := options(s, b)
	o["port"] = strconv.Itoa(proxy.Port)
	ch := open(t, o)
	defer ch.Close()
	if err := ch.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	data := banktest.RandomBytes(t, 4<<20)
	out := banktest.NewOutbound("T", "drop-real.dat", data)
	proxy.DropAfter(1 << 20)
	_, err := ch.Send(context.Background(), out)
	if err == nil || !banks.IsRetryable(err) || errors.Is(err, banks.ErrOutcomeUnknown) {
		t.Fatalf("Send through a cut connection: err = %v, want retryable, known outcome", err)
	}
	if proxy.Drops() != 1 {
		t.Fatalf("proxy cut %d connections, want 1", proxy.Drops())
	}
	if _, err := os.Stat(filepath.Join(b.out, "drop-real.dat")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final name exists after a cut upload (stat err %v)", err)
	}
	if r, err := ch.Probe(context.Background(), out); err != nil || r != banks.ProbeNotArrived {
		t.Fatalf("Probe = %v, %v; want not_arrived", r, err)
	}
	if _, err := ch.Send(context.Background(), out); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(b.out, "drop-real.dat"))
	if err != nil || len(got) != len(data) {
		t.Fatalf("delivered %d bytes, %v", len(got), err)
	}
	ents, _ := os.ReadDir(b.out)
	if len(ents) != 1 {
		t.Errorf("outbound dir holds %d entries, want only the delivered file", len(ents))
	}
}

func TestHostKeyFile(t *testing.T) {
	srv := sshtest.StartInProcess(t)
	other := sshtest.StartInProcess(t)
	b := newDirBank(t, srv.Dir)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The pin from a known_hosts file works like host_key.
	o := options(srv.Server, b)
	delete(o, "host_key")
	o["host_key_file"] = write("known_hosts", "# the bank\n"+srv.HostKeyLine+"\n")
	ch := open(t, o)
	if err := ch.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with the pin from a file: %v", err)
	}
	ch.Close()
	// Another server's key in the file: a hard host key error.
	o["host_key_file"] = write("other", other.HostKeyLine+"\n")
	ch = open(t, o)
	if err := ch.Ping(context.Background()); !errors.Is(err, banks.ErrHostKey) {
		t.Fatalf("Ping with another key in the file: %v, want ErrHostKey", err)
	}
	ch.Close()
	// Refused at construction: empty file, missing file, relative path, both options.
	for name, set := range map[string]func(banks.Options){
		"empty":    func(o banks.Options) { o["host_key_file"] = write("empty", "\n") },
		"missing":  func(o banks.Options) { o["host_key_file"] = filepath.Join(dir, "nope") },
		"relative": func(o banks.Options) { o["host_key_file"] = "known_hosts" },
		"both": func(o banks.Options) {
			o["host_key_file"] = write("k2", srv.HostKeyLine)
			o["host_key"] = srv.HostKeyLine
		},
	} {
		o := options(srv.Server, b)
		delete(o, "host_key")
		set(o)
		if _, err := New(context.Background(), o); err == nil || !strings.Contains(err.Error(), "host_key") {
			t.Errorf("%s: err = %v, want construction refused", name, err)
		}
	}
}
