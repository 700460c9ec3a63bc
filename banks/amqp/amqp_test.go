package amqp

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
	"yktgw/banks/banktest"
)

// The conformance suite against the real RabbitMQ, with a test bank
// consuming the outbound queue and answering probes: through the default
// exchange, and through a named topic exchange the channel declares and
// binds itself.
func TestConformanceRabbitMQ(t *testing.T) {
	u := needBroker(t)
	for _, exchange := range []bool{false, true} {
		name := "default-exchange"
		if exchange {
			name = "named-exchange"
		}
		t.Run(name, func(t *testing.T) {
			queue, fb := randName(t, "out"), randName(t, "fb")
			bank := startTestBank(t, u, queue, fb)
			opts := map[string]string{"feedback_pattern": "FB_*.txt"}
			if exchange {
				ex := randName(t, "ex")
				opts["exchange"], opts["exchange_type"], opts["routing_key"] = ex, "topic", "bank.demo.batches"
				t.Cleanup(func() {
					if c, err := amqp091.Dial(u); err == nil {
						if a, err := c.Channel(); err == nil {
							a.ExchangeDelete(ex, false, false)
						}
						c.Close()
					}
				})
			}
			banktest.Run(t, banktest.Opts{
				New:                 func(t *testing.T) banks.Channel { return newChannel(t, u, queue, fb, opts) },
				Bank:                bank,
				Messages:            true,
				IgnoredFeedbackName: "IGNORED_" + queue + ".txt",
			})
		})
	}
}
