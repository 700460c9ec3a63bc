package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
)

func amqpURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("YKT_AMQP_URL")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	c, err := amqp091.DialConfig(u, amqp091.Config{Dial: amqp091.DefaultDial(3 * time.Second)})
	if err != nil {
		if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ not reachable (YKT_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("RabbitMQ not reachable, skipping (YKT_REQUIRE_SERVICES=1 fails instead): %v", err)
	}
	c.Close()
	return u
}

type amqpEnv struct {
	*env
	bank *AMQPBank
}

// startAMQP runs the AMQP bank over the DEMO profile on fresh queues and
// connects the real amqp channel (probe on) to it.
func startAMQP(t *testing.T) *amqpEnv {
	t.Helper()
	u := amqpURL(t)
	ks := testKeys(t)
	var rnd [4]byte
	rand.Read(rnd[:])
	q := "yktgw-simtest-" + hex.EncodeToString(rnd[:])
	e := &env{t: t, ks: ks, prof: demo(t), root: t.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	b, err := NewAMQP(AMQPConfig{URL: u, Queue: q + "-out", FeedbackQueue: q + "-fb", Config: Config{
		Root: e.root, Profile: e.prof, Bank: ks.Bank, Gateway: ks.Gateway.Cert,
		FailRate: 0.3, Seed: 7, Delay: 20 * time.Millisecond, Log: log}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		if c, err := amqp091.Dial(u); err == nil {
			if a, err := c.Channel(); err == nil {
				a.QueueDelete(q+"-out", false, false, false)
				a.QueueDelete(q+"-fb", false, false, false)
			}
			c.Close()
		}
	})
	ch, err := banks.New(banks.WithLogger(context.Background(), log), "amqp", banks.Options{
		"url": u, "outbound_queue": q + "-out", "feedback_queue": q + "-fb", "probe": "true", "timeout": "10s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	e.ch = ch
	e.sim = b.Sim
	return &amqpEnv{env: e, bank: b}
}

func (e *amqpEnv) probe(bbn, name string, data []byte) banks.ProbeResult {
	e.t.Helper()
	r, err := e.ch.(banks.Prober).Probe(context.Background(), outbound(bbn, name, data))
	if err != nil {
		e.t.Fatalf("Probe: %v", err)
	}
	return r
}

func TestAMQPSendAcceptReturnDuplicate(t *testing.T) {
	e := startAMQP(t)
	sealed, recs := e.batch("B0001", 40, e.ks.Gateway)
	const name = "DEMO_PAY_B0001.txt.p7"
	if r := e.probe("B0001", name, sealed); r != banks.ProbeNotArrived {
		t.Fatalf("probe before sending = %v", r)
	}
	if err := e.send("B0001", name, sealed); err != nil {
		t.Fatal(err)
	}
	if r := e.probe("B0001", name, sealed); r != banks.ProbeArrived {
		t.Fatalf("probe after sending = %v", r)
	}
	var refs []banks.FeedbackRef
	waitFor(t, "return message", 10*time.Second, func() bool { refs = e.feedback(); return len(refs) > 0 })
	if len(refs) != 1 || refs[0].ID != "DEMO_RET_B0001.txt.p7" {
		t.Fatalf("feedback = %+v", refs)
	}
	res, sum, err := e.open(e.fetch(refs[0]))
	if err != nil || len(res) != len(recs) || sum.BankBatchNo != "B0001" {
		t.Fatalf("return: %d results for %d records, %+v, %v", len(res), len(recs), sum, err)
	}
	var paid, failed int64
	for _, r := range res {
		if r.Paid {
			paid += r.AmountFen
		} else {
			failed += r.AmountFen
		}
	}
	st := e.bank.Stats()
	if st.Accepted != 1 || st.ReturnsWritten != 1 || st.PaidFen != paid || st.FailedFen != failed || st.Records != 40 {
		t.Fatalf("stats = %+v (paid %d failed %d)", st, paid, failed)
	}
	// A second copy of the same message (a re-send): nothing new.
	if err := e.send("B0001", name, sealed); err != nil {
		t.Fatal(err)
	}
	if r := e.probe("B0001", name, sealed); r != banks.ProbeArrived {
		t.Fatalf("probe after the re-send = %v", r)
	}
	// Other bytes under the same name: the probe says mismatch.
	other, _ := e.batch("B0001", 3, e.ks.Gateway)
	if r := e.probe("B0001", name, other); r != banks.ProbeMismatch {
		t.Fatalf("probe with other bytes = %v", r)
	}
	// The same batch under another name: a duplicate batch number, never paid.
	if err := e.send("B0001", "DEMO_PAY_B0001_again.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "duplicate counted", 10*time.Second, func() bool { return e.bank.Stats().Duplicates == 1 })
	time.Sleep(300 * time.Millisecond)
	if st := e.bank.Stats(); st.Accepted != 1 || st.ReturnsWritten != 1 {
		t.Fatalf("stats after copies = %+v", st)
	}
	if err := e.ch.AckFeedback(context.Background(), refs[0]); err != nil {
		t.Fatal(err)
	}
	if refs := e.feedback(); len(refs) != 0 {
		t.Fatalf("feedback after ack = %+v", refs)
	}
}

// The bank's connection drops after it took a message and before it
// recorded it: the broker redelivers it and it is accepted once.
func TestAMQPDropBeforeRecorded(t *testing.T) {
	e := startAMQP(t)
	e.bank.SetFaults(Faults{DropMidUpload: 1, DuplicateReturn: true})
	sealed, _ := e.batch("B0002", 10, e.ks.Gateway)
	if err := e.send("B0002", "DEMO_PAY_B0002.txt.p7", sealed); err != nil {
		t.Fatal(err)
	}
	var refs []banks.FeedbackRef
	waitFor(t, "return message and its duplicate copy", 15*time.Second, func() bool { refs = e.feedback(); return len(refs) == 2 })
	st := e.bank.Stats()
	if st.DroppedUploads != 1 || st.Accepted != 1 || st.Duplicates != 0 || st.ReturnsWritten != 1 || st.DuplicateReturns != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if string(e.fetch(refs[0])) != string(e.fetch(refs[1])) {
		t.Fatal("the duplicate return differs from the original")
	}
}
