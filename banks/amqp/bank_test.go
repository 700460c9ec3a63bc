package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
)

// brokerURL is the real RabbitMQ the tests use (YKT_AMQP_URL overrides).
func brokerURL() string {
	if u := os.Getenv("YKT_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// needBroker skips (or, under YKT_REQUIRE_SERVICES=1, fails) when the
// broker is not reachable.
func needBroker(t testing.TB) string {
	t.Helper()
	u := brokerURL()
	c, err := amqp091.DialConfig(u, amqp091.Config{Dial: amqp091.DefaultDial(3 * time.Second)})
	if err != nil {
		if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ at %s not reachable (YKT_REQUIRE_SERVICES=1): %v", hostOf(u), err)
		}
		t.Skipf("RabbitMQ at %s not reachable, skipping (set YKT_REQUIRE_SERVICES=1 to fail instead): %v", hostOf(u), err)
	}
	c.Close()
	return u
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Host
}

func randName(t testing.TB, what string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("yktgw-test-%s-%s", hex.EncodeToString(b[:]), what)
}

// testBank is a bank's consumer on the real broker, as banktest sees it:
// it takes batch messages from the outbound queue in order (recording the
// bytes by file name, as a bank's books would), answers probes from that
// record, publishes feedback messages and shows which were acknowledged.
type testBank struct {
	t        testing.TB
	url      string
	queue    string
	fbQueue  string
	conn     *amqp091.Connection
	pubCh    *amqp091.Channel
	mu       sync.Mutex
	received map[string][]byte
	copies   map[string]int // messages per file name (duplicates counted)
	barriers map[string]chan struct{}
	put      []string
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
}

// subscribe starts the bank's consumer on its queue.
func (b *testBank) subscribe(t testing.TB) {
	t.Helper()
	cons, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cons.Consume(b.queue, "", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	b.mu.Lock()
	b.done = done
	b.mu.Unlock()
	go b.run(b.ctx, cons, ds, done)
}

// resubscribe re-declares the bank's queue and consumes it again (after
// the queue was deleted).
func (b *testBank) resubscribe(t testing.TB) {
	t.Helper()
	if _, err := b.pubCh.QueueDeclare(b.queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	b.subscribe(t)
}

const typeBarrier = "banktest.barrier"

func startTestBank(t testing.TB, u, queue, fbQueue string) *testBank {
	t.Helper()
	c, err := amqp091.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBank{t: t, url: u, queue: queue, fbQueue: fbQueue, conn: c, received: map[string][]byte{},
		copies: map[string]int{}, barriers: map[string]chan struct{}{}}
	admin, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{queue, fbQueue} {
		if _, err := admin.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	b.pubCh = admin
	if err := admin.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.ctx = ctx
	b.subscribe(t)
	t.Cleanup(func() {
		cancel()
		b.mu.Lock()
		done := b.done
		b.mu.Unlock()
		<-done
		if ch, err := amqp091.Dial(u); err == nil {
			if a, err := ch.Channel(); err == nil {
				a.QueueDelete(queue, false, false, false)
				a.QueueDelete(fbQueue, false, false, false)
			}
			ch.Close()
		}
		c.Close()
	})
	return b
}

func (b *testBank) run(ctx context.Context, cons *amqp091.Channel, ds <-chan amqp091.Delivery, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-ds:
			if !ok {
				return
			}
			if d.Type == typeBarrier {
				b.mu.Lock()
				if c := b.barriers[d.MessageId]; c != nil {
					close(c)
					delete(b.barriers, d.MessageId)
				}
				b.mu.Unlock()
				d.Ack(false)
				continue
			}
			m, err := ParseMessage(d)
			if err != nil {
				b.t.Errorf("test bank: %v", err)
				d.Ack(false)
				continue
			}
			b.mu.Lock()
			if m.Probe {
				have, ok := b.received[m.Name]
				b.mu.Unlock()
				if err := Answer(ctx, cons, m, Judge(m, have, ok)); err != nil {
					b.t.Errorf("test bank: answer: %v", err)
				}
			} else {
				b.copies[m.Name]++
				if _, ok := b.received[m.Name]; !ok {
					b.received[m.Name] = m.Body // the first copy stands
				}
				b.mu.Unlock()
			}
			d.Ack(false)
		}
	}
}

// sync waits until the bank consumer has taken every message published to
// its queue before the call (an in-band barrier: the queue is FIFO).
func (b *testBank) sync(t testing.TB) {
	t.Helper()
	id := randName(t, "barrier")
	c := make(chan struct{})
	b.mu.Lock()
	b.barriers[id] = c
	b.mu.Unlock()
	if err := b.pubCh.Publish("", b.queue, false, false, amqp091.Publishing{Type: typeBarrier, MessageId: id}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatal("test bank: barrier not seen within 20s")
	}
}

func (b *testBank) Received(t *testing.T) map[string][]byte {
	b.sync(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string][]byte, len(b.received))
	for k, v := range b.received {
		out[k] = v
	}
	return out
}

func (b *testBank) Copies(t testing.TB, name string) int {
	b.sync(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.copies[name]
}

func (b *testBank) Replace(t *testing.T, name string, data []byte) {
	b.sync(t)
	b.mu.Lock()
	b.received[name] = data
	b.mu.Unlock()
}

func (b *testBank) PutFeedback(t *testing.T, name string, data []byte) {
	b.putFeedback(t, name, data)
}

func (b *testBank) putFeedback(t testing.TB, name string, data []byte) {
	t.Helper()
	dc, err := b.pubCh.PublishWithDeferredConfirm("", b.fbQueue, true, false, amqp091.Publishing{
		DeliveryMode: amqp091.Persistent, MessageId: name, Timestamp: time.Now(), Body: data})
	if err != nil {
		t.Fatal(err)
	}
	if !dc.Wait() {
		t.Fatal("test bank: feedback nacked")
	}
	b.mu.Lock()
	b.put = append(b.put, name)
	b.mu.Unlock()
}

func (b *testBank) Backdate(t *testing.T, name string, age time.Duration) {} // messages have no age

// Archived lists the feedback messages published and no longer in the
// feedback queue (acknowledged and deleted by the broker). Valid when no
// channel holds any unacknowledged (banktest calls it after Close).
func (b *testBank) Archived(t *testing.T) []string {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close() // requeues what it took
	inQueue := map[string]bool{}
	for {
		d, ok, err := ch.Get(b.fbQueue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		inQueue[d.MessageId] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, n := range b.put {
		if !inQueue[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// newChannel opens the plugin through the registry with test options.
func newChannel(t testing.TB, u, queue, fbQueue string, extra map[string]string) banks.Channel {
	t.Helper()
	o := banks.Options{"url": u, "outbound_queue": queue, "feedback_queue": fbQueue, "probe": "true", "timeout": "5s", "heartbeat": "2s"}
	for k, v := range extra {
		o[k] = v
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.Default()
	}
	ch, err := banks.New(banks.WithLogger(context.Background(), log), Kind, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

var _ = net.JoinHostPort
