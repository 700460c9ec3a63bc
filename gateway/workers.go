package gateway

import (
	"context"
	"sync"
	"time"
)

// startWorkers starts the background loops: the dispatcher, one feedback
// poller per bank, and the overdue watch. The returned group ends with ctx.
func (g *Gateway) startWorkers(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	g.startOpsWorkers(ctx, &wg) // metrics gauges, channel pings, webhook outbox (metrics.go, webhook.go)
	if len(g.banks) == 0 {
		return &wg
	}
	d := newDispatcher(g)
	// every runs fn now, then at each tick or kick (nil: ticks only).
	every := func(interval time.Duration, kick <-chan struct{}, fn func(context.Context)) {
		if interval <= 0 {
			interval = time.Second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				fn(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				case <-kick:
				}
			}
		}()
	}
	// A batch queued by intake is planned at once, not at the next tick.
	every(g.cfg.Dispatcher.PollInterval, g.dispatchKick, d.tick)
	wg.Add(1)
	go func() { // sends outlive a tick: wait for them before the spool closes
		defer wg.Done()
		<-ctx.Done()
		d.wait()
	}()
	for _, b := range g.banks {
		every(g.cfg.Feedback.PollInterval, nil, func(ctx context.Context) { g.pollFeedback(ctx, b) })
	}
	every(g.cfg.Feedback.PollInterval, nil, g.expireOverdue)
	return &wg
}

// expireOverdue turns records whose feedback deadline passed into UNKNOWN
// (with an alarm): never paid again, never forgotten.
func (g *Gateway) expireOverdue(ctx context.Context) {
	ds, err := g.store.ExpireOverdue(ctx, g.now())
	if err != nil {
		g.log.Error("overdue watch", "err", err)
		return
	}
	for _, d := range ds {
		g.log.Error("ALARM feedback overdue: records UNKNOWN until the bank's word", "bank", d.Bank, "bank_batch_no", d.BankBatchNo, "batch", d.BatchID, "deadline", d.DeadlineAt)
	}
}
