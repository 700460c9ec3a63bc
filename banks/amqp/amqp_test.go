package amqp

import (
	"testing"

	"yktgw/banks"
	"yktgw/banks/banktest"
)

// The conformance suite against the real RabbitMQ, with a test bank
// consuming the outbound queue and answering probes.
func TestConformanceRabbitMQ(t *testing.T) {
	u := needBroker(t)
	queue, fb := randName(t, "out"), randName(t, "fb")
	bank := startTestBank(t, u, queue, fb)
	banktest.Run(t, banktest.Opts{
		New: func(t *testing.T) banks.Channel {
			return newChannel(t, u, queue, fb, map[string]string{"feedback_pattern": "FB_*.txt"})
		},
		Bank:                bank,
		Messages:            true,
		IgnoredFeedbackName: "IGNORED_" + queue + ".txt",
	})
}
