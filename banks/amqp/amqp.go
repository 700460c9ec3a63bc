// Package amqp is the "amqp" bank channel: it publishes each sealed batch
// as one persistent AMQP 0-9-1 message (rabbitmq/amqp091-go) to the bank's
// queue, with publisher confirms and mandatory routing, and takes the
// bank's return messages from a per-bank feedback queue with manual
// acknowledgement.
//
// Guarantees. Send returns a Receipt only after the broker confirmed the
// message (it is then persistent in the bank's durable queue); a message
// the broker cannot route to any queue comes back (mandatory) and is an
// error, never a silent drop; a broker nack is a retryable error; a
// connection lost (or a context ended) after the message went out but
// before its confirm is banks.ErrOutcomeUnknown. The message id is our
// bank batch number, the bank's idempotency key: a re-sent message carries
// the same id and the bank takes it once. Return messages are held
// unacknowledged (at most the prefetch option) until AckFeedback, which the
// gateway calls only after its spool commit; held messages go back to the
// queue when the connection drops, and the gateway recognises them by SM3.
//
// Probe (money rule 5). A broker cannot tell whether a consumer took a
// message, so the channel asks the bank itself, in-band: with the probe
// option on, Probe publishes a probe message (TypeProbe, see protocol.go)
// through the same exchange and routing key as the batches, so it queues
// behind every earlier copy of the batch, and waits for the bank's answer
// on RabbitMQ's direct reply-to. No answer within the timeout is
// ProbeUnknown: the gateway asks again later and never re-sends blindly.
// With the probe option off the channel does not implement banks.Prober,
// and the gateway marks an unknown outcome DEAD with an alarm.
//
// It must not keep delivery state, retry on its own or decide what to
// re-send: that is gateway's job. It never logs the broker URL (it holds
// the password).
package amqp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emmansun/gmsm/sm3"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
	"yktgw/internal/failpoint"
)

// Kind is the channel kind name this package registers.
const Kind = "amqp"

func init() {
	banks.Register(banks.Plugin{
		Name: Kind,
		New: func(ctx context.Context, o banks.Options) (banks.Channel, error) {
			c, err := New(ctx, o)
			if err != nil {
				return nil, err
			}
			if c.cfg.probe {
				return &ProbingChannel{c}, nil
			}
			return c, nil
		},
		Options: OptionSpecs,
	})
}

var (
	_ banks.Channel = (*Channel)(nil)
	_ banks.Pinger  = (*Channel)(nil)
	_ banks.Channel = (*ProbingChannel)(nil)
	_ banks.Prober  = (*ProbingChannel)(nil)
	_ banks.Pinger  = (*ProbingChannel)(nil)
)

// Channel is an AMQP bank channel without the probe (the bank does not
// answer probes). It keeps one connection, dialled on first use and
// re-dialled (with backoff after failed dials) when it is lost. Each Send
// and Probe uses an AMQP channel of its own; feedback uses one long-lived
// AMQP channel. It is safe for concurrent use.
type Channel struct {
	cfg *config
	log *slog.Logger

	mu       sync.Mutex
	cur      *conn
	closed   bool
	pool     []*confirmChannel // idle confirm-mode channels of cur
	dialErrs int               // consecutive failed dials
	nextDial time.Time         // no dial before this after a failed one

	fb feedback

	// hook, when set, is called at named steps of Send ("published") so
	// tests can break the connection exactly there.
	hook func(step string)
}

// ProbingChannel is a Channel whose bank answers probes (option probe:
// true); it implements banks.Prober.
type ProbingChannel struct{ *Channel }

// New checks the options (see OptionSpecs; call through banks.New to get
// defaults filled in) and reads the URL file. It does not connect: the
// first operation (or Ping) dials, so a gateway can start while the broker
// is down. The channel logs to banks.LoggerFrom(ctx). New always returns a
// *Channel; banks.New wraps it in a ProbingChannel when probe is true.
func New(ctx context.Context, o banks.Options) (*Channel, error) {
	full, err := pluginSpec().Validate(o)
	if err != nil {
		return nil, err
	}
	cfg, err := parseOptions(full)
	if err != nil {
		return nil, err
	}
	ch := &Channel{
		cfg: cfg,
		log: banks.LoggerFrom(ctx).With("channel", Kind, "addr", cfg.addr, "queue", cfg.queue),
	}
	ch.fb.init()
	return ch, nil
}

func pluginSpec() banks.Plugin {
	return banks.Plugin{Name: Kind, New: func(context.Context, banks.Options) (banks.Channel, error) { return nil, nil }, Options: OptionSpecs}
}

// conn is one AMQP connection.
type conn struct {
	c        *amqp091.Connection
	dead     chan struct{} // closed when the connection has ended
	declared atomic.Bool   // topology declared on this connection
}

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return !c.c.IsClosed()
	}
}

func ctxErr(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqp: %s: %w", what, err)
	}
	return nil
}

// get returns the live connection, dialling a new one if needed.
func (ch *Channel) get(ctx context.Context) (*conn, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return nil, fmt.Errorf("amqp: %w", banks.ErrClosed)
	}
	if err := ctxErr(ctx, "connect"); err != nil {
		return nil, err
	}
	if ch.cur != nil && ch.cur.alive() {
		return ch.cur, nil
	}
	if ch.cur != nil {
		_ = ch.cur.c.Close()
		ch.cur = nil
	}
	if wait := time.Until(ch.nextDial); wait > 0 {
		return nil, banks.Transient(fmt.Errorf("amqp: broker %s unreachable; next attempt in %s", ch.cfg.addr, wait.Round(time.Millisecond)))
	}
	cn, err := ch.dial(ctx)
	if err != nil {
		if banks.IsRetryable(err) {
			ch.dialErrs++
			back := min(ch.cfg.timeout, 100*time.Millisecond<<min(ch.dialErrs, 10))
			ch.nextDial = time.Now().Add(back)
		}
		return nil, err
	}
	ch.dialErrs, ch.nextDial = 0, time.Time{}
	ch.cur = cn
	return cn, nil
}

func (ch *Channel) dial(parent context.Context) (*conn, error) {
	cfg := ch.cfg
	ctx, cancel := context.WithTimeout(parent, cfg.timeout)
	defer cancel()
	var stops []func() bool
	var tlsCfg *tls.Config
	if cfg.tls != nil {
		tlsCfg = cfg.tls.Clone() // amqp091 writes into it
	}
	acfg := amqp091.Config{
		TLSClientConfig: tlsCfg,
		Heartbeat:       cfg.heartbeat,
		Locale:          "en_US",
		Properties:      amqp091.Table{"connection_name": "yktgw"},
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake is bounded by the same deadline (amqp091 clears
			// it once the connection is open); a cancelled ctx closes the
			// socket so the handshake returns at once.
			if dl, ok := ctx.Deadline(); ok {
				_ = nc.SetDeadline(dl)
			}
			stops = append(stops, context.AfterFunc(ctx, func() { _ = nc.Close() }))
			return nc, nil
		},
	}
	c, err := amqp091.DialConfig(cfg.url, acfg)
	for _, stop := range stops {
		stop()
	}
	if err != nil {
		var ae *amqp091.Error
		var unknownCA x509.UnknownAuthorityError
		var badHost x509.HostnameError
		var invalid x509.CertificateInvalidError
		var verify *tls.CertificateVerificationError
		switch {
		case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid), errors.As(err, &verify):
			return nil, fmt.Errorf("amqp: connect %s: broker certificate: %w (%v)", cfg.addr, banks.ErrHostKey, err)
		case errors.Is(err, amqp091.ErrCredentials), errors.Is(err, amqp091.ErrVhost), errors.Is(err, amqp091.ErrSASL),
			errors.As(err, &ae) && ae.Code == amqp091.AccessRefused:
			return nil, fmt.Errorf("amqp: connect %s: %w (%v)", cfg.addr, banks.ErrAuth, err)
		case parent.Err() != nil:
			return nil, fmt.Errorf("amqp: connect %s: %w", cfg.addr, parent.Err())
		}
		return nil, banks.Transient(fmt.Errorf("amqp: connect %s: %w", cfg.addr, err))
	}
	if parent.Err() != nil {
		_ = c.Close()
		return nil, fmt.Errorf("amqp: connect %s: %w", cfg.addr, parent.Err())
	}
	cn := &conn{c: c, dead: make(chan struct{})}
	closes := c.NotifyClose(make(chan *amqp091.Error, 1))
	go func() {
		e, ok := <-closes
		if ok && e != nil {
			ch.log.Warn("amqp: connection lost", "code", e.Code, "reason", e.Reason)
		}
		close(cn.dead)
		ch.fb.lose(cn)
	}()
	ch.log.Info("amqp: connected")
	return cn, nil
}

// drop closes cn if it is still the current connection (after an error
// that leaves it unusable), so the next call re-dials.
func (ch *Channel) drop(cn *conn) {
	ch.mu.Lock()
	if ch.cur == cn {
		ch.cur = nil
	}
	ch.mu.Unlock()
	_ = cn.c.Close()
}

// channel opens an AMQP channel on cn, declaring the topology first when
// it has not been declared on this connection.
func (ch *Channel) channel(ctx context.Context, cn *conn) (*amqp091.Channel, error) {
	if err := ctxErr(ctx, "open channel"); err != nil {
		return nil, err
	}
	ac, err := cn.c.Channel()
	if err != nil {
		ch.drop(cn)
		return nil, banks.Transient(fmt.Errorf("amqp: open channel: %w", err))
	}
	if !ch.cfg.declare || cn.declared.Load() {
		return ac, nil
	}
	if err := ch.declare(ac); err != nil {
		_ = ac.Close()
		return nil, err
	}
	cn.declared.Store(true)
	return ac, nil
}

// declare declares the exchange, both queues (durable) and the binding;
// each is idempotent on the broker.
func (ch *Channel) declare(ac *amqp091.Channel) error {
	cfg := ch.cfg
	wrap := func(what string, err error) error {
		var ae *amqp091.Error
		if errors.As(err, &ae) && (ae.Code == amqp091.PreconditionFailed || ae.Code == amqp091.AccessRefused) {
			// Exists with other properties, or we may not declare it: ops must look.
			return fmt.Errorf("amqp: declare %s: %w", what, err)
		}
		return banks.Transient(fmt.Errorf("amqp: declare %s: %w", what, err))
	}
	if cfg.exchange != "" {
		if err := ac.ExchangeDeclare(cfg.exchange, cfg.exType, true, false, false, false, nil); err != nil {
			return wrap("exchange "+cfg.exchange, err)
		}
	}
	for _, q := range []string{cfg.queue, cfg.fbQueue} {
		if _, err := ac.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return wrap("queue "+q, err)
		}
	}
	if cfg.exchange != "" {
		if err := ac.QueueBind(cfg.queue, cfg.routingKey, cfg.exchange, false, nil); err != nil {
			return wrap("binding", err)
		}
	}
	return nil
}

// undeclared makes the next operation on cn declare the topology again
// (a queue was found missing).
func (cn *conn) undeclared() { cn.declared.Store(false) }

// readBody reads and checks the sealed bytes. The read runs aside so that
// a stalled source cannot hold the call past its ctx.
func (ch *Channel) readBody(ctx context.Context, o *banks.Outbound) ([]byte, error) {
	if o.Size < 0 || o.Size > ch.cfg.maxBytes {
		return nil, fmt.Errorf("amqp: %s: size %d outside 0..max_message_bytes %d", o.Name, o.Size, ch.cfg.maxBytes)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		rc, err := o.Open()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer rc.Close()
		// Exactly Size bytes, then EOF: one allocation, no second copy.
		b := make([]byte, o.Size)
		n, err := io.ReadFull(rc, b)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			done <- result{b[:n], nil}
			return
		}
		if err == nil {
			var one [1]byte
			if m, _ := io.ReadFull(rc, one[:]); m > 0 {
				b = append(b, one[0]) // longer than Size: refused below
			}
		}
		done <- result{b, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("amqp: read %s: %w", o.Name, ctx.Err())
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("amqp: read %s: %w", o.Name, r.err)
		}
		if int64(len(r.b)) != o.Size || sm3.Sum(r.b) != o.SM3 {
			return nil, fmt.Errorf("amqp: %s: source is %d bytes with another SM3 than the %d bytes expected; nothing published", o.Name, len(r.b), o.Size)
		}
		return r.b, nil
	}
}

// Send publishes o as one persistent message and waits for the broker's
// confirm. A message the broker returns as unroutable or nacks is a
// retryable error (it was not queued, or the broker says it failed); a
// lost connection, an expired timeout or an ended ctx between the publish
// and its confirm is banks.ErrOutcomeUnknown. Send does not look at what
// the bank already holds: a second Send of the same Outbound publishes a
// second copy under the same message id, which the bank takes once.
func (ch *Channel) Send(ctx context.Context, o *banks.Outbound) (banks.Receipt, error) {
	if _, err := ch.live(ctx, "send"); err != nil {
		return banks.Receipt{}, err
	}
	body, err := ch.readBody(ctx, o)
	if err != nil {
		return banks.Receipt{}, err
	}
	cn, err := ch.get(ctx)
	if err != nil {
		return banks.Receipt{}, err
	}
	pc, err := ch.takeConfirmChannel(ctx, cn)
	if err != nil {
		return banks.Receipt{}, err
	}
	clean := false
	defer func() { ch.putConfirmChannel(pc, clean) }()
	ac, returns, confirms := pc.ac, pc.returns, pc.confirms
	if err := ctxErr(ctx, "send "+o.Name); err != nil {
		return banks.Receipt{}, err
	}
	pub := amqp091.Publishing{
		DeliveryMode: amqp091.Persistent,
		ContentType:  "application/octet-stream",
		Type:         TypeBatch,
		MessageId:    o.BankBatchNo,
		Timestamp:    time.Now(),
		AppId:        "yktgw",
		Headers:      headersFor(o),
		Body:         body,
	}
	log := ch.log.With("bank_batch_no", o.BankBatchNo, "name", o.Name)
	// From here on the bytes may reach the broker: every failure is an
	// unknown outcome unless the broker says otherwise.
	if err := ac.PublishWithContext(context.WithoutCancel(ctx), ch.cfg.exchange, ch.cfg.routingKey, true, false, pub); err != nil {
		return banks.Receipt{}, unknown(fmt.Errorf("amqp: publish %s: %w", o.Name, err))
	}
	failpoint.Hit(failpoint.PublishedBeforeConfirm)
	if ch.hook != nil {
		ch.hook("published")
	}
	timer := time.NewTimer(ch.cfg.timeout)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return banks.Receipt{}, unknown(fmt.Errorf("amqp: waiting for the confirm of %s: %w", o.Name, ctx.Err()))
	case <-timer.C:
		return banks.Receipt{}, unknown(fmt.Errorf("amqp: no confirm for %s within %s", o.Name, ch.cfg.timeout))
	case c, ok := <-confirms:
		if !ok {
			return banks.Receipt{}, unknown(fmt.Errorf("amqp: channel closed before the confirm of %s", o.Name))
		}
		clean = true
		if !c.Ack {
			log.Warn("amqp: broker nacked the message")
			return banks.Receipt{}, banks.Transient(fmt.Errorf("amqp: broker nacked %s", o.Name))
		}
	}
	select {
	case r, ok := <-returns:
		if ok {
			cn.undeclared()
			log.Warn("amqp: message returned unroutable", "code", r.ReplyCode, "text", r.ReplyText)
			return banks.Receipt{}, banks.Transient(fmt.Errorf("amqp: %s returned by the broker (%d %s): no queue is bound to exchange %q key %q; nothing was queued",
				o.Name, r.ReplyCode, r.ReplyText, ch.cfg.exchange, ch.cfg.routingKey))
		}
	default:
	}
	log.Info("amqp: message confirmed", "size", o.Size)
	return banks.Receipt{Ref: o.BankBatchNo, Size: o.Size, At: time.Now()}, nil
}

// confirmChannel is an AMQP channel in confirm mode with its listeners.
// Send uses one at a time, and puts it back for the next Send only when
// nothing is pending on it (its publish was acked or nacked and any return
// drained); otherwise it is closed.
type confirmChannel struct {
	cn       *conn
	ac       *amqp091.Channel
	returns  chan amqp091.Return
	confirms chan amqp091.Confirmation
}

const maxPooled = 8

func (ch *Channel) takeConfirmChannel(ctx context.Context, cn *conn) (*confirmChannel, error) {
	ch.mu.Lock()
	for len(ch.pool) > 0 {
		pc := ch.pool[len(ch.pool)-1]
		ch.pool = ch.pool[:len(ch.pool)-1]
		if pc.cn == cn && !pc.ac.IsClosed() {
			ch.mu.Unlock()
			if ch.cfg.declare && !cn.declared.Load() {
				if err := ch.declare(pc.ac); err != nil {
					_ = pc.ac.Close()
					return nil, err
				}
				cn.declared.Store(true)
			}
			return pc, nil
		}
		_ = pc.ac.Close()
	}
	ch.mu.Unlock()
	ac, err := ch.channel(ctx, cn)
	if err != nil {
		return nil, err
	}
	if err := ac.Confirm(false); err != nil {
		_ = ac.Close()
		return nil, banks.Transient(fmt.Errorf("amqp: confirm mode: %w", err))
	}
	// Buffered: amqp091 delivers a basic.return before the basic.ack that
	// follows it, from one goroutine, so once the ack is seen any return is
	// already in the buffer. A closed listener means the channel closed.
	return &confirmChannel{cn: cn, ac: ac,
		returns:  ac.NotifyReturn(make(chan amqp091.Return, 1)),
		confirms: ac.NotifyPublish(make(chan amqp091.Confirmation, 1))}, nil
}

func (ch *Channel) putConfirmChannel(pc *confirmChannel, clean bool) {
	if clean {
		select {
		case <-pc.returns: // a return for this Send's message, already reported
		default:
		}
		ch.mu.Lock()
		if !ch.closed && len(ch.pool) < maxPooled && ch.cur == pc.cn && !pc.ac.IsClosed() {
			ch.pool = append(ch.pool, pc)
			ch.mu.Unlock()
			return
		}
		ch.mu.Unlock()
	}
	_ = pc.ac.Close()
}

// unknown marks err as an unknown outcome (also retryable: after a probe).
func unknown(err error) error {
	return banks.Transient(fmt.Errorf("%w: %w", banks.ErrOutcomeUnknown, err))
}

// live checks that the channel is open and ctx alive.
func (ch *Channel) live(ctx context.Context, what string) (bool, error) {
	ch.mu.Lock()
	closed := ch.closed
	ch.mu.Unlock()
	if closed {
		return false, fmt.Errorf("amqp: %s: %w", what, banks.ErrClosed)
	}
	if err := ctxErr(ctx, what); err != nil {
		return false, err
	}
	return true, nil
}

// Probe asks the bank whether o arrived (see the package doc): it
// publishes a probe behind every earlier copy of o in the bank's queue and
// waits for the answer. No answer within the timeout, a returned probe (no
// queue bound) or a lost connection is ProbeUnknown with a retryable error.
func (p *ProbingChannel) Probe(ctx context.Context, o *banks.Outbound) (banks.ProbeResult, error) {
	ch := p.Channel
	if _, err := ch.live(ctx, "probe"); err != nil {
		return banks.ProbeUnknown, err
	}
	cn, err := ch.get(ctx)
	if err != nil {
		return banks.ProbeUnknown, err
	}
	ac, err := ch.channel(ctx, cn)
	if err != nil {
		return banks.ProbeUnknown, err
	}
	defer ac.Close()
	replies, err := ac.ConsumeWithContext(ctx, replyTo, "", true, false, false, false, nil)
	if err != nil {
		return banks.ProbeUnknown, banks.Transient(fmt.Errorf("amqp: probe %s: reply consumer: %w", o.Name, err))
	}
	returns := ac.NotifyReturn(make(chan amqp091.Return, 1))
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	corr := hex.EncodeToString(rnd[:])
	err = ac.PublishWithContext(ctx, ch.cfg.exchange, ch.cfg.routingKey, true, false, amqp091.Publishing{
		DeliveryMode:  amqp091.Transient,
		Type:          TypeProbe,
		MessageId:     o.BankBatchNo,
		CorrelationId: corr,
		ReplyTo:       replyTo,
		Timestamp:     time.Now(),
		AppId:         "yktgw",
		// A probe nobody took within the timeout is of no use to anyone.
		Expiration: fmt.Sprint(ch.cfg.timeout.Milliseconds()),
		Headers:    headersFor(o),
	})
	if err != nil {
		if cerr := ctxErr(ctx, "probe "+o.Name); cerr != nil {
			return banks.ProbeUnknown, cerr
		}
		return banks.ProbeUnknown, banks.Transient(fmt.Errorf("amqp: probe %s: publish: %w", o.Name, err))
	}
	timer := time.NewTimer(ch.cfg.timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return banks.ProbeUnknown, fmt.Errorf("amqp: probe %s: %w", o.Name, ctx.Err())
		case <-timer.C:
			return banks.ProbeUnknown, banks.Transient(fmt.Errorf("amqp: probe %s: the bank did not answer within %s", o.Name, ch.cfg.timeout))
		case r, ok := <-returns:
			if ok {
				cn.undeclared()
				return banks.ProbeUnknown, banks.Transient(fmt.Errorf("amqp: probe %s returned by the broker (%d %s): no bank queue bound", o.Name, r.ReplyCode, r.ReplyText))
			}
			returns = nil
		case d, ok := <-replies:
			if !ok {
				return banks.ProbeUnknown, banks.Transient(fmt.Errorf("amqp: probe %s: channel closed before the answer", o.Name))
			}
			if d.CorrelationId != corr {
				continue // a late answer to an earlier probe
			}
			a, _ := d.Headers[HeaderProbeResult].(string)
			switch a {
			case AnswerArrived:
				return banks.ProbeArrived, nil
			case AnswerNotArrived:
				return banks.ProbeNotArrived, nil
			case AnswerMismatch:
				return banks.ProbeMismatch, nil
			}
			return banks.ProbeUnknown, fmt.Errorf("amqp: probe %s: the bank answered %q", o.Name, a)
		}
	}
}

// Ping connects (if needed) and checks that the feedback queue exists.
func (ch *Channel) Ping(ctx context.Context) error {
	if _, err := ch.live(ctx, "ping"); err != nil {
		return err
	}
	cn, err := ch.get(ctx)
	if err != nil {
		return err
	}
	ac, err := ch.channel(ctx, cn)
	if err != nil {
		return err
	}
	defer ac.Close()
	if _, err := ac.QueueDeclarePassive(ch.cfg.fbQueue, true, false, false, false, nil); err != nil {
		cn.undeclared()
		return banks.Transient(fmt.Errorf("amqp: feedback queue %s: %w", ch.cfg.fbQueue, err))
	}
	return ctxErr(ctx, "ping")
}

// Close closes the connection; held return messages go back to the queue.
// Later calls return banks.ErrClosed. Close is idempotent.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return nil
	}
	ch.closed = true
	cn := ch.cur
	ch.cur = nil
	ch.pool = nil // their connection closes below
	ch.mu.Unlock()
	if cn != nil {
		_ = cn.c.Close()
	}
	return nil
}
