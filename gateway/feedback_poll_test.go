package gateway

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"yktgw/banks"
)

// listChannel lists fixed return files (bytes that do not open: each is
// refused) and tells which were opened.
type listChannel struct {
	scriptChannel
	refs   []banks.FeedbackRef
	mu     sync.Mutex
	opened []string
}

func (c *listChannel) ListFeedback(context.Context) ([]banks.FeedbackRef, error) { return c.refs, nil }

func (c *listChannel) OpenFeedback(_ context.Context, ref banks.FeedbackRef) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opened = append(c.opened, ref.ID)
	c.mu.Unlock()
	return io.NopCloser(strings.NewReader("not a sealed file: " + ref.ID)), nil
}

func (c *listChannel) openedNow() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.opened...)
}

func (c *listChannel) wasOpened(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.opened {
		if o == id {
			return true
		}
	}
	return false
}

// TestFeedbackPreparedAhead: while the first file is applied, the poller
// prepares the next feedbackAhead files and no more; files still apply one
// at a time, in order.
func TestFeedbackPreparedAhead(t *testing.T) {
	ch := &listChannel{}
	for i := 1; i <= 6; i++ {
		ch.refs = append(ch.refs, banks.FeedbackRef{ID: fmt.Sprintf("R%d", i), Size: 20})
	}
	e, _ := dispatchEnv(t, ch)
	var applied []string
	var aheadSeen, tooFar bool
	feedbackApplyHook = func(ref banks.FeedbackRef) {
		applied = append(applied, ref.ID)
		if ref.ID != "R1" {
			return
		}
		want := fmt.Sprintf("R%d", 1+feedbackAhead)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if ch.wasOpened(want) {
				aheadSeen = true
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		tooFar = ch.wasOpened(fmt.Sprintf("R%d", 2+feedbackAhead))
	}
	t.Cleanup(func() { feedbackApplyHook = nil })
	e.g.pollFeedback(context.Background(), e.g.banks["DEMO"])
	if !aheadSeen {
		t.Errorf("while R1 applied, R%d was not prepared (opened: %v)", 1+feedbackAhead, ch.openedNow())
	}
	if tooFar {
		t.Errorf("while R1 applied, more than %d files were prepared (opened: %v)", feedbackAhead, ch.openedNow())
	}
	if got := strings.Join(applied, ","); got != "R1,R2,R3,R4,R5,R6" {
		t.Errorf("applied %s", got)
	}
	al, err := e.store.Alarms(context.Background(), true, 20)
	if err != nil || len(al) != 6 {
		t.Fatalf("alarms %d %v: every file refused once", len(al), err)
	}
}
