package agent

import (
	"context"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Table phases (see package api).
const (
	PhasePending     = api.PhasePending
	PhaseInitialLoad = api.PhaseInitialLoad
	PhaseStreaming   = api.PhaseStreaming
	PhaseResync      = api.PhaseResync
	PhaseFailed      = api.PhaseFailed
	// StateDegraded is the agent's state while some of its tables failed and others sync.
	StateDegraded = api.StateDegraded
)

// The agent's persisted and reported types are wire types shared with the control plane.
type (
	Checkpoint  = api.Checkpoint
	DeadLetter  = api.DeadLetter
	TableStatus = api.TableStatus
	Latency     = api.Latency
	Status      = api.Status
)

// CheckpointStore keeps checkpoints. Save must be durable when it returns.
type CheckpointStore interface {
	LoadCheckpoint(ctx context.Context, table string) (*Checkpoint, error) // nil, nil when none
	SaveCheckpoint(ctx context.Context, cp Checkpoint) error
}

// DeadLetterStore keeps dead letters, one per table and record. AddDeadLetters is durable when it returns; a
// record already dead-lettered is replaced, keeping its FirstAt and counting Attempts. RetryableDeadLetters
// lists the dead letters of a code first failed after since (the agent retries missing lookup targets on its
// own for a while, as the target may arrive later); ResolveDeadLetter removes a record's dead letter if it
// failed before the given time (so a retry that failed again keeps its new entry).
type DeadLetterStore interface {
	AddDeadLetters(ctx context.Context, dls []DeadLetter) error
	RetryableDeadLetters(ctx context.Context, table, code string, since time.Time, limit int) ([]DeadLetter, error)
	ResolveDeadLetter(ctx context.Context, table, recordID string, before time.Time) error
}

// Reporter receives status; Report should not block for long.
type Reporter interface {
	Report(ctx context.Context, s Status) error
}

// Stores bundles what the agent persists through.
type Stores struct {
	Checkpoints CheckpointStore
	DeadLetters DeadLetterStore
	Reporter    Reporter
}
