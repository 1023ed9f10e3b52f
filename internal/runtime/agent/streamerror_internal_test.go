package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// memCheckpoints keeps checkpoints in memory.
type memCheckpoints struct {
	mu  sync.Mutex
	cps map[string]Checkpoint
}

func (m *memCheckpoints) LoadCheckpoint(_ context.Context, table string) (*Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cp, ok := m.cps[table]; ok {
		return &cp, nil
	}
	return nil, nil
}

func (m *memCheckpoints) SaveCheckpoint(_ context.Context, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = map[string]Checkpoint{}
	}
	m.cps[cp.Table] = cp
	return nil
}

// A stream error that gather meets right behind a batch (the group-commit path) ends the stream once it is
// handled. The pump stops after delivering an error, so a streamer that went on waiting for the next batch
// waited for ever: the table reported streaming with nothing owed while a re-sync or catch-up it had just
// stored never started (seen in the long chaos run: "waiting for the agent to write every change").
func TestAStreamErrorMetWhileGatheringEndsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		owed  func(Checkpoint) bool
		wants string
	}{
		{"replay ID rejected", fmt.Errorf("subscribing: %w", salesforce.ErrReplayInvalid),
			func(cp Checkpoint) bool { return cp.Phase == PhaseResync }, "the re-sync phase"},
		{"position lost", fmt.Errorf("stream: %w", salesforce.ErrPositionLost),
			func(cp Checkpoint) bool { return !cp.CatchUpSince.IsZero() }, "a catch-up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &memCheckpoints{}
			log := slog.New(slog.DiscardHandler)
			tbl := &table{log: log, tuning: Tuning{BatchSize: 10, WriteConcurrency: 1},
				pos: newPositions("Contact", mappingID{hash: "h"}, store, log)}
			tbl.pos.cp = Checkpoint{Table: "Contact", Phase: PhaseStreaming, ReplayID: []byte{1}}
			msgs := make(chan pumped, 1)
			msgs <- pumped{err: tc.err} // what the pump delivered last before it stopped
			timer := make(chan time.Time, 1)
			timer <- time.Now() // the window's token came: gather runs and meets the error
			s := &streamer{t: tbl, msgs: msgs, timerC: timer}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.run(ctx) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("the stream ended with %v, want nil (the error was handled)", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the streamer still waits on a pump that stopped after delivering its error")
			}
			cp, _ := store.LoadCheckpoint(ctx, "Contact")
			if cp == nil || !tc.owed(*cp) {
				t.Errorf("stored checkpoint %+v does not owe %s", cp, tc.wants)
			}
		})
	}
}
