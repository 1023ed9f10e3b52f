package agent

import (
	"testing"
	"time"
)

// The window budget lets a second's worth of windows go at once, then one per 1/rate, and keeps a debt when a
// window does not wait for its token.
func TestTheWindowBudgetIsTheUsersShare(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newWindowBudget(2, now) // 20 windows a second
	for i := range 20 {
		if d := b.take(now); d != 0 {
			t.Fatalf("window %d of the first second waits %s", i, d)
		}
	}
	if d := b.take(now); d != 50*time.Millisecond {
		t.Errorf("the 21st window waits %s, want 50ms (1/20 s)", d)
	}
	if d := b.take(now); d != 100*time.Millisecond {
		t.Errorf("the 22nd window waits %s, want 100ms: the first debt delays it", d)
	}
	now = now.Add(time.Second) // 20 tokens earned, 2 owed
	for i := range 18 {
		if d := b.take(now); d != 0 {
			t.Fatalf("window %d after a second waits %s", i, d)
		}
	}
	if d := b.take(now); d == 0 {
		t.Error("the debt was forgotten")
	}
	if d := newWindowBudget(0, now).rate; d != changeRequestShare {
		t.Errorf("no users counts as one: rate %v", d)
	}
}
