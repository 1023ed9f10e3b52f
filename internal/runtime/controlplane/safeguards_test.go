package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// fakeSafeguards records backups and restores in the store; backups stay running until finish is called
// (or finish at once with instant), restores complete at once.
type fakeSafeguards struct {
	st      *store.SQLite
	instant bool

	mu       sync.Mutex
	restores []api.RestoreRequest
}

func (f *fakeSafeguards) StartBackup(ctx context.Context, conn api.Connector, trigger string, blocking bool) (api.Backup, error) {
	b, err := f.st.CreateBackup(ctx, api.Backup{ConnectorID: conn.ID, ConnectorName: conn.Name, Revision: conn.Revision, Trigger: trigger,
		Blocking: blocking, Path: "/data/backups/" + conn.ID}, "api")
	if err != nil {
		return b, err
	}
	b.State = api.BackupRunning
	if f.instant {
		now := time.Now().UTC()
		b.State, b.Blocking, b.CompletedAt, b.Rows, b.Bytes = api.BackupComplete, false, &now, 12, 3456
		b.Tables = []api.BackupTable{{Table: "contact", SourceTable: "Contact", Columns: []string{"contactid", "firstname"}, Rows: 12, Bytes: 3456, Chunks: 1, Complete: true}}
	}
	return b, f.st.UpdateBackup(ctx, b)
}

func (f *fakeSafeguards) finish(t *testing.T, id string) {
	t.Helper()
	b, err := f.st.GetBackup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	b.State, b.Blocking, b.CompletedAt = api.BackupComplete, false, &now
	if err := f.st.UpdateBackup(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeSafeguards) CancelBlocking(ctx context.Context, connectorID string) error {
	bs, err := f.st.ListBackups(ctx, connectorID)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if b.Blocking && b.State != api.BackupComplete && b.State != api.BackupCancelled {
			b.State, b.Blocking = api.BackupCancelled, false
			if err := f.st.UpdateBackup(ctx, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fakeSafeguards) StartRestore(ctx context.Context, b api.Backup, req api.RestoreRequest) (api.Restore, error) {
	f.mu.Lock()
	f.restores = append(f.restores, req)
	f.mu.Unlock()
	target := b.ConnectorID
	if req.ConnectorID != "" {
		target = req.ConnectorID
	}
	r, err := f.st.CreateRestore(ctx, api.Restore{BackupID: b.ID, ConnectorID: target, DeleteCreated: req.DeleteCreated}, "api")
	if err != nil {
		return r, err
	}
	now := time.Now().UTC()
	r.State, r.CompletedAt, r.Restored, r.Unchanged = api.RestoreComplete, &now, 3, 9
	r.Tables = []api.RestoreTable{{Table: "contact", Rows: 12, Done: 12, Restored: 3, Unchanged: 9, Complete: true}}
	return r, f.st.UpdateRestore(ctx, r)
}

func withSafeguards(f *fakeSafeguards) envOption {
	return func(c *Config) {
		f.st = c.Store.(*store.SQLite)
		c.Safeguards = f
	}
}

func conflictMessage(t *testing.T, err error) string {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || !errors.Is(err, client.ErrConflict) {
		t.Fatalf("answered %v, want 409 conflict", err)
	}
	return ce.Body.Message
}

func TestFirstActivationWaitsForItsBackupBeforeAnAgentMayStart(t *testing.T) {
	f := &fakeSafeguards{}
	e := newEnv(t, withSafeguards(f))
	ctx := t.Context()
	conn := e.createConnector(t, "first")
	e.createMapping(t, conn.ID, "Contact")

	act, err := e.client.SetActivation(ctx, conn.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !act.Active || !act.BackupBeforeFirstSync || act.Backup == nil || !act.Backup.Blocking || act.Backup.Trigger != api.BackupTriggerActivation {
		t.Fatalf("activation %+v: want active with a blocking first-activation backup", act)
	}
	st, err := e.client.Status(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != api.StateBackingUp || st.Backup == nil || st.Backup.ID != act.Backup.ID || !strings.Contains(st.Reason, "before the first sync") {
		t.Fatalf("status %s (%s), backup %+v: want backing_up with the backup", st.State, st.Reason, st.Backup)
	}
	_, err = e.acquire(t, "a1", api.LeaseRequest{ConnectorID: conn.ID, Host: "h"})
	if msg := conflictMessage(t, err); !strings.Contains(msg, "backing up") {
		t.Errorf("lease refusal %q does not say a backup runs", msg)
	}

	deployed := e.deployer.count(conn.ID)
	f.finish(t, act.Backup.ID)
	if _, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: conn.ID, Host: "h"}); err != nil {
		t.Fatalf("the lease is refused after the backup completed: %v", err)
	}
	if e.deployer.count(conn.ID) != deployed {
		t.Log("deployer told again") // the manager tells it; the fake does not
	}
	if got, err := e.client.GetActivation(ctx, conn.ID); err != nil || got.Backup == nil || got.Backup.State != api.BackupComplete {
		t.Errorf("activation after the backup: %+v, %v", got, err)
	}

	// Later activations take no backup.
	if _, err := e.client.SetActivation(ctx, conn.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SetActivation(ctx, conn.ID, true); err != nil {
		t.Fatal(err)
	}
	bs, err := e.client.ListBackups(ctx, conn.ID)
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups after a second activation: %d, %v; want the first one only", len(bs), err)
	}
}

func TestFirstActivationWithoutBackupDeploysAtOnceAndRemembersTheOption(t *testing.T) {
	f := &fakeSafeguards{}
	e := newEnv(t, withSafeguards(f))
	conn := e.createConnector(t, "nobackup")
	e.createMapping(t, conn.ID, "Contact")
	no := false
	act, err := e.client.Activate(t.Context(), conn.ID, api.ActivationRequest{Active: true, BackupBeforeFirstSync: &no})
	if err != nil {
		t.Fatal(err)
	}
	if act.Backup != nil || act.BackupBeforeFirstSync {
		t.Fatalf("activation %+v: want no backup and the option false", act)
	}
	if _, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: conn.ID, Host: "h"}); err != nil {
		t.Fatal(err)
	}
}

func TestDeactivatingCancelsTheFirstActivationsBackup(t *testing.T) {
	f := &fakeSafeguards{}
	e := newEnv(t, withSafeguards(f))
	conn := e.createConnector(t, "cancel")
	e.createMapping(t, conn.ID, "Contact")
	act, err := e.client.SetActivation(t.Context(), conn.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	off, err := e.client.SetActivation(t.Context(), conn.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if off.Backup == nil || off.Backup.ID != act.Backup.ID || off.Backup.State != api.BackupCancelled {
		t.Fatalf("deactivation answered backup %+v, want %s cancelled", off.Backup, act.Backup.ID)
	}
}

func TestRestoreIsRefusedWhileTheConnectorIsActive(t *testing.T) {
	f := &fakeSafeguards{instant: true}
	e := newEnv(t, withSafeguards(f))
	ctx := t.Context()
	conn := e.createConnector(t, "restore")
	e.createMapping(t, conn.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, conn.ID, true); err != nil {
		t.Fatal(err)
	}
	bs, err := e.client.ListBackups(ctx, conn.ID)
	if err != nil || len(bs) != 1 || bs[0].State != api.BackupComplete || bs[0].Rows != 12 || bs[0].Bytes != 3456 {
		t.Fatalf("backups %+v, %v: want the complete first-activation backup with its rows and size", bs, err)
	}
	_, err = e.client.RestoreBackup(ctx, bs[0].ID, api.RestoreRequest{DeleteCreated: true})
	if msg := conflictMessage(t, err); !strings.Contains(msg, "is active: deactivate it first") {
		t.Errorf("refusal %q does not say to deactivate first", msg)
	}
	if _, err := e.client.SetActivation(ctx, conn.ID, false); err != nil {
		t.Fatal(err)
	}
	rs, err := e.client.RestoreBackup(ctx, bs[0].ID, api.RestoreRequest{DeleteCreated: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetRestore(ctx, rs.ID)
	if err != nil || got.State != api.RestoreComplete || got.Restored != 3 || !got.DeleteCreated {
		t.Errorf("restore %+v, %v: want complete with its report", got, err)
	}
	// Another backup of an unknown ID, and a backup of a connector without mappings, are refused clearly.
	if _, err := e.client.RestoreBackup(ctx, "bak_00000000000000000000000000000000", api.RestoreRequest{}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("restore of an unknown backup: %v, want not_found", err)
	}
	empty := e.createConnector(t, "empty")
	if _, err := e.client.CreateBackup(ctx, empty.ID); !strings.Contains(conflictMessage(t, err), "no table mappings") {
		t.Errorf("backup of a connector without mappings: %v", err)
	}
}

// After `terraform destroy`, `crmsync backup restore bak_…` answered "no backup bak_…" although the
// files were on disk: the backups were deleted with their connector. They stay listable and restore into a
// connector of the same Dataverse environment, never another's.
func TestBackupsOutliveTheirConnector(t *testing.T) {
	f := &fakeSafeguards{instant: true}
	e := newEnv(t, withSafeguards(f))
	ctx := t.Context()
	conn := e.createConnector(t, "destroyed")
	e.createMapping(t, conn.ID, "Contact")
	b, err := e.client.CreateBackup(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.EnvironmentURL = conn.Dataverse.EnvironmentURL // as the backup manager records it
	if err := f.st.UpdateBackup(ctx, *b); err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeleteConnector(ctx, conn.ID); err != nil {
		t.Fatal(err)
	}

	bs, err := e.client.ListBackups(ctx, "")
	if err != nil || len(bs) != 1 || bs[0].ID != b.ID || !bs[0].ConnectorDeleted || bs[0].ConnectorName != "destroyed" {
		t.Fatalf("backups after the connector's deletion: %+v, %v; want the backup, marked connector_deleted", bs, err)
	}
	if got, err := e.client.GetBackup(ctx, b.ID); err != nil || !got.ConnectorDeleted {
		t.Fatalf("GET the backup: %+v, %v", got, err)
	}
	// Without a connector to restore with: a conflict that says what to do.
	_, err = e.client.RestoreBackup(ctx, b.ID, api.RestoreRequest{})
	if msg := conflictMessage(t, err); !strings.Contains(msg, "was deleted") || !strings.Contains(msg, "--connector") || !strings.Contains(msg, conn.Dataverse.EnvironmentURL) {
		t.Errorf("restore without a connector: %q", msg)
	}
	// A connector of another environment is refused.
	other := e.createConnector(t, "elsewhere")
	spec := other.ConnectorSpec
	spec.Dataverse.EnvironmentURL = "https://other.crm4.dynamics.com"
	if _, err := e.client.UpdateConnector(ctx, other.ID, spec); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if _, err := e.client.RestoreBackup(ctx, b.ID, api.RestoreRequest{ConnectorID: other.ID}); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest ||
		!strings.Contains(ce.Body.Message, "restored into its own environment only") {
		t.Errorf("restore into another environment: %v", err)
	}
	// The connector created again (same environment) restores it.
	again := e.createConnector(t, "destroyed")
	rs, err := e.client.RestoreBackup(ctx, b.ID, api.RestoreRequest{ConnectorID: again.ID})
	if err != nil {
		t.Fatal(err)
	}
	if rs.ConnectorID != again.ID || rs.BackupID != b.ID {
		t.Errorf("restore %+v: want backup %s into connector %s", rs, b.ID, again.ID)
	}
}

func TestReconcileRequestsReachTheAgentUntilOneReportsThemDone(t *testing.T) {
	f := &fakeSafeguards{instant: true}
	e := newEnv(t, withSafeguards(f))
	ctx := t.Context()
	conn := e.createConnector(t, "reconcile")
	e.createMapping(t, conn.ID, "Contact")
	if _, err := e.client.Reconcile(ctx, conn.ID); !strings.Contains(conflictMessage(t, err), "not active") {
		t.Errorf("reconcile of an inactive connector: %v", err)
	}
	if _, err := e.client.SetActivation(ctx, conn.ID, true); err != nil {
		t.Fatal(err)
	}
	lease, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: conn.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	hb := func(done int64) int64 {
		t.Helper()
		resp, err := e.by(lease.ID).Heartbeat(ctx, lease.ID, api.Heartbeat{Status: api.Status{State: "streaming", Revision: lease.Revision, StartedAt: e.clock.Now(), ReconcileRequestID: done}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.ReconcileRequestID
	}
	if got := hb(0); got != 0 {
		t.Fatalf("heartbeat asks for reconciliation %d before any request", got)
	}
	req, err := e.client.Reconcile(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := hb(0); got != req.RequestID {
		t.Fatalf("heartbeat answered reconcile_request_id %d, want %d", got, req.RequestID)
	}
	if st, _ := e.client.Status(ctx, conn.ID); st.ReconcileRequest == nil || st.ReconcileRequest.RequestID != req.RequestID {
		t.Errorf("status does not show the pending request: %+v", st.ReconcileRequest)
	}
	if got := hb(req.RequestID); got != 0 {
		t.Errorf("heartbeat still asks for %d after the agent reported it done", got)
	}
	// A restarted agent (reporting 0) is not asked again.
	if got := hb(0); got != 0 {
		t.Errorf("a fresh agent is asked for the done request %d again", got)
	}
	next, err := e.client.Reconcile(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if next.RequestID != req.RequestID+1 || hb(0) != next.RequestID {
		t.Errorf("a second request got ID %d and was not passed on", next.RequestID)
	}
}

func TestSafeguardTuningIsValidated(t *testing.T) {
	e := newEnv(t)
	spec := connectorSpec("tuning")
	spec.Tuning = &api.Tuning{ReconcileInterval: api.Duration(time.Second)}
	_, err := e.client.CreateConnector(t.Context(), spec)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Body.Field != "tuning.reconcile_interval" {
		t.Fatalf("a 1 s reconcile interval answered %v, want invalid_argument on tuning.reconcile_interval", err)
	}
	spec.Tuning = &api.Tuning{ReconcileInterval: api.Duration(-1), OutOfBandInterval: api.Duration(30 * time.Second)}
	if _, err := e.client.CreateConnector(t.Context(), spec); err != nil {
		t.Fatalf("a negative interval (off) and 30 s are valid: %v", err)
	}
	if _, err := e.client.CreateBackup(t.Context(), "con_00000000000000000000000000000000"); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("backups without safeguards answered %v, want unavailable", err)
	}
}
