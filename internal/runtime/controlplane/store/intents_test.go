package store

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// TestARestoreRecordsWhatEveryRestoredTableOwesAndADrainingAgentCannotDropIt: creating a restore records, in
// each restored table's checkpoint, a full re-sync, the deletions since the backup and a reconciliation; an
// agent that loaded its checkpoint before (it was draining) and saves it afterwards keeps them, while an
// agent that took them in removes them once done.
func TestARestoreRecordsWhatEveryRestoredTableOwesAndADrainingAgentCannotDropIt(t *testing.T) {
	s := behaviourStore(t)
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("restored"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"Account", "Contact", "Lead"} {
		if err := s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: table, Phase: api.PhaseStreaming, ReplayID: []byte{7}}); err != nil {
			t.Fatal(err)
		}
	}
	taken := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	b, err := s.CreateBackup(ctx, api.Backup{ConnectorID: c.ID, Tables: []api.BackupTable{{Table: "account", SourceTable: "Account"}, {Table: "contact", SourceTable: "Contact"}}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	b.State, b.CreatedAt = api.BackupComplete, taken
	if err := s.UpdateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRestore(ctx, api.Restore{BackupID: b.ID, ConnectorID: c.ID}, "test"); err != nil {
		t.Fatal(err)
	}
	cps, err := s.ListCheckpoints(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		kinds := map[string]api.Intent{}
		for _, in := range cp.Intents {
			kinds[in.Kind] = in
		}
		if cp.Table == "Lead" {
			if len(cp.Intents) != 0 {
				t.Errorf("the table the backup does not hold owes %+v", cp.Intents)
			}
			continue
		}
		if len(cp.Intents) != 3 || kinds[api.IntentLoad].Seq == 0 || kinds[api.IntentReconcile].Seq == 0 ||
			!kinds[api.IntentDeletes].Since.Equal(taken.Add(-restoreDeletesMargin)) {
			t.Errorf("%s owes %+v after the restore", cp.Table, cp.Intents)
		}
	}

	// The draining agent saves the checkpoint it had: the intents stay.
	if err := s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact", Phase: api.PhaseStreaming, ReplayID: []byte{8}}); err != nil {
		t.Fatal(err)
	}
	cp, err := s.LoadCheckpoint(ctx, l.ID, "Contact")
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Intents) != 3 || string(cp.ReplayID) != "\x08" {
		t.Fatalf("after a save by an agent that had not seen them: %+v", cp)
	}
	// The next agent takes them in (IntentSeq) and, once done, saves without them: they are gone.
	seen := cp.IntentSeq
	for _, in := range cp.Intents {
		seen = max(seen, in.Seq)
	}
	if err := s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact", Phase: api.PhaseStreaming, IntentSeq: seen}); err != nil {
		t.Fatal(err)
	}
	if cp, err = s.LoadCheckpoint(ctx, l.ID, "Contact"); err != nil || len(cp.Intents) != 0 {
		t.Fatalf("after the work was done: %+v, %v", cp, err)
	}
}
