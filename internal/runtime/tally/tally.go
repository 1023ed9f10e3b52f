// Package tally counts by name: the calls a service client made, by kind. Both service clients keep their
// counts in one, so the agent's status and metrics read them the same way.
package tally

import (
	"maps"
	"sync"
)

// Counts is a set of named counters. Safe for concurrent use; the zero value is ready to use.
type Counts struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add adds n to the counter called name.
func (c *Counts) Add(name string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[name] += n
	c.mu.Unlock()
}

// Get returns one counter (0 when it never counted).
func (c *Counts) Get(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

// Snapshot returns a copy of every counter, never nil.
func (c *Counts) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		return map[string]int64{}
	}
	return maps.Clone(c.m)
}
