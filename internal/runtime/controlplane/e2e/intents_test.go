package e2e_test

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// TestReactivationAfterARestoreResyncsEveryRestoredTable: the first-sync backup is of an empty environment;
// after a full sync, deactivation and `crmsync backup restore --delete-created` (which deletes every synced
// row), reactivation must bring every row back, and status must not say streaming before it did.
// Regression: the checkpoints still believed every row written, the agent streamed from its stored
// positions, and every restored-away row stayed missing until someone ran a reconciliation.
func TestReactivationAfterARestoreResyncsEveryRestoredTable(t *testing.T) {
	e := newEnv(t, 60, 15)
	ctx := t.Context()
	conn, _ := e.createConnector(e.connectorSpec("e2e-restore-resync", e.sb.Info.Dataverse.TeamID))
	act, err := e.c.SetActivation(ctx, conn.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if act.Backup == nil {
		t.Fatal("the first activation took no backup")
	}
	e.settle(conn.ID, 2*time.Minute)
	act, err = e.c.GetActivation(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	bak := act.Backup
	if _, err := e.c.SetActivation(ctx, conn.ID, false); err != nil {
		t.Fatal(err)
	}
	var rs *api.Restore
	e.waitFor(30*time.Second, "the agent to stop and the restore to start", func() bool {
		rs, err = e.c.RestoreBackup(ctx, bak.ID, api.RestoreRequest{DeleteCreated: true})
		return err == nil
	})
	e.waitFor(2*time.Minute, "the restore to finish", func() bool {
		r, err := e.c.GetRestore(ctx, rs.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.State == api.RestoreComplete
	})
	if n := len(e.dvRows("contact")) + len(e.dvRows("account")); n != 0 {
		t.Fatalf("the restore of an empty backup left %d rows", n)
	}
	if _, err := e.c.SetActivation(ctx, conn.ID, true); err != nil {
		t.Fatal(err)
	}
	// From reactivation on, status may say streaming only once every row is back.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, ok := e.statusOK(conn.ID)
		if ok && streamingAll(st, 2) {
			if n := len(e.dvRows("contact")); n < 60 {
				t.Fatalf("status says streaming with %d of 60 contact rows back: %+v", n, st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactivated connector did not stream within 2 minutes: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.settle(conn.ID, 2*time.Minute)
	e.compareAll()
}
