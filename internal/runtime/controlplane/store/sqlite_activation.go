package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// activation reads a connector's activation: inactive when never activated. The deployed revision is the
// revision of the live lease (the agent runs exactly the config its lease carries), 0 when no agent holds a
// live lease.
func (s *SQLite) activation(ctx context.Context, tx *sql.Tx, connectorID string) (api.Activation, error) {
	c, err := getConnector(ctx, tx, connectorID)
	if err != nil {
		return api.Activation{}, err
	}
	a := api.Activation{ConnectorID: connectorID, DesiredRevision: c.Revision, BackupBeforeFirstSync: true}
	var active, backupOpt int
	var preflight string
	var activated, deactivated sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT active, preflight, activated_at, deactivated_at, backup_before_first_sync FROM activations WHERE connector_id = ?`, connectorID).
		Scan(&active, &preflight, &activated, &deactivated, &backupOpt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err == nil {
		a.Active, a.BackupBeforeFirstSync = active == 1, backupOpt == 1
		if err := json.Unmarshal([]byte(preflight), &a.Preflight); err != nil {
			return a, fmt.Errorf("activation of %s: stored preflight: %w", connectorID, err)
		}
		if activated.Valid {
			t := fromNanos(activated.Int64)
			a.ActivatedAt = &t
		}
		if deactivated.Valid {
			t := fromNanos(deactivated.Int64)
			a.DeactivatedAt = &t
		}
	}
	var rev, expires int64
	err = tx.QueryRowContext(ctx, `SELECT revision, expires_at FROM leases WHERE connector_id = ?`, connectorID).Scan(&rev, &expires)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err == nil && expires > nanos(s.Now()) {
		a.DeployedRevision = rev
	}
	if a.Backup, err = firstActivationBackup(ctx, tx, connectorID); err != nil {
		return a, err
	}
	return a, nil
}

// GetActivation implements Store.
func (s *SQLite) GetActivation(ctx context.Context, connectorID string) (api.Activation, error) {
	var out api.Activation
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.activation(ctx, tx, connectorID)
		return err
	})
	return out, err
}

// SetActivation implements Store. Activating keeps the first activation time while the connector stays
// active; deactivating clears the preflight checks.
func (s *SQLite) SetActivation(ctx context.Context, connectorID string, active bool, preflight []api.PreflightCheck, actor string) (api.Activation, error) {
	var out api.Activation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := s.activation(ctx, tx, connectorID)
		if err != nil {
			return err
		}
		if preflight == nil {
			preflight = []api.PreflightCheck{}
		}
		pf, err := json.Marshal(preflight)
		if err != nil {
			return err
		}
		now := nanos(s.Now())
		activated, deactivated := sql.NullInt64{}, sql.NullInt64{}
		if cur.ActivatedAt != nil {
			activated = sql.NullInt64{Int64: nanos(*cur.ActivatedAt), Valid: true}
		}
		if cur.DeactivatedAt != nil {
			deactivated = sql.NullInt64{Int64: nanos(*cur.DeactivatedAt), Valid: true}
		}
		switch {
		case active && !cur.Active:
			activated, deactivated = sql.NullInt64{Int64: now, Valid: true}, sql.NullInt64{}
		case !active && cur.Active:
			deactivated = sql.NullInt64{Int64: now, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO activations (connector_id, active, preflight, activated_at, deactivated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (connector_id) DO UPDATE SET active = excluded.active, preflight = excluded.preflight, activated_at = excluded.activated_at, deactivated_at = excluded.deactivated_at`,
			connectorID, boolInt(active), string(pf), activated, deactivated); err != nil {
			return err
		}
		if out, err = s.activation(ctx, tx, connectorID); err != nil {
			return err
		}
		if active == cur.Active {
			return nil
		}
		action := "connector.deactivate"
		if active {
			action = "connector.activate"
		}
		return s.audit(ctx, tx, actor, action, connectorID, out.DesiredRevision, map[string]any{"preflight": preflight})
	})
	return out, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ListActive implements Store.
func (s *SQLite) ListActive(ctx context.Context) ([]api.Activation, error) {
	out := []api.Activation{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT a.connector_id FROM activations a JOIN connectors c ON c.id = a.connector_id WHERE a.active = 1 ORDER BY c.name`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			a, err := s.activation(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}
