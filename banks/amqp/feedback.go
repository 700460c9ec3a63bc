package amqp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
)

// feedback holds the return messages taken from the feedback queue and not
// yet acknowledged, on one long-lived AMQP channel.
//
// Messages are pulled with basic.get (manual acknowledgement) rather than
// pushed to a consumer: ListFeedback must answer "what is ready now", and a
// push consumer's deliveries arrive at their own pace, so a listing right
// after the bank published could miss a message for no reason. The bound
// basic.qos would put on a consumer is kept here instead: at most
// prefetch messages are held unacknowledged.
type feedback struct {
	mu   sync.Mutex
	cn   *conn
	ac   *amqp091.Channel
	held map[string]*heldMsg
	// acked and lost remember recent ids: acknowledging an acknowledged id
	// again is not an error; an id held on a connection that was lost went
	// back to the queue and will be listed again.
	acked *recent
	lost  *recent
}

type heldMsg struct {
	tag  uint64
	ac   *amqp091.Channel
	body []byte
	at   time.Time
	// warned: its id does not match the pattern and that was logged.
	warned bool
}

func (f *feedback) init() {
	f.held = map[string]*heldMsg{}
	f.acked = newRecent(10000)
	f.lost = newRecent(10000)
}

// lose forgets what was held on cn (the broker requeues it).
func (f *feedback) lose(cn *conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cn == cn {
		f.dropLocked()
	}
}

func (f *feedback) dropLocked() {
	for id := range f.held {
		f.lost.add(id)
	}
	clear(f.held)
	if f.ac != nil {
		_ = f.ac.Close()
	}
	f.ac, f.cn = nil, nil
}

// ListFeedback takes every return message ready in the feedback queue (up
// to prefetch held at once) and lists what is held, by id. The id is the
// message id the bank set, else "sm3-" and the SM3 of the body (stable
// across redeliveries).
func (ch *Channel) ListFeedback(ctx context.Context) ([]banks.FeedbackRef, error) {
	if _, err := ch.live(ctx, "list feedback"); err != nil {
		return nil, err
	}
	f := &ch.fb
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ac != nil && (f.ac.IsClosed() || !f.cn.alive()) {
		f.dropLocked()
	}
	if f.ac == nil {
		cn, err := ch.get(ctx)
		if err != nil {
			return nil, err
		}
		ac, err := ch.channel(ctx, cn)
		if err != nil {
			return nil, err
		}
		f.cn, f.ac = cn, ac
	}
	for len(f.held) < ch.cfg.prefetch {
		if err := ctxErr(ctx, "list feedback"); err != nil {
			return nil, err
		}
		d, ok, err := f.ac.Get(ch.cfg.fbQueue, false)
		if err != nil {
			var ae *amqp091.Error
			if errors.As(err, &ae) && ae.Code == amqp091.NotFound {
				f.cn.undeclared()
			}
			f.dropLocked()
			return nil, banks.Transient(fmt.Errorf("amqp: get from %s: %w", ch.cfg.fbQueue, err))
		}
		if !ok {
			break
		}
		id := d.MessageId
		if id == "" {
			sum := sm3.Sum(d.Body)
			id = "sm3-" + hex.EncodeToString(sum[:16])
		}
		if _, dup := f.held[id]; dup {
			id += "#" + strconv.FormatUint(d.DeliveryTag, 10)
		}
		at := d.Timestamp
		if at.IsZero() {
			at = time.Now()
		}
		f.held[id] = &heldMsg{tag: d.DeliveryTag, ac: f.ac, body: d.Body, at: at}
		f.acked.remove(id)
		f.lost.remove(id)
		if d.Redelivered {
			ch.log.Info("amqp: return message redelivered", "id", id)
		}
	}
	refs := make([]banks.FeedbackRef, 0, len(f.held))
	for id, m := range f.held {
		if ok, _ := path.Match(ch.cfg.pattern, id); !ok {
			if !m.warned {
				m.warned = true
				ch.log.Warn("amqp: return message id does not match feedback_pattern; held unacknowledged, not listed (ops must look)",
					"id", id, "pattern", ch.cfg.pattern)
			}
			continue
		}
		refs = append(refs, banks.FeedbackRef{ID: id, Size: int64(len(m.body)), ModTime: m.at})
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].ID < refs[j].ID })
	return refs, nil
}

// OpenFeedback returns the body of a held return message; banks.ErrNotFound
// when it is not held (never listed, acknowledged, or gone back to the
// queue with a lost connection).
func (ch *Channel) OpenFeedback(ctx context.Context, ref banks.FeedbackRef) (io.ReadCloser, error) {
	if _, err := ch.live(ctx, "open feedback"); err != nil {
		return nil, err
	}
	f := &ch.fb
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.held[ref.ID]
	if !ok {
		return nil, fmt.Errorf("amqp: feedback %q: %w", ref.ID, banks.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(m.body)), nil
}

// AckFeedback acknowledges a held return message to the broker, which then
// deletes it. Acknowledging an id acknowledged before is nil; an id that
// went back to the queue with a lost connection is a retryable error (it
// is listed again); an id never held is banks.ErrNotFound.
func (ch *Channel) AckFeedback(ctx context.Context, ref banks.FeedbackRef) error {
	if _, err := ch.live(ctx, "ack feedback"); err != nil {
		return err
	}
	f := &ch.fb
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.held[ref.ID]
	switch {
	case !ok && f.acked.has(ref.ID):
		return nil
	case !ok && f.lost.has(ref.ID):
		return banks.Transient(fmt.Errorf("amqp: feedback %q went back to the queue with a lost connection; it will be listed again", ref.ID))
	case !ok:
		return fmt.Errorf("amqp: feedback %q: %w", ref.ID, banks.ErrNotFound)
	}
	if err := m.ac.Ack(m.tag, false); err != nil {
		delete(f.held, ref.ID)
		f.lost.add(ref.ID)
		return banks.Transient(fmt.Errorf("amqp: ack feedback %q: %w", ref.ID, err))
	}
	delete(f.held, ref.ID)
	f.acked.add(ref.ID)
	return nil
}

// recent is a bounded set of ids, oldest evicted first.
type recent struct {
	max   int
	set   map[string]bool
	order []string
}

func newRecent(max int) *recent { return &recent{max: max, set: map[string]bool{}} }

func (r *recent) has(id string) bool { return r.set[id] }

func (r *recent) add(id string) {
	if r.set[id] {
		return
	}
	r.set[id] = true
	r.order = append(r.order, id)
	for len(r.order) > r.max {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recent) remove(id string) { delete(r.set, id) }
