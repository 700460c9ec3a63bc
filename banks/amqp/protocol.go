package amqp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/emmansun/gmsm/sm3"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
)

// The wire protocol between this channel and a bank's consumer. It is
// small on purpose; a bank that implements only the batch message (and not
// the probe) is served with the probe option off.
const (
	// TypeBatch is the AMQP type of a batch message: MessageId is our bank
	// batch number, the body the sealed bytes, the headers below name the
	// file, its size and its SM3.
	TypeBatch = "yktgw.batch"
	// TypeProbe is the AMQP type of a probe: "did the batch with this
	// MessageId (and these headers) arrive?". It has no body, carries
	// ReplyTo and CorrelationId, and travels through the same exchange and
	// routing key as the batch messages, so it lands in the same queue
	// behind every batch message published before it. A bank consumer
	// handles its queue in order, so when it meets the probe it has
	// already taken in any earlier copy of that batch: its answer
	// "not_arrived" is then the truth, not a guess about messages still in
	// flight.
	TypeProbe = "yktgw.probe"
	// TypeProbeAnswer is the bank's answer, published to the probe's
	// ReplyTo with its CorrelationId and HeaderProbeResult set.
	TypeProbeAnswer = "yktgw.probe-answer"

	HeaderFileName    = "x-yktgw-file-name"
	HeaderSize        = "x-yktgw-size"
	HeaderSM3         = "x-yktgw-sm3"
	HeaderBank        = "x-yktgw-bank"
	HeaderProbeResult = "x-yktgw-probe-result"

	// replyTo is RabbitMQ's direct reply-to pseudo queue.
	replyTo = "amq.rabbitmq.reply-to"
)

// Probe answers as written in HeaderProbeResult.
const (
	AnswerArrived    = "arrived"
	AnswerNotArrived = "not_arrived"
	AnswerMismatch   = "mismatch"
)

// Message is a batch message or a probe as the bank side reads it.
type Message struct {
	BankBatchNo string
	Name        string
	Size        int64
	SM3         [32]byte
	// Body is the sealed bytes (batch messages only).
	Body []byte
	// Probe: ReplyTo and CorrelationID are where the answer goes.
	Probe         bool
	ReplyTo       string
	CorrelationID string
}

// ParseMessage reads a delivery from the bank's queue: a batch message
// (whose body must match its size and SM3 headers) or a probe. The error
// names what is wrong; it never quotes the body.
func ParseMessage(d amqp091.Delivery) (Message, error) {
	m := Message{BankBatchNo: d.MessageId, Probe: d.Type == TypeProbe, ReplyTo: d.ReplyTo, CorrelationID: d.CorrelationId}
	if d.Type != TypeBatch && d.Type != TypeProbe {
		return m, fmt.Errorf("amqp: message type %q is neither %s nor %s", d.Type, TypeBatch, TypeProbe)
	}
	if m.BankBatchNo == "" {
		return m, errors.New("amqp: message without a message id (bank batch number)")
	}
	name, _ := d.Headers[HeaderFileName].(string)
	if name == "" || name != path.Base(name) || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\\x00") {
		return m, fmt.Errorf("amqp: message %s: header %s %q is not a plain file name", m.BankBatchNo, HeaderFileName, name)
	}
	m.Name = name
	switch v := d.Headers[HeaderSize].(type) {
	case int64:
		m.Size = v
	case int32:
		m.Size = int64(v)
	default:
		return m, fmt.Errorf("amqp: message %s: header %s missing or not an integer", m.BankBatchNo, HeaderSize)
	}
	hx, _ := d.Headers[HeaderSM3].(string)
	if b, err := hex.DecodeString(hx); err != nil || len(b) != 32 {
		return m, fmt.Errorf("amqp: message %s: header %s is not 64 hex digits", m.BankBatchNo, HeaderSM3)
	} else {
		copy(m.SM3[:], b)
	}
	if m.Probe {
		if m.ReplyTo == "" || m.CorrelationID == "" {
			return m, fmt.Errorf("amqp: probe %s without reply-to or correlation id", m.BankBatchNo)
		}
		return m, nil
	}
	if int64(len(d.Body)) != m.Size || sm3.Sum(d.Body) != m.SM3 {
		return m, fmt.Errorf("amqp: message %s: body (%d bytes) does not match its size %d and SM3 headers", m.BankBatchNo, len(d.Body), m.Size)
	}
	m.Body = d.Body
	return m, nil
}

// Judge compares what the bank holds for a probe's batch (have, when ok)
// with what the probe describes.
func Judge(q Message, have []byte, ok bool) banks.ProbeResult {
	switch {
	case !ok:
		return banks.ProbeNotArrived
	case int64(len(have)) == q.Size && sm3.Sum(have) == q.SM3:
		return banks.ProbeArrived
	default:
		return banks.ProbeMismatch
	}
}

// Answer publishes the bank's answer to a probe on ch (any open channel of
// the bank's connection).
func Answer(ctx context.Context, ch *amqp091.Channel, q Message, r banks.ProbeResult) error {
	var a string
	switch r {
	case banks.ProbeArrived:
		a = AnswerArrived
	case banks.ProbeNotArrived:
		a = AnswerNotArrived
	case banks.ProbeMismatch:
		a = AnswerMismatch
	default:
		return fmt.Errorf("amqp: no answer for probe result %v", r)
	}
	return ch.PublishWithContext(ctx, "", q.ReplyTo, false, false, amqp091.Publishing{
		Type: TypeProbeAnswer, MessageId: q.BankBatchNo, CorrelationId: q.CorrelationID,
		Headers: amqp091.Table{HeaderProbeResult: a},
	})
}

func headersFor(o *banks.Outbound) amqp091.Table {
	return amqp091.Table{
		HeaderFileName: o.Name,
		HeaderSize:     o.Size,
		HeaderSM3:      hex.EncodeToString(o.SM3[:]),
		HeaderBank:     o.Bank,
	}
}
