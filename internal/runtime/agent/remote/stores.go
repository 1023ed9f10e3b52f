package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
)

// ErrLeaseLost means the control plane gave the connector to another agent (or deleted it): this agent must
// stop at once without writing anything more.
var ErrLeaseLost = client.ErrLeaseLost

// fence remembers that the lease is lost. Once tripped, every store call fails with ErrLeaseLost without
// reaching the control plane, and lost is closed so the runner stops the agent.
type fence struct {
	once    sync.Once
	lost    chan struct{}
	tripped atomic.Bool
}

func newFence() *fence { return &fence{lost: make(chan struct{})} }

func (f *fence) trip() {
	f.once.Do(func() {
		f.tripped.Store(true)
		close(f.lost)
	})
}

// check returns ErrLeaseLost once the fence is tripped.
func (f *fence) check() error {
	if f.tripped.Load() {
		return fmt.Errorf("agent write refused locally: %w", ErrLeaseLost)
	}
	return nil
}

// observe trips the fence when err says the lease is lost, and passes err through.
func (f *fence) observe(err error) error {
	if errors.Is(err, ErrLeaseLost) {
		f.trip()
	}
	return err
}

// Stores implements the agent's checkpoint store, dead-letter store and reporter over the control plane
// API. Every call names the lease, so the control plane refuses a write of an agent whose lease is no longer
// current (410 lease_lost); the first such refusal trips a local fence and every later call fails at once.
// Report keeps the status in memory for the next heartbeat and asks the runner to send one soon.
type Stores struct {
	c       *client.Client
	leaseID string
	fence   *fence

	// transientRetries and retryDelay bound the retries of POSTs the client does not retry itself.
	transientRetries int
	retryDelay       time.Duration

	mu     sync.Mutex
	status api.Status
	have   bool
	kick   chan struct{}
}

func newStores(c *client.Client, leaseID string, f *fence) *Stores {
	return &Stores{c: c, leaseID: leaseID, fence: f, transientRetries: 3, retryDelay: 300 * time.Millisecond, kick: make(chan struct{}, 1)}
}

// AgentStores returns the three stores in the agent's shape.
func (s *Stores) AgentStores() agent.Stores {
	return agent.Stores{Checkpoints: s, DeadLetters: s, Reporter: s}
}

// LoadCheckpoint implements agent.CheckpointStore.
func (s *Stores) LoadCheckpoint(ctx context.Context, table string) (*agent.Checkpoint, error) {
	if err := s.fence.check(); err != nil {
		return nil, err
	}
	cp, err := s.c.Checkpoint(ctx, s.leaseID, table)
	return cp, s.fence.observe(err)
}

// SaveCheckpoint implements agent.CheckpointStore: durable in the control plane's store when it returns.
func (s *Stores) SaveCheckpoint(ctx context.Context, cp agent.Checkpoint) error {
	if err := s.fence.check(); err != nil {
		return err
	}
	return s.fence.observe(s.c.SaveCheckpoint(ctx, s.leaseID, cp))
}

// AddDeadLetters implements agent.DeadLetterStore. The client does not retry POSTs; a control plane that is
// restarting is retried here a few times (a repeated batch only counts one more attempt per record).
func (s *Stores) AddDeadLetters(ctx context.Context, dls []agent.DeadLetter) error {
	return s.retry(ctx, func() error { return s.c.AddDeadLetters(ctx, s.leaseID, dls) })
}

// RetryableDeadLetters implements agent.DeadLetterStore.
func (s *Stores) RetryableDeadLetters(ctx context.Context, table, code string, since time.Time, limit int) ([]agent.DeadLetter, error) {
	if err := s.fence.check(); err != nil {
		return nil, err
	}
	dls, err := s.c.RetryableDeadLetters(ctx, s.leaseID, table, code, since, limit)
	return dls, s.fence.observe(err)
}

// ResolveDeadLetter implements agent.DeadLetterStore.
func (s *Stores) ResolveDeadLetter(ctx context.Context, table, recordID string, before time.Time) error {
	return s.retry(ctx, func() error {
		return s.c.ResolveDeadLetter(ctx, s.leaseID, api.ResolveRequest{Table: table, RecordID: recordID, Before: before})
	})
}

// Report implements agent.Reporter: it never blocks on the network.
func (s *Stores) Report(_ context.Context, st agent.Status) error {
	s.mu.Lock()
	s.status, s.have = st, true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// lastStatus returns the last reported status.
func (s *Stores) lastStatus() (api.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, s.have
}

func (s *Stores) retry(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		if err := s.fence.check(); err != nil {
			return err
		}
		err := s.fence.observe(call())
		if err == nil || attempt >= s.transientRetries || !transient(err) || ctx.Err() != nil {
			return err
		}
		if err := retry.Sleep(ctx, retry.Policy{Base: s.retryDelay}.Delay(attempt)); err != nil {
			return err
		}
	}
}

// transient reports whether err is worth retrying: the control plane could not be reached, answered that it
// is unavailable, or failed internally (its storage). Refusals (bad input, lease lost) are final.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Status {
		// 500 internal is a storage failure as often as a bug (a control plane whose disk is full answers it to
		// every write until space is freed): waiting can change it, so the agent waits.
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
		return ce.Body.Code == "unavailable"
	}
	return true // a network failure
}
