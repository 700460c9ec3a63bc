package https_test

import (
	"context"
	"fmt"
	"testing"

	"yktgw/banks/banktest"
)

// BenchmarkSend: one signed POST of a sealed file over mutual TLS on
// loopback to the simulator's HTTPS bank, which stores it (fsync) and
// answers signed; SM3 of the body on both sides, SM2 sign and verify on
// both sides. go test -run XXX -bench Send -benchtime 20x ./banks/https/
func BenchmarkSend(b *testing.B) {
	e := startBank(b, nil)
	ch := e.channel(b, nil)
	for _, size := range []int{64 << 10, 4 << 20, 32 << 20} {
		data := banktest.RandomBytes(b, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				o := banktest.NewOutbound("DEMO", fmt.Sprintf("B%d_%d.dat", size, i), data)
				if _, err := ch.Send(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
