package amqp

import (
	"context"
	"fmt"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks/banktest"
)

// BenchmarkSend publishes sealed-size messages to the real RabbitMQ, one
// confirmed persistent message per Send (as the dispatcher does), and
// reports throughput. The queue has no consumer; it is deleted afterwards.
func BenchmarkSend(b *testing.B) {
	u := needBroker(b)
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			queue, fb := randName(b, "out"), randName(b, "fb")
			ch := newChannel(b, u, queue, fb, map[string]string{"probe": "false"})
			b.Cleanup(func() {
				if c, err := amqp091.Dial(u); err == nil {
					if a, err := c.Channel(); err == nil {
						a.QueueDelete(queue, false, false, false)
						a.QueueDelete(fb, false, false, false)
					}
					c.Close()
				}
			})
			data := banktest.RandomBytes(b, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o := banktest.NewOutbound("BENCH", fmt.Sprintf("bench%d.dat", i), data)
				if _, err := ch.Send(ctx, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselinePublish is the floor BenchmarkSend is measured against:
// amqp091 alone publishing the same persistent message to the same broker
// on one open channel in confirm mode and waiting for its confirm (no
// reading, no SM3 check, no channel per message).
func BenchmarkBaselinePublish(b *testing.B) {
	u := needBroker(b)
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			c, err := amqp091.Dial(u)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ch, err := c.Channel()
			if err != nil {
				b.Fatal(err)
			}
			q := randName(b, "base")
			if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			defer ch.QueueDelete(q, false, false, false)
			if err := ch.Confirm(false); err != nil {
				b.Fatal(err)
			}
			data := banktest.RandomBytes(b, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dc, err := ch.PublishWithDeferredConfirm("", q, true, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: data})
				if err != nil || !dc.Wait() {
					b.Fatal("publish or confirm failed", err)
				}
			}
		})
	}
}
