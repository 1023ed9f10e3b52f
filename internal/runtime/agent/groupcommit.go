package agent

import (
	"sync"
	"time"
)

// Group commit of change windows. A streaming table writes its window as soon as its writer is free: the
// changes that arrive while a write is in flight make the next window (the way a database's group commit or
// a Kafka producer with in-flight batching works), so a trickle is written change by change at once and a
// burst in growing windows. What bounds the request rate is Dataverse's budget, not a timer: every window
// write takes a token from the connector's window budget, which the tables share and which refills at
// changeRequestShare requests per second per application user; when it is spent, a window waits for its
// token and grows meanwhile, so under load the windows grow instead of the requests multiplying. The flush
// interval (Tuning.FlushInterval) only bounds that wait.

// changeRequestShare is the request rate, per Dataverse application user, that change windows may use: half of
// a user's sustained budget (6,000 requests per 5 minutes, 20 per second), the other half left to loads,
// re-reads, out-of-band checks and reconciliations.
const changeRequestShare = 10.0

// windowBudget is a token bucket of window writes, shared by a connector's tables: it refills at rate tokens
// per second and saves up to one second's worth, so a table alone may use the whole share and short bursts
// are written at once.
type windowBudget struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	tokens float64
	at     time.Time
}

func newWindowBudget(users int, now time.Time) *windowBudget {
	rate := changeRequestShare * float64(max(1, users))
	return &windowBudget{rate: rate, tokens: rate, at: now}
}

// take takes a token for a window write and returns how long the window should wait for it (0: write now).
// The token is taken even when the caller does not wait that long (its flush interval is shorter): the debt
// delays the next windows, down to one second's worth.
func (b *windowBudget) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
	b.tokens = max(-b.rate, b.tokens-1)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
