package provider

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// The destroy plan did not say what a destroy does to the data and the backups (rollback looked
// impossible afterwards; the backups were in fact deleted with the connector). It says so, naming the newest
// backup and how to restore it, and the backup outlives the destroy.
func TestAccConnector_destroyPlanSaysWhatHappensToTheDataAndTheBackups(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	cfg := connectorConfig(cp, "acc-destroy", teamA)
	w.Apply(cfg)
	conn, err := cp.Client.FindConnector(t.Context(), "acc-destroy")
	if err != nil {
		t.Fatal(err)
	}

	w.write(cfg)
	run := w.run(2, "plan", "-destroy", "-json", "-input=false", "-detailed-exitcode", "-lock=false")
	if !run.Has("warning", "Destroying the connector", "rows it synced stay in Dataverse", "no complete backup", "crmsync backup create acc-destroy") {
		t.Errorf("the destroy plan of a connector without backup: %v", run.Diagnostics)
	}

	ctx := t.Context()
	b, err := cp.Store.CreateBackup(ctx, api.Backup{ConnectorID: conn.ID, ConnectorName: conn.Name, EnvironmentURL: conn.Dataverse.EnvironmentURL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	done := time.Now().UTC()
	b.State, b.Rows, b.CompletedAt = api.BackupComplete, 42, &done
	if err := cp.Store.UpdateBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	run = w.run(2, "plan", "-destroy", "-json", "-input=false", "-detailed-exitcode", "-lock=false")
	if !run.Has("warning", "Destroying the connector", "1 backup(s) stay", b.ID, "42 rows", "crmsync backup restore "+b.ID+" --connector NAME") {
		t.Errorf("the destroy plan does not name the backup that stays: %v", run.Diagnostics)
	}

	w.Destroy(cfg)
	bs, err := cp.Client.ListBackups(ctx, "")
	if err != nil || len(bs) != 1 || bs[0].ID != b.ID || !bs[0].ConnectorDeleted {
		t.Errorf("after the destroy: %+v, %v; want the backup, its connector deleted", bs, err)
	}
}
