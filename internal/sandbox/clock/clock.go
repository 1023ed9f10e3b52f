// Package clock is the sandbox's adjustable clock: real time plus an offset that tests and the admin API
// move forward to expire tokens, age replay IDs past the retention window or reset service-protection
// windows without waiting.
package clock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use. The zero value is not usable; call New.
type Clock struct {
	mu     sync.RWMutex
	offset time.Duration
	now    func() time.Time
}

// New returns a clock that follows the wall clock until it is advanced.
func New() *Clock { return &Clock{now: time.Now} }

// Now returns the wall-clock time plus every advance so far.
func (c *Clock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.now().Add(c.offset)
}

// Advance moves the clock forward by d (negative values are refused and ignored) and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	if d > 0 {
		c.offset += d
	}
	c.mu.Unlock()
	return c.Now()
}

// Offset is the total advance so far.
func (c *Clock) Offset() time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offset
}

// Reset sets the offset back to zero.
func (c *Clock) Reset() {
	c.mu.Lock()
	c.offset = 0
	c.mu.Unlock()
}
