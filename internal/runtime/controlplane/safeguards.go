package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/backup"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Safeguards runs backups and restores on the control plane's host, where the backup files live and the
// connectors' secrets are; package backupjobs implements it. The store records every backup and restore, so
// the API reads them from there.
type Safeguards interface {
	// StartBackup records a backup of the connector at its current revision and starts it in the
	// background. A blocking backup holds back the connector's agent until it is complete (the store refuses
	// the agent's lease meanwhile); Deployer.Changed is called when it completes.
	StartBackup(ctx context.Context, conn api.Connector, trigger string, blocking bool) (api.Backup, error)
	// CancelBlocking cancels the connector's unfinished blocking backup, if any (the connector was
	// deactivated before its first sync).
	CancelBlocking(ctx context.Context, connectorID string) error
	// StartRestore records a restore of a complete backup and starts it in the background.
	StartRestore(ctx context.Context, b api.Backup, req api.RestoreRequest) (api.Restore, error)
}

func (s *Server) safeguards() (Safeguards, error) {
	if s.cfg.Safeguards == nil {
		return nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "backups are not available: this control plane runs without them")
	}
	return s.cfg.Safeguards, nil
}

// Backups.

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	sg, err := s.safeguards()
	if err != nil {
		return err
	}
	conn, err := s.cfg.Store.GetConnector(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	ms, err := s.cfg.Store.ListMappings(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if len(ms) == 0 {
		return errorf(http.StatusConflict, CodeConflict, "id", "connector %s has no table mappings: there is nothing to back up", conn.Name)
	}
	b, err := sg.StartBackup(r.Context(), conn, api.BackupTriggerOnDemand, false)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusAccepted, b)
	return nil
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request) error {
	connID := r.URL.Query().Get("connector_id")
	if connID != "" && !store.ValidID(store.PrefixConnector, connID) {
		return invalid("connector_id", "%q is not a connector ID", truncate(connID, 80))
	}
	bs, err := s.cfg.Store.ListBackups(r.Context(), connID)
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	for i := range bs {
		if err := s.markDeleted(r.Context(), &bs[i], gone); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, api.BackupList{Backups: bs})
	return nil
}

// markDeleted sets a backup's ConnectorDeleted (known caches the connectors already looked up).
func (s *Server) markDeleted(ctx context.Context, b *api.Backup, known map[string]bool) error {
	gone, ok := known[b.ConnectorID]
	if !ok {
		_, err := s.cfg.Store.GetConnector(ctx, b.ConnectorID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			gone = true
		case err != nil:
			return err
		}
		known[b.ConnectorID] = gone
	}
	b.ConnectorDeleted = gone
	return nil
}

func (s *Server) getBackup(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixBackup)
	if err != nil {
		return err
	}
	b, err := s.cfg.Store.GetBackup(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if err := s.markDeleted(r.Context(), &b, map[string]bool{}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// restoreBackup starts a rollback. It refuses while the connector is active or its agent still runs: the
// sync would write over what the restore puts back.
func (s *Server) restoreBackup(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixBackup)
	if err != nil {
		return err
	}
	var req api.RestoreRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	sg, err := s.safeguards()
	if err != nil {
		return err
	}
	b, err := s.cfg.Store.GetBackup(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if b.State != api.BackupComplete {
		return errorf(http.StatusConflict, CodeConflict, "id", "backup %s is %s, not complete: only a complete backup can be restored", b.ID, b.State)
	}
	conn, err := s.restoreTarget(r.Context(), b, req.ConnectorID)
	if err != nil {
		return err
	}
	req.ConnectorID = conn.ID
	act, err := s.cfg.Store.GetActivation(r.Context(), conn.ID)
	if err != nil {
		return storeError(err, "id")
	}
	if act.Active {
		return errorf(http.StatusConflict, CodeConflict, "id",
			"connector %s (%s) is active: deactivate it first (destroy its crmsync_activation, or PUT /v1/connectors/%s/activation {\"active\": false}); "+
				"a restore while the agent syncs would be overwritten", conn.Name, conn.ID, conn.ID)
	}
	if l, err := s.cfg.Store.CurrentLease(r.Context(), conn.ID); err == nil && l.ExpiresAt.After(s.cfg.Now()) {
		return errorf(http.StatusConflict, CodeConflict, "id", "connector %s is deactivated but its agent %s is still stopping; try again in a few seconds", conn.Name, l.AgentID)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	rs, err := sg.StartRestore(r.Context(), b, req)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusAccepted, rs)
	return nil
}

// restoreTarget is the connector a backup is restored into: the one named, or the backup's own. A backup
// outlives its connector, so the backup of a deleted one needs another connector of the same Dataverse
// environment, whose credentials the restore uses.
func (s *Server) restoreTarget(ctx context.Context, b api.Backup, named string) (api.Connector, error) {
	env := backupEnvironment(b)
	if named == "" {
		conn, err := s.cfg.Store.GetConnector(ctx, b.ConnectorID)
		if errors.Is(err, store.ErrNotFound) {
			where := ""
			if env != "" {
				where = " (" + env + ")"
			}
			return conn, errorf(http.StatusConflict, CodeConflict, "connector_id",
				"connector %s (%s), which backup %s was taken of, was deleted: name a connector of the same Dataverse environment%s to restore with, "+
					"in connector_id (crmsync backup restore %s --connector NAME)", b.ConnectorName, b.ConnectorID, b.ID, where, b.ID)
		}
		if err != nil {
			return conn, storeError(err, "id")
		}
		return conn, nil
	}
	if !store.ValidID(store.PrefixConnector, named) {
		return api.Connector{}, invalid("connector_id", "%q is not a connector ID", truncate(named, 80))
	}
	conn, err := s.cfg.Store.GetConnector(ctx, named)
	if err != nil {
		return conn, storeError(err, "connector_id")
	}
	if env != "" && !sameEnvironment(env, conn.Dataverse.EnvironmentURL) {
		return conn, invalid("connector_id", "connector %s syncs into %s, but backup %s was taken of %s: a backup is restored into its own environment only",
			conn.Name, conn.Dataverse.EnvironmentURL, b.ID, env)
	}
	return conn, nil
}

// backupEnvironment is the Dataverse environment a backup was taken of: recorded with it, else (a backup
// from before the field) in its manifest.
func backupEnvironment(b api.Backup) string {
	if b.EnvironmentURL != "" {
		return b.EnvironmentURL
	}
	if m, err := backup.ReadManifest(b.Path); err == nil {
		return m.EnvironmentURL
	}
	return ""
}

// sameEnvironment compares environment URLs as hosts do: without case or a trailing slash.
func sameEnvironment(a, b string) bool {
	norm := func(u string) string { return strings.TrimRight(strings.ToLower(strings.TrimSpace(u)), "/") }
	return norm(a) == norm(b)
}

// Reconciliation.

// reconcile records an on-demand reconciliation; the connector's agent learns about it from its next
// heartbeat answer (reconcile_request_id) and reports the results per table in status.
func (s *Server) reconcile(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	act, err := s.cfg.Store.GetActivation(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if !act.Active {
		return errorf(http.StatusConflict, CodeConflict, "id", "connector %s is not active: reconciliation runs in its agent; activate it first", id)
	}
	req, err := s.cfg.Store.RequestReconcile(r.Context(), id, actorAPI)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusAccepted, req)
	return nil
}

// Hooks into activation, heartbeats and status.

// beforeActivation runs once the preflight checks passed: it refuses while a restore runs, records the
// first activation's backup option and starts the backup the agent then waits for.
func (s *Server) beforeActivation(ctx context.Context, id string, cur api.Activation, req api.ActivationRequest) error {
	running, err := s.cfg.Store.RunningRestores(ctx)
	if err != nil {
		return err
	}
	for _, r := range running {
		if r.ConnectorID == id {
			return errorf(http.StatusConflict, CodeConflict, "active", "restore %s of connector %s is running; activate the connector once it is done", r.ID, id)
		}
	}
	if cur.ActivatedAt != nil || cur.DeactivatedAt != nil {
		return nil // not the first activation: the data in Dataverse is the sync's already
	}
	want := req.BackupBeforeFirstSync == nil || *req.BackupBeforeFirstSync
	if err := s.cfg.Store.SetBackupOption(ctx, id, want); err != nil {
		return storeError(err, "id")
	}
	if !want || s.cfg.Safeguards == nil {
		return nil
	}
	conn, err := s.cfg.Store.GetConnector(ctx, id)
	if err != nil {
		return storeError(err, "id")
	}
	if _, err := s.cfg.Safeguards.StartBackup(ctx, conn, api.BackupTriggerActivation, true); err != nil {
		return storeError(err, "backup_before_first_sync")
	}
	return nil
}

// afterDeactivation cancels a first activation's backup that has not finished: the agent it held back will
// not run.
func (s *Server) afterDeactivation(ctx context.Context, id string) {
	if s.cfg.Safeguards == nil {
		return
	}
	if err := s.cfg.Safeguards.CancelBlocking(ctx, id); err != nil {
		s.log.WarnContext(ctx, "cancelling the first activation's backup", "connector_id", id, "err", err)
	}
}

// safeguardStatus adds the unfinished backup and the pending reconciliation request to a connector's status;
// an active connector whose first activation's backup is unfinished is backing_up.
func (s *Server) safeguardStatus(ctx context.Context, out *api.ConnectorStatus, act api.Activation) error {
	bs, err := s.cfg.Store.ListBackups(ctx, out.ConnectorID)
	if err != nil {
		return err
	}
	for i := range bs {
		if b := bs[i]; b.State == api.BackupPending || b.State == api.BackupRunning || b.State == api.BackupRetrying {
			out.Backup = &b
			break
		}
	}
	if out.ReconcileRequest, err = s.cfg.Store.ReconcileProgress(ctx, out.ConnectorID, 0); err != nil {
		return err
	}
	if b := act.Backup; act.Active && b != nil && b.Blocking && (b.State == api.BackupPending || b.State == api.BackupRunning || b.State == api.BackupRetrying) {
		out.State, out.Backup = api.StateBackingUp, b
		out.Reason = fmt.Sprintf("backing up the destination tables before the first sync (backup %s): %s rows exported", b.ID, groupDigits(b.Rows))
		if b.State == api.BackupRetrying {
			out.Reason = fmt.Sprintf("the backup before the first sync (%s) failed and will be retried: %s; deactivate and activate with backup_before_first_sync = false to skip it", b.ID, b.Error)
		}
	}
	return nil
}

// groupDigits writes 12345 as 12,345.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
