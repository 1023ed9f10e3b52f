package store

import (
	"context"
	"time"
)

// The agent pool's membership (docs/scaling.md). Pool agents check in every few seconds; the control plane
// balances the active connectors over the members seen within a TTL. The state is in the store, not in a
// control plane's memory, so every replica balances over the same members.

// PoolMember is one pool agent process.
type PoolMember struct {
	AgentID       string
	Host          string
	MaxConnectors int
	Draining      bool
	SeenAt        time.Time
}

// PoolView is what the control plane balances from: the live members, the active connectors and who holds
// a live lease on each.
type PoolView struct {
	Members []PoolMember
	// Active lists the active connectors' IDs.
	Active []string
	// Holders gives, by connector ID, the agent identity and host of its live lease (absent: none, or expired).
	Holders map[string]PoolHolder
}

// PoolHolder is who holds a live lease.
type PoolHolder struct{ AgentID, Host string }

// Pool is the agent pool's state.
type Pool interface {
	// PoolCheckIn records a member's check-in and returns the view: members seen within ttl (the caller
	// included), members seen before dropped.
	PoolCheckIn(ctx context.Context, m PoolMember, ttl time.Duration) (PoolView, error)
}
