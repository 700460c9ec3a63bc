package main

// The crash and daemon tests of the real binary, run for the AMQP channel:
// the same assertions as for SFTP (crash_test.go, daemon_test.go), with the
// bank simulator consuming from the local RabbitMQ. Each sets
// YKT_TEST_CHANNEL=amqp for its duration and runs the SFTP test's body.

import (
	"os"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"yktgw/gateway/demo"
)

// needRabbitMQ skips (or fails under YKT_REQUIRE_SERVICES=1) when the broker
// the AMQP bank side uses is not reachable, then selects the amqp channel.
func needRabbitMQ(t *testing.T) {
	t.Helper()
	u := os.Getenv(demo.AMQPURLEnv)
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	c, err := amqp091.DialConfig(u, amqp091.Config{Dial: amqp091.DefaultDial(3 * time.Second)})
	if err != nil {
		if os.Getenv("YKT_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ not reachable (YKT_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("RabbitMQ not reachable, skipping the AMQP runs (YKT_REQUIRE_SERVICES=1 fails instead): %v", err)
	}
	c.Close()
	t.Setenv("YKT_TEST_CHANNEL", "amqp")
}

// Every crash point the AMQP path reaches (mid-upload and
// uploaded-before-rename are SFTP's; published-before-confirm is AMQP's).
func TestCrashPointsAMQP(t *testing.T) {
	needRabbitMQ(t)
	TestCrashPoints(t)
}

func TestRandomKillsAMQP(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	needRabbitMQ(t)
	TestRandomKills(t)
}

func TestDaemonKilledKeepsAcknowledgedBatchAMQP(t *testing.T) {
	needRabbitMQ(t)
	TestDaemonKilledKeepsAcknowledgedBatch(t)
}

func TestDaemonKilledMidStreamLeavesNothingAMQP(t *testing.T) {
	needRabbitMQ(t)
	TestDaemonKilledMidStreamLeavesNothing(t)
}
