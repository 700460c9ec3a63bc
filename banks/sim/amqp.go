package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/crypto/ssh"

	bankamqp "yktgw/banks/amqp"
	"yktgw/crypto"
)

// AMQPConfig configures the simulator's AMQP bank (NewAMQP): the same bank
// as the SFTP one (Config: Root, profile, keys, outcomes, delay; Listen and
// the SSH fields are unused), consuming the gateway's batch messages from
// a queue on a real broker and publishing its sealed return files as
// messages to a feedback queue.
type AMQPConfig struct {
	Config
	// URL is the broker, amqp://user:password@host:port/vhost.
	URL string
	// Exchange and RoutingKey are where the gateway publishes ("" = the
	// default exchange; RoutingKey defaults to Queue); the bank declares
	// the exchange and binds Queue to it when Exchange is set.
	Exchange, RoutingKey string
	// Queue is the bank's inbound queue (our outbound), FeedbackQueue the
	// queue it publishes return messages to. Both are declared durable.
	Queue, FeedbackQueue string
}

// AMQPBank is a simulated bank reached over AMQP 0-9-1.
//
// Its books are the SFTP bank's: a batch message taken from Queue is
// written (temporary name, fsync, rename) under its file name header into
// the outbound directory and only then acknowledged to the broker, and is
// processed from there exactly like an uploaded file (open, verify, parse,
// accept once per bank batch number, outcomes, sealed return after Delay).
// A copy of a message already in the books with the same bytes is
// acknowledged and changes nothing; another message under a name already
// used is kept beside it and so counted as a duplicate batch number, never
// paid. Return files are published, persistent and confirmed, to
// FeedbackQueue (message id = the file name) and moved to feedback-sent/
// after the broker's confirm.
//
// It answers the channel's probes (banks/amqp protocol) from the books:
// the queue is handled in order, one message at a time, so when a probe
// comes every earlier copy of its batch has been written.
//
// Faults: DropMidUpload drops the bank's broker connection after it took
// the next N batch messages and before it wrote or acknowledged them (the
// broker redelivers them); SlowWrites delays each message; the return
// faults (DuplicateReturn, MalformedReturn, LateReturn, WithholdReturns)
// are the SFTP bank's.
type AMQPBank struct {
	*Sim
	acfg AMQPConfig

	amu  sync.Mutex
	conn *amqp091.Connection

	actx   context.Context
	cancel context.CancelFunc
	awg    sync.WaitGroup
}

const sentDir = "feedback-sent"

// NewAMQP checks cfg and opens Root; Start connects.
func NewAMQP(cfg AMQPConfig) (*AMQPBank, error) {
	var errs []error
	if cfg.URL == "" {
		errs = append(errs, errors.New("sim: amqp: broker URL required"))
	}
	if cfg.Queue == "" || cfg.FeedbackQueue == "" || cfg.Queue == cfg.FeedbackQueue {
		errs = append(errs, errors.New("sim: amqp: distinct queue and feedback queue names required"))
	}
	if cfg.RoutingKey == "" {
		cfg.RoutingKey = cfg.Queue
	}
	// The SSH server of New is never started; it is given a throw-away
	// identity only to satisfy New's checks.
	c := cfg.Config
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.HostKey == nil || len(c.AuthorizedKeys) == 0 || c.User == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.NewSignerFromKey(k)
		if err != nil {
			return nil, err
		}
		c.HostKey, c.AuthorizedKeys, c.User = signer, []ssh.PublicKey{signer.PublicKey()}, "unused"
	}
	s, err := New(c)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		if s != nil {
			s.root.Close()
		}
		return nil, errors.Join(errs...)
	}
	s.log = s.log.With("channel", "amqp")
	return &AMQPBank{Sim: s, acfg: cfg}, nil
}

// Start loads the books a previous run left under Root, starts processing,
// and connects to the broker in the background (re-connecting with backoff
// until Close). It fails only if the books cannot be opened; a broker that
// is down is retried.
func (b *AMQPBank) Start(ctx context.Context) error {
	s := b.Sim
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("sim: amqp: Start called twice or after Close")
	}
	for _, d := range []string{s.outDir, s.fbDir, "rejected", ".sim/pending", sentDir} {
		if err := s.root.MkdirAll(d, 0o755); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("sim: mkdir %s: %w", d, err)
		}
	}
	if err := s.loadLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.started = true
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.saveLocked()
	s.wg.Add(2)
	go s.worker()
	go s.scanner()
	s.resumePending()
	s.mu.Unlock()

	b.actx, b.cancel = context.WithCancel(s.ctx)
	b.awg.Add(1)
	go b.run()
	s.log.Info("bank simulator consuming", "queue", b.acfg.Queue, "feedback_queue", b.acfg.FeedbackQueue,
		"root", s.cfg.Root, "fail_rate", s.cfg.FailRate, "seed", s.cfg.Seed)
	return nil
}

// Close stops consuming and publishing, closes the broker connection and
// the books (see Sim.Close). Idempotent.
func (b *AMQPBank) Close() error {
	if b.cancel != nil {
		b.cancel()
	}
	b.amu.Lock()
	if b.conn != nil {
		_ = b.conn.Close()
	}
	b.amu.Unlock()
	b.awg.Wait()
	return b.Sim.Close()
}

// run keeps a broker session going until Close.
func (b *AMQPBank) run() {
	defer b.awg.Done()
	backoff := 100 * time.Millisecond
	for b.actx.Err() == nil {
		started, err := b.session()
		if b.actx.Err() != nil {
			return
		}
		if started {
			backoff = 100 * time.Millisecond
		}
		b.log.Warn("broker session ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-b.actx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session runs one broker connection: declares, consumes in order, answers
// probes and publishes returns, until the connection or the consumer ends.
func (b *AMQPBank) session() (started bool, err error) {
	cfg := b.acfg
	c, err := amqp091.DialConfig(cfg.URL, amqp091.Config{Dial: amqp091.DefaultDial(5 * time.Second), Heartbeat: 5 * time.Second,
		Properties: amqp091.Table{"connection_name": "yktgw-banksim"}})
	if err != nil {
		return false, err
	}
	b.amu.Lock()
	b.conn = c
	b.amu.Unlock()
	defer c.Close()
	ctx, cancel := context.WithCancel(b.actx)
	defer cancel()
	context.AfterFunc(ctx, func() { _ = c.Close() })

	cons, err := c.Channel()
	if err != nil {
		return false, err
	}
	if cfg.Exchange != "" {
		if err := cons.ExchangeDeclare(cfg.Exchange, amqp091.ExchangeDirect, true, false, false, false, nil); err != nil {
			return false, err
		}
	}
	for _, q := range []string{cfg.Queue, cfg.FeedbackQueue} {
		if _, err := cons.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return false, err
		}
	}
	if cfg.Exchange != "" {
		if err := cons.QueueBind(cfg.Queue, cfg.RoutingKey, cfg.Exchange, false, nil); err != nil {
			return false, err
		}
	}
	// One message at a time, in queue order: the probe's honesty rests on it.
	if err := cons.Qos(1, 0, false); err != nil {
		return false, err
	}
	ds, err := cons.Consume(cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return false, err
	}
	answers, err := c.Channel()
	if err != nil {
		return false, err
	}
	b.awg.Add(1)
	go func() {
		defer b.awg.Done()
		defer cancel() // a failed publisher ends the session too
		b.publishReturns(ctx, c)
	}()
	b.log.Info("connected to the broker")
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case d, ok := <-ds:
			if !ok {
				return true, errors.New("consumer ended (connection lost or queue deleted)")
			}
			if err := b.handle(ctx, c, answers, d); err != nil {
				return true, err
			}
		}
	}
}

// handle takes one message from the bank's queue.
func (b *AMQPBank) handle(ctx context.Context, c *amqp091.Connection, answers *amqp091.Channel, d amqp091.Delivery) error {
	s := b.Sim
	f := s.faults()
	if f.SlowWrites > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.SlowWrites):
		}
	}
	m, err := bankamqp.ParseMessage(d)
	if err != nil {
		s.mu.Lock()
		s.st.Rejected++
		s.saveLocked()
		s.mu.Unlock()
		s.log.Warn("rejected message: not paid", "message_id", d.MessageId, "err", err)
		return d.Ack(false)
	}
	if m.Probe {
		have, err := s.readAll(path.Join(s.outDir, m.Name), crypto.DefaultMaxBytes+(1<<20))
		found := err == nil
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			b.log.Error("probe: books not readable; not answered", "file", m.Name, "err", err)
			return d.Ack(false) // the channel asks again
		}
		r := bankamqp.Judge(m, have, found)
		b.log.Info("probe answered", "bank_batch_no", m.BankBatchNo, "file", m.Name, "result", r.String())
		if err := bankamqp.Answer(ctx, answers, m, r); err != nil {
			return err
		}
		return d.Ack(false)
	}
	if s.takeDrop() {
		s.noteDrop(m.Name, 0)
		_ = c.Close() // not written, not acknowledged: the broker redelivers it
		return errors.New("fault: connection dropped before the message was recorded")
	}
	name := m.Name
	if old, err := s.readAll(path.Join(s.outDir, name), crypto.DefaultMaxBytes+(1<<20)); err == nil {
		if sm3.Sum(old) == m.SM3 && int64(len(old)) == m.Size {
			b.log.Info("copy of a message already in the books; acknowledged, nothing new", "file", name, "bank_batch_no", m.BankBatchNo)
			return d.Ack(false)
		}
		// Another message under a used name: kept beside it, so that its
		// bank batch number is judged (a duplicate is never paid).
		name = name + ".other-" + hex.EncodeToString(m.SM3[:4])
	}
	if err := s.writeFileSync(path.Join(s.outDir, name), m.Body); err != nil {
		b.log.Error("message not written to the books; left unacknowledged", "file", name, "err", err)
		return err
	}
	s.enqueue(name)
	return d.Ack(false)
}

// publishReturns publishes every return file in the feedback directory,
// persistent and confirmed, then moves it to feedback-sent/.
func (b *AMQPBank) publishReturns(ctx context.Context, c *amqp091.Connection) {
	s := b.Sim
	pub, err := c.Channel()
	if err != nil {
		return
	}
	if err := pub.Confirm(false); err != nil {
		return
	}
	returns := pub.NotifyReturn(make(chan amqp091.Return, 1))
	confirms := pub.NotifyPublish(make(chan amqp091.Confirmation, 1))
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ents, err := s.root.Open(s.fbDir)
		var names []string
		if err == nil {
			es, _ := ents.ReadDir(-1)
			_ = ents.Close()
			for _, e := range es {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
					names = append(names, e.Name())
				}
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if ctx.Err() != nil {
				return
			}
			if !b.publishOne(ctx, pub, returns, confirms, n) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publishOne publishes one return file; false when the channel is unusable.
func (b *AMQPBank) publishOne(ctx context.Context, pub *amqp091.Channel, returns chan amqp091.Return, confirms chan amqp091.Confirmation, name string) bool {
	s := b.Sim
	src := path.Join(s.fbDir, name)
	data, err := s.readAll(src, crypto.DefaultMaxBytes+(1<<20))
	if err != nil {
		return true
	}
	if err := pub.PublishWithContext(ctx, "", b.acfg.FeedbackQueue, true, false, amqp091.Publishing{
		DeliveryMode: amqp091.Persistent, ContentType: "application/octet-stream", Type: "yktgw.return",
		MessageId: name, Timestamp: time.Now(), AppId: "yktgw-banksim", Body: data,
	}); err != nil {
		b.log.Warn("return message not published", "return_file", name, "err", err)
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(30 * time.Second):
		b.log.Warn("return message not confirmed in time", "return_file", name)
		return false
	case cf, ok := <-confirms:
		if !ok {
			return false
		}
		if !cf.Ack {
			b.log.Warn("return message nacked; will publish again", "return_file", name)
			return true
		}
	}
	select {
	case r, ok := <-returns:
		if ok {
			b.log.Warn("return message unroutable; will publish again", "return_file", name, "code", r.ReplyCode, "text", r.ReplyText)
			return true
		}
	default:
	}
	dst := path.Join(sentDir, name)
	if _, err := s.root.Lstat(dst); err == nil {
		dst = path.Join(sentDir, name+"."+time.Now().UTC().Format("20060102T150405.000000000"))
	}
	if err := s.root.Rename(src, dst); err != nil {
		b.log.Error("published return file not moved aside (it will be published again; the gateway dedupes it)", "return_file", name, "err", err)
		return true
	}
	b.log.Info("return message published", "return_file", name, "bytes", len(data))
	return true
}
