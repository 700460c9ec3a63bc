package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/banks"
	"yktgw/banks/sim"
)

func init() { RegisterSide("amqp", startAMQPSide) }

// AMQPURLEnv names the variable holding the broker URL of the simulated AMQP
// bank (default amqp://guest:guest@127.0.0.1:5672/, the local RabbitMQ).
const AMQPURLEnv = "YKT_AMQP_URL"

// amqpSide is the bank simulator reached over a real RabbitMQ broker, on
// queues of its own (random names, deleted on Close).
type amqpSide struct {
	b       *sim.AMQPBank
	url     string
	queues  []string
	profile string
	opts    map[string]string
}

func startAMQPSide(ctx context.Context, e SideEnv) (Side, error) {
	profile := filepath.Join(e.Root, "testdata/banks/demo_amqp/profile.yaml")
	p, err := banks.LoadProfile(profile)
	if err != nil {
		return nil, err
	}
	url := os.Getenv(AMQPURLEnv)
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	stem := "yktgw.demo." + hex.EncodeToString(rnd[:])
	out, fb := stem+".batches", stem+".returns"
	b, err := sim.NewAMQP(sim.AMQPConfig{URL: url, Queue: out, FeedbackQueue: fb, Config: sim.Config{
		Root: filepath.Join(e.Dir, "bank"), Profile: p, Bank: e.Keys.Bank, Gateway: e.Keys.Gateway.Cert,
		FailRate: e.FailRate, Seed: e.Seed, Delay: e.Delay, Log: e.Log}})
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		b.Close()
		return nil, err
	}
	// The URL holds the broker password: the gateway reads it from a file.
	urlFile := filepath.Join(e.Dir, "amqp-url")
	if err := os.WriteFile(urlFile, []byte(url+"\n"), 0o600); err != nil {
		b.Close()
		return nil, err
	}
	s := &amqpSide{b: b, url: url, queues: []string{out, fb}, profile: profile, opts: map[string]string{
		"url_file": urlFile, "outbound_queue": out, "feedback_queue": fb, "timeout": "10s", "heartbeat": "5s",
	}}
	if err := s.waitQueues(ctx, 20*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitQueues waits until the bank has declared its queues (it connects in
// the background), so that the gateway's first publish is routable.
func (s *amqpSide) waitQueues(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := amqp091.DialConfig(s.url, amqp091.Config{Dial: amqp091.DefaultDial(3 * time.Second)})
		if err == nil {
			ch, cerr := c.Channel()
			if cerr == nil {
				_, err = ch.QueueDeclarePassive(s.queues[0], true, false, false, false, nil)
			} else {
				err = cerr
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("demo: amqp bank: broker queues not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *amqpSide) Profile() string            { return s.profile }
func (s *amqpSide) Options() map[string]string { return s.opts }
func (s *amqpSide) Stats() sim.Stats           { return s.b.Stats() }
func (s *amqpSide) SetFaults(f sim.Faults)     { s.b.SetFaults(f) }

// Close stops the bank and deletes its queues from the broker.
func (s *amqpSide) Close() error {
	err := s.b.Close()
	if c, derr := amqp091.DialConfig(s.url, amqp091.Config{Dial: amqp091.DefaultDial(3 * time.Second)}); derr == nil {
		if ch, cerr := c.Channel(); cerr == nil {
			for _, q := range s.queues {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
		}
		c.Close()
	}
	return err
}
