package amqp

import (
	"testing"

	"github.com/emmansun/gmsm/sm3"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// FuzzParseMessage: whatever arrives in the bank's queue, ParseMessage
// either refuses it or returns a message whose body matches its headers.
func FuzzParseMessage(f *testing.F) {
	body := []byte("sealed")
	sum := sm3.Sum(body)
	f.Add(TypeBatch, "B1", "B1.dat", int64(len(body)), hexOf(sum[:]), body, "", "")
	f.Add(TypeProbe, "B1", "B1.dat", int64(6), hexOf(sum[:]), []byte{}, "amq.rabbitmq.reply-to", "c1")
	f.Add(TypeBatch, "B1", "../x", int64(0), "zz", []byte{}, "", "")
	f.Fuzz(func(t *testing.T, typ, id, name string, size int64, sm3hex string, body []byte, replyTo, corr string) {
		d := amqp091.Delivery{Type: typ, MessageId: id, ReplyTo: replyTo, CorrelationId: corr, Body: body,
			Headers: amqp091.Table{HeaderFileName: name, HeaderSize: size, HeaderSM3: sm3hex}}
		m, err := ParseMessage(d)
		if err != nil {
			return
		}
		if m.BankBatchNo == "" || m.Name == "" {
			t.Fatalf("accepted without id or name: %+v", m)
		}
		if !m.Probe && (int64(len(m.Body)) != m.Size || sm3.Sum(m.Body) != m.SM3) {
			t.Fatalf("accepted a body that does not match its headers")
		}
	})
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
