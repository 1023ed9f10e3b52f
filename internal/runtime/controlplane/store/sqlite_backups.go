package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// unfinishedBackup is the SQL list of states a backup can still move from.
const unfinishedBackup = `('` + api.BackupPending + `', '` + api.BackupRunning + `', '` + api.BackupRetrying + `')`

// CreateBackup implements Store: the backup gets an ID and is stored pending. A connector has at most one
// unfinished backup (ErrConflict).
func (s *SQLite) CreateBackup(ctx context.Context, b api.Backup, actor string) (api.Backup, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, b.ConnectorID); err != nil {
			return err
		}
		var running string
		err := tx.QueryRowContext(ctx, `SELECT id FROM backups WHERE connector_id = ? AND state IN `+unfinishedBackup, b.ConnectorID).Scan(&running)
		switch {
		case err == nil:
			return fmt.Errorf("%w: backup %s of connector %s is not finished yet", ErrConflict, running, b.ConnectorID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := s.Now()
		if b.ID == "" {
			b.ID = NewID(PrefixBackup)
		}
		if b.State == "" {
			b.State = api.BackupPending
		}
		if b.Tables == nil {
			b.Tables = []api.BackupTable{}
		}
		b.CreatedAt, b.UpdatedAt = now, now
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO backups (id, connector_id, state, trigger_kind, blocking, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, b.ConnectorID, b.State, b.Trigger, boolInt(b.Blocking), string(data), nanos(now), nanos(now)); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "backup.create", b.ConnectorID, b.Revision, map[string]any{"backup_id": b.ID, "trigger": b.Trigger, "blocking": b.Blocking})
	})
	return b, err
}

// UpdateBackup implements Store: it replaces a backup's record (ErrNotFound when it, or its connector, is
// gone).
func (s *SQLite) UpdateBackup(ctx context.Context, b api.Backup) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		b.UpdatedAt = s.Now()
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE backups SET state = ?, blocking = ?, data = ?, updated_at = ? WHERE id = ?`,
			b.State, boolInt(b.Blocking), string(data), nanos(b.UpdatedAt), b.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("backup", b.ID)
		}
		if b.State == api.BackupComplete || b.State == api.BackupCancelled {
			return s.audit(ctx, tx, "control-plane", "backup."+b.State, b.ConnectorID, b.Revision, map[string]any{"backup_id": b.ID, "rows": b.Rows, "bytes": b.Bytes})
		}
		return nil
	})
}

// GetBackup implements Store.
func (s *SQLite) GetBackup(ctx context.Context, id string) (api.Backup, error) {
	var out api.Backup
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = scanJSON[api.Backup](tx.QueryRowContext(ctx, `SELECT data FROM backups WHERE id = ?`, id), "backup")
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("backup", id)
		}
		return err
	})
	return out, err
}

// ListBackups implements Store: newest first; every connector's when connectorID is empty.
func (s *SQLite) ListBackups(ctx context.Context, connectorID string) ([]api.Backup, error) {
	var out []api.Backup
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		if connectorID == "" {
			out, err = listJSON[api.Backup](ctx, tx, "backup", `SELECT data FROM backups ORDER BY created_at DESC, id`)
		} else {
			out, err = listJSON[api.Backup](ctx, tx, "backup", `SELECT data FROM backups WHERE connector_id = ? ORDER BY created_at DESC, id`, connectorID)
		}
		return err
	})
	return out, err
}

// UnfinishedBackups implements Store: backups still pending, running or retrying, oldest first (a restarted
// control plane resumes them).
func (s *SQLite) UnfinishedBackups(ctx context.Context) ([]api.Backup, error) {
	var out []api.Backup
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = listJSON[api.Backup](ctx, tx, "backup", `SELECT data FROM backups WHERE state IN `+unfinishedBackup+` ORDER BY created_at, id`)
		return err
	})
	return out, err
}

// blockingBackup returns the unfinished backup holding back a connector's agent, if any.
func blockingBackup(ctx context.Context, tx *sql.Tx, connectorID string) (*api.Backup, error) {
	b, err := scanJSON[api.Backup](tx.QueryRowContext(ctx, `SELECT data FROM backups WHERE connector_id = ? AND blocking = 1 AND state IN `+unfinishedBackup+
		` ORDER BY created_at DESC LIMIT 1`, connectorID), "backup")
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// firstActivationBackup returns the backup taken for a connector's first activation, if any.
func firstActivationBackup(ctx context.Context, tx *sql.Tx, connectorID string) (*api.Backup, error) {
	b, err := scanJSON[api.Backup](tx.QueryRowContext(ctx, `SELECT data FROM backups WHERE connector_id = ? AND trigger_kind = ? ORDER BY created_at DESC LIMIT 1`,
		connectorID, api.BackupTriggerActivation), "backup")
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// SetBackupOption implements Store: it records the backup option of a connector's first activation.
func (s *SQLite) SetBackupOption(ctx context.Context, connectorID string, on bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO activations (connector_id, active, backup_before_first_sync) VALUES (?, 0, ?)
ON CONFLICT (connector_id) DO UPDATE SET backup_before_first_sync = excluded.backup_before_first_sync`, connectorID, boolInt(on))
		return err
	})
}

// CreateRestore implements Store. A connector has at most one running restore (ErrConflict).
func (s *SQLite) CreateRestore(ctx context.Context, r api.Restore, actor string) (api.Restore, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var running string
		err := tx.QueryRowContext(ctx, `SELECT id FROM restores WHERE connector_id = ? AND state = ?`, r.ConnectorID, api.RestoreRunning).Scan(&running)
		switch {
		case err == nil:
			return fmt.Errorf("%w: restore %s of connector %s is still running", ErrConflict, running, r.ConnectorID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := s.Now()
		if r.ID == "" {
			r.ID = NewID(PrefixRestore)
		}
		r.State, r.CreatedAt, r.UpdatedAt = api.RestoreRunning, now, now
		if r.Tables == nil {
			r.Tables = []api.RestoreTable{}
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO restores (id, backup_id, connector_id, state, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.BackupID, r.ConnectorID, r.State, string(data), nanos(now), nanos(now)); err != nil {
			return err
		}
		if err := s.owedAfterRestore(ctx, tx, r, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "backup.restore", r.ConnectorID, 0, map[string]any{"restore_id": r.ID, "backup_id": r.BackupID, "delete_created": r.DeleteCreated})
	})
	return r, err
}

// UpdateRestore implements Store.
func (s *SQLite) UpdateRestore(ctx context.Context, r api.Restore) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE restores SET state = ?, data = ?, updated_at = ? WHERE id = ?`, r.State, string(data), nanos(s.Now()), r.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("restore", r.ID)
		}
		if r.State != api.RestoreRunning {
			return s.audit(ctx, tx, "control-plane", "restore."+r.State, r.ConnectorID, 0, map[string]any{"restore_id": r.ID,
				"restored": r.Restored, "unchanged": r.Unchanged, "deleted": r.Deleted, "kept": r.Kept, "failed": r.Failed, "error": r.Error})
		}
		return nil
	})
}

// GetRestore implements Store.
func (s *SQLite) GetRestore(ctx context.Context, id string) (api.Restore, error) {
	var out api.Restore
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = scanJSON[api.Restore](tx.QueryRowContext(ctx, `SELECT data FROM restores WHERE id = ?`, id), "restore")
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("restore", id)
		}
		return err
	})
	return out, err
}

// RunningRestores implements Store: restores recorded as running (after a crash, none really is).
func (s *SQLite) RunningRestores(ctx context.Context) ([]api.Restore, error) {
	var out []api.Restore
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = listJSON[api.Restore](ctx, tx, "restore", `SELECT data FROM restores WHERE state = ? ORDER BY created_at`, api.RestoreRunning)
		return err
	})
	return out, err
}

// backupGate refuses an agent's lease while a first activation's backup runs.
func backupGate(ctx context.Context, tx *sql.Tx, connectorID string) error {
	b, err := blockingBackup(ctx, tx, connectorID)
	if err != nil || b == nil {
		return err
	}
	return fmt.Errorf("%w: connector %s is backing up its destination tables before the first sync (backup %s, %s, %d rows so far); the agent starts when it is complete",
		ErrConflict, connectorID, b.ID, b.State, b.Rows)
}

// restoreDeletesMargin widens the deletions a restore owes backwards, as the agent's catch-ups are widened.
const restoreDeletesMargin = 2 * time.Minute

// owedAfterRestore records, before the restore writes anything, what every restored table owes once the
// connector is active again: the restore put rows back to the backup's state (and may have deleted every
// synced row), so the checkpoints no longer describe Dataverse. Each table owes a full re-sync, the
// deletions made in Salesforce since the backup (rows the restore brought back of records deleted since), and
// a reconciliation that proves the result (and removes rows of records purged meanwhile).
func (s *SQLite) owedAfterRestore(ctx context.Context, tx *sql.Tx, r api.Restore, now time.Time) error {
	b, err := scanJSON[api.Backup](tx.QueryRowContext(ctx, `SELECT data FROM backups WHERE id = ?`, r.BackupID), "backup")
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("backup", r.BackupID)
	}
	if err != nil {
		return err
	}
	why := fmt.Sprintf("restored from backup %s (taken %s) by restore %s", b.ID, b.CreatedAt.UTC().Format(time.RFC3339), r.ID)
	for _, t := range b.Tables {
		if t.SourceTable == "" {
			continue
		}
		err := s.addIntents(ctx, tx, r.ConnectorID, t.SourceTable,
			api.Intent{Kind: api.IntentLoad, Reason: why + ": full re-sync", At: now},
			api.Intent{Kind: api.IntentDeletes, Reason: why + ": deletions since the backup", Since: b.CreatedAt.Add(-restoreDeletesMargin), At: now},
			api.Intent{Kind: api.IntentReconcile, Reason: why + ": reconciliation", At: now})
		if err != nil {
			return err
		}
	}
	return nil
}

// cancelBackupsOf cancels a deleted connector's unfinished backups (DeleteConnector's transaction).
func cancelBackupsOf(ctx context.Context, tx *sql.Tx, connectorID string, now time.Time) error {
	bs, err := listJSON[api.Backup](ctx, tx, "backup", `SELECT data FROM backups WHERE connector_id = ? AND state IN `+unfinishedBackup, connectorID)
	if err != nil {
		return err
	}
	for _, b := range bs {
		b.State, b.Blocking, b.Error, b.UpdatedAt = api.BackupCancelled, false, "the connector was deleted before the backup finished", now
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE backups SET state = ?, blocking = 0, data = ?, updated_at = ? WHERE id = ?`, b.State, string(data), nanos(now), b.ID); err != nil {
			return err
		}
	}
	return nil
}
