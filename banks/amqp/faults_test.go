package amqp

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
	"yktgw/banks/banktest"
	"yktgw/internal/sshtest"
)

// viaProxy returns the broker URL with its host replaced by a TCP proxy
// the test can cut.
func viaProxy(t *testing.T, u string) (string, *sshtest.Proxy) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p := sshtest.StartProxy(t, pu.Host)
	pu.Host = p.Addr
	return pu.String(), p
}

// deliver does what the gateway does with a channel (money rule 5): send;
// on an unknown outcome ask the bank, and send again only what provably did
// not arrive; retry retryable errors. It returns the steps taken.
func deliver(t *testing.T, ch banks.Channel, o *banks.Outbound) []string {
	t.Helper()
	var steps []string
	p := ch.(banks.Prober)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for attempt := 0; attempt < 20; attempt++ {
		_, err := ch.Send(ctx, o)
		switch {
		case err == nil:
			return append(steps, "confirmed")
		case errors.Is(err, banks.ErrOutcomeUnknown):
			steps = append(steps, "unknown")
			for {
				r, perr := p.Probe(ctx, o)
				if r == banks.ProbeUnknown {
					if !banks.IsRetryable(perr) {
						t.Fatalf("probe: %v", perr)
					}
					time.Sleep(100 * time.Millisecond)
					continue
				}
				steps = append(steps, "probe:"+r.String())
				if r == banks.ProbeArrived {
					return steps
				}
				if r != banks.ProbeNotArrived {
					t.Fatalf("probe = %v", r)
				}
				break
			}
		case banks.IsRetryable(err):
			steps = append(steps, "retryable")
			time.Sleep(100 * time.Millisecond)
		default:
			t.Fatalf("Send: permanent error %v", err)
		}
	}
	t.Fatalf("not delivered after 20 attempts: %v", steps)
	return nil
}

// The broker connection is cut while a message is being published (part
// of its frames on the wire) and right after the publish, before its
// confirm: the outcome is reported unknown (or confirmed), the probe tells
// the truth, and the bank ends up with exactly one copy.
func TestFaultConnectionDroppedMidPublish(t *testing.T) {
	u := needBroker(t)
	cases := []struct {
		name string
		arm  func(p *sshtest.Proxy, c *Channel)
	}{
		{"mid-body", func(p *sshtest.Proxy, c *Channel) { p.DropAfter(100 << 10) }},
		{"after-publish-before-confirm", func(p *sshtest.Proxy, c *Channel) {
			c.hook = func(step string) {
				if step == "published" {
					c.hook = nil
					p.DropAll()
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue, fb := randName(t, "out"), randName(t, "fb")
			bank := startTestBank(t, u, queue, fb)
			pu, proxy := viaProxy(t, u)
			ch := newChannel(t, pu, queue, fb, nil)
			if err := ch.(banks.Pinger).Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			data := banktest.RandomBytes(t, 300<<10)
			o := banktest.NewOutbound("TEST", randName(t, "batch")+".dat", data)
			tc.arm(proxy, ch.(*ProbingChannel).Channel)
			steps := deliver(t, ch, o)
			t.Logf("steps: %v; proxy drops %d", steps, proxy.Drops())
			if proxy.Drops() != 1 {
				t.Fatalf("the fault did not fire (drops %d)", proxy.Drops())
			}
			if steps[0] == "confirmed" {
				t.Errorf("steps %v: a cut connection cannot have confirmed", steps)
			}
			if n := bank.Copies(t, o.Name); n != 1 {
				t.Errorf("the bank got %d copies, want exactly 1 (steps %v)", n, steps)
			}
			if got := bank.Received(t)[o.Name]; string(got) != string(data) {
				t.Errorf("the bank holds %d bytes, want the %d sent", len(got), len(data))
			}
		})
	}
}

// The bank's queue is deleted and re-declared: a message published while it
// is gone comes back (mandatory) as a retryable error, never a silent drop;
// once the queue is back the same message is confirmed, and the bank has one
// copy of each message. With declare on, the channel re-declares the queue
// itself after the return.
func TestFaultOutboundQueueDeletedAndRedeclared(t *testing.T) {
	u := needBroker(t)
	for _, declare := range []string{"false", "true"} {
		t.Run("declare="+declare, func(t *testing.T) {
			queue, fb := randName(t, "out"), randName(t, "fb")
			bank := startTestBank(t, u, queue, fb)
			ch := newChannel(t, u, queue, fb, map[string]string{"declare": declare})
			ctx := context.Background()
			first := banktest.NewOutbound("TEST", randName(t, "first")+".dat", banktest.RandomBytes(t, 5000))
			if _, err := ch.Send(ctx, first); err != nil {
				t.Fatal(err)
			}
			bank.sync(t)
			bank.deleteQueue(t)
			second := banktest.NewOutbound("TEST", randName(t, "second")+".dat", banktest.RandomBytes(t, 5000))
			_, err := ch.Send(ctx, second)
			if err == nil || errors.Is(err, banks.ErrOutcomeUnknown) || !banks.IsRetryable(err) {
				t.Fatalf("Send to a deleted queue: %v, want a retryable error with a known outcome", err)
			}
			t.Logf("while the queue is gone: %v", err)
			if declare == "false" {
				if _, err := ch.Send(ctx, second); err == nil {
					t.Fatal("Send succeeded though nobody re-declared the queue")
				}
				bank.resubscribe(t)
				if _, err := ch.Send(ctx, second); err != nil {
					t.Fatalf("Send after the bank re-declared its queue: %v", err)
				}
			} else {
				if _, err := ch.Send(ctx, second); err != nil {
					t.Fatalf("Send after the channel re-declared the queue: %v", err)
				}
				bank.resubscribe(t)
			}
			for _, o := range []*banks.Outbound{first, second} {
				if n := bank.Copies(t, o.Name); n != 1 {
					t.Errorf("%s: the bank got %d copies, want 1", o.Name, n)
				}
			}
		})
	}
}

// Feedback survives a cut connection (held messages go back to the queue and
// are listed again, flagged by the broker as redelivered) and a deleted and
// re-declared feedback queue (the listing fails retryably, then works again).
func TestFaultFeedback(t *testing.T) {
	u := needBroker(t)
	queue, fb := randName(t, "out"), randName(t, "fb")
	bank := startTestBank(t, u, queue, fb)
	pu, proxy := viaProxy(t, u)
	ch := newChannel(t, pu, queue, fb, nil)
	ctx := context.Background()
	bank.putFeedback(t, "FB_one.txt", []byte("one"))
	refs, err := ch.ListFeedback(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != "FB_one.txt" {
		t.Fatalf("ListFeedback = %v, %v", refs, err)
	}
	// The gateway applied it; the connection is cut before the ack.
	proxy.DropAll()
	time.Sleep(200 * time.Millisecond)
	err = ch.AckFeedback(ctx, refs[0])
	if err == nil || !banks.IsRetryable(err) {
		t.Fatalf("AckFeedback after the connection was cut: %v, want retryable", err)
	}
	var again []banks.FeedbackRef
	for i := 0; i < 50 && len(again) == 0; i++ {
		again, err = ch.ListFeedback(ctx)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(again) != 1 || again[0].ID != "FB_one.txt" {
		t.Fatalf("after the cut: ListFeedback = %v, %v; want the message again", again, err)
	}
	if err := ch.AckFeedback(ctx, again[0]); err != nil {
		t.Fatal(err)
	}

	// The feedback queue is deleted and re-declared.
	admin := bank.admin(t)
	if _, err := admin.QueueDelete(fb, false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.ListFeedback(ctx); err == nil || !banks.IsRetryable(err) {
		t.Fatalf("ListFeedback of a deleted queue: %v, want retryable", err)
	}
	// The channel re-declares it (declare defaults to true); the bank publishes again.
	if _, err := ch.ListFeedback(ctx); err != nil {
		t.Fatalf("ListFeedback after re-declaring: %v", err)
	}
	bank.putFeedback(t, "FB_two.txt", []byte("two"))
	refs, err = ch.ListFeedback(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != "FB_two.txt" {
		t.Fatalf("ListFeedback = %v, %v", refs, err)
	}
	if err := ch.AckFeedback(ctx, refs[0]); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if got := bank.Archived(t); len(got) != 2 {
		t.Errorf("Archived = %v, want both", got)
	}
}

func (b *testBank) admin(t testing.TB) *amqp091.Channel {
	t.Helper()
	a, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// deleteQueue deletes the bank's outbound queue (its consumer is cancelled
// by the broker).
func (b *testBank) deleteQueue(t testing.TB) {
	t.Helper()
	if _, err := b.admin(t).QueueDelete(b.queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatal("test bank consumer not cancelled by the queue's deletion")
	}
}
