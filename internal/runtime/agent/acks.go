package agent

import (
	"context"
	"sync"
)

// acks tracks work handed out in order and acknowledged in any order, and commits each position once it and
// everything handed out before it is acknowledged: the highest contiguous acknowledged position, as Redpanda
// Connect's checkpointer (internal/checkpoint) and Kafka Connect's SubmittedRecords compute it. It is also the
// back-pressure: track blocks while limit pieces of work are unacknowledged, so a fast reader cannot run
// ahead of the writers and memory stays flat.
//
// Work is tracked by one goroutine (the reader); resolve may be called from any. commit is called in
// position order, under the tracker's lock; after it fails, nothing more is committed and resolve returns
// its error.
type acks[P any] struct {
	slots  chan struct{} // one per unacknowledged piece of work
	commit func(P) error

	mu      sync.Mutex
	next    uint64 // sequence number of the next entry
	low     uint64 // lowest entry not yet acknowledged
	entries map[uint64]*ackEntry[P]
	err     error
}

type ackEntry[P any] struct {
	acked  bool
	work   bool // holds a slot
	hasPos bool
	pos    P
}

func newAcks[P any](limit int, commit func(P) error) *acks[P] {
	return &acks[P]{slots: make(chan struct{}, max(1, limit)), commit: commit, entries: map[uint64]*ackEntry[P]{}}
}

// track hands out the next piece of work, blocking while limit pieces are unacknowledged (until ctx ends). It
// returns the sequence number to resolve it with.
func (a *acks[P]) track(ctx context.Context) (uint64, error) {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	seq := a.next
	a.next++
	a.entries[seq] = &ackEntry[P]{work: true}
	return seq, nil
}

// position marks a position after everything tracked so far: it is committed once all of that is
// acknowledged (at once when it already is).
func (a *acks[P]) position(p P) error {
	a.mu.Lock()
	seq := a.next
	a.next++
	a.entries[seq] = &ackEntry[P]{hasPos: true, pos: p}
	a.mu.Unlock()
	return a.resolve(seq)
}

// resolve acknowledges a piece of work and commits every position that is now contiguous.
func (a *acks[P]) resolve(seq uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[seq]
	if e == nil || e.acked {
		return a.err
	}
	e.acked = true
	if e.work {
		<-a.slots
	}
	for {
		e, ok := a.entries[a.low]
		if !ok || !e.acked {
			return a.err
		}
		delete(a.entries, a.low)
		a.low++
		if e.hasPos && a.err == nil {
			a.err = a.commit(e.pos)
		}
	}
}

// failed returns the commit error, if any.
func (a *acks[P]) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
