package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// cancellingStore is a checkpoint store that, once armed, ends the agent's context in the middle of the
// first save that stores a stream position at or past a replay ID, and fails that save as a store
// transaction cut by its context would: the shutdown races the store.
type cancellingStore struct {
	*localstore.Store
	cancel context.CancelFunc

	mu    sync.Mutex
	table string
	after uint64 // armed when non-zero
	fired bool
}

func (s *cancellingStore) arm(table string, after uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table, s.after = table, after
}

func (s *cancellingStore) SaveCheckpoint(ctx context.Context, cp agent.Checkpoint) error {
	s.mu.Lock()
	hit := !s.fired && s.after > 0 && cp.Table == s.table && salesforce.ReplayUint(cp.ReplayID) >= s.after
	if hit {
		s.fired = true
	}
	s.mu.Unlock()
	if hit {
		s.cancel()
		return context.Canceled
	}
	return s.Store.SaveCheckpoint(ctx, cp)
}

// TestAPositionWrittenWhileShuttingDownIsStored: a window is written and its position is being stored when
// the agent is told to stop, and the store gives up on the ended context. The agent still stores the
// position before it ends. It used to end with the position only in memory, so a restart subscribed from an
// older checkpoint: from the tip with a catch-up, where a replay ID rejected after an outage longer than the
// retention would have started a full re-sync (the chaos test of expired replay IDs saw no rejection).
func TestAPositionWrittenWhileShuttingDownIsStored(t *testing.T) {
	e := newEnv(t, 40, 10)
	stateDir := filepath.Join(e.dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ls, err := localstore.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &cancellingStore{Store: ls, cancel: cancel}
	cfg := e.cfg
	cfg.Resolve()
	a, err := agent.New(cfg, agent.Stores{Checkpoints: store, DeadLetters: ls, Reporter: ls}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	r := &running{a: a, store: ls, done: done, stop: cancel}
	e.settle(t, r, 2*time.Minute)

	// Past the stream's storing interval, the next window's position is stored at once: that save is cut.
	time.Sleep(time.Second)
	res, err := e.sb.Salesforce.Mutate("Contact", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want := lastReplay(res.ReplayIDs)
	store.arm("Contact", want)
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("agent ended with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the agent did not write the change and stop within a minute")
	}
	cp, err := ls.LoadCheckpoint(context.Background(), "Contact")
	if err != nil {
		t.Fatal(err)
	}
	if cp == nil {
		t.Fatal("no Contact checkpoint stored")
	}
	if got := salesforce.ReplayUint(cp.ReplayID); got < want {
		t.Errorf("stored position %d, catch-up since %v; want the written change's replay ID %d or later", got, cp.CatchUpSince, want)
	}
}
