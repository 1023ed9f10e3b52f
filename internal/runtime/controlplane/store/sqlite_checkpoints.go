package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// LoadCheckpoint implements Store.
func (s *SQLite) LoadCheckpoint(ctx context.Context, leaseID, table string) (*api.Checkpoint, error) {
	var out *api.Checkpoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		var b string
		err = tx.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE connector_id = ? AND tbl = ?`, l.ConnectorID, table).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out = &api.Checkpoint{}
		return json.Unmarshal([]byte(b), out)
	})
	return out, err
}

// SaveCheckpoint implements Store; it is durable when it returns.
func (s *SQLite) SaveCheckpoint(ctx context.Context, leaseID string, cp api.Checkpoint) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		// Intents the control plane added that this agent has not taken in yet (a restore while it drained)
		// stay: an agent removes only what it has seen.
		stored, err := s.storedCheckpoint(ctx, tx, l.ConnectorID, cp.Table)
		if err != nil {
			return err
		}
		if stored != nil {
			cp.Intents = unseenIntents(stored.Intents, cp)
		}
		return s.putCheckpoint(ctx, tx, l.ConnectorID, cp)
	})
}

// unseenIntents returns cp's intents plus those of stored that the control plane added after cp's agent
// last took intents in.
func unseenIntents(stored []api.Intent, cp api.Checkpoint) []api.Intent {
	out := cp.Intents
	for _, in := range stored {
		if in.Seq > cp.IntentSeq && !slices.ContainsFunc(out, func(x api.Intent) bool { return x.Seq == in.Seq }) {
			out = append(out, in)
		}
	}
	return out
}

func (s *SQLite) storedCheckpoint(ctx context.Context, tx *sql.Tx, connectorID, table string) (*api.Checkpoint, error) {
	var b string
	err := tx.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE connector_id = ? AND tbl = ?`, connectorID, table).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cp api.Checkpoint
	if err := json.Unmarshal([]byte(b), &cp); err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", table, err)
	}
	return &cp, nil
}

func (s *SQLite) putCheckpoint(ctx context.Context, tx *sql.Tx, connectorID string, cp api.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO checkpoints (connector_id, tbl, data, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (connector_id, tbl) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`, connectorID, cp.Table, string(b), nanos(s.Now()))
	return err
}

// addIntents records work a table owes in its checkpoint, numbered after every intent the table has seen
// (api.Checkpoint.IntentSeq); the next agent takes them in when it starts. A table without a checkpoint owes
// its initial load, which covers everything: it is left alone.
func (s *SQLite) addIntents(ctx context.Context, tx *sql.Tx, connectorID, table string, intents ...api.Intent) error {
	cp, err := s.storedCheckpoint(ctx, tx, connectorID, table)
	if err != nil || cp == nil {
		return err
	}
	seq := cp.IntentSeq
	for _, in := range cp.Intents {
		seq = max(seq, in.Seq)
	}
	for _, in := range intents {
		seq++
		in.Seq = seq
		cp.Intents = append(cp.Intents, in)
	}
	return s.putCheckpoint(ctx, tx, connectorID, *cp)
}

// ListCheckpoints implements Store.
func (s *SQLite) ListCheckpoints(ctx context.Context, connectorID string) ([]api.Checkpoint, error) {
	var out []api.Checkpoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = listJSON[api.Checkpoint](ctx, tx, "checkpoint", `SELECT data FROM checkpoints WHERE connector_id = ? ORDER BY tbl`, connectorID)
		return err
	})
	return out, err
}

// RequestReconcile implements Store: the connector's next request ID.
func (s *SQLite) RequestReconcile(ctx context.Context, connectorID, actor string) (api.ReconcileRequest, error) {
	out := api.ReconcileRequest{ConnectorID: connectorID}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		now := s.Now()
		if err := tx.QueryRowContext(ctx, `INSERT INTO reconcile_requests (connector_id, request_id, requested_at) VALUES (?, 1, ?)
ON CONFLICT (connector_id) DO UPDATE SET request_id = reconcile_requests.request_id + 1, requested_at = excluded.requested_at RETURNING request_id`,
			connectorID, nanos(now)).Scan(&out.RequestID); err != nil {
			return err
		}
		out.RequestedAt = now
		return s.audit(ctx, tx, actor, "connector.reconcile", connectorID, 0, map[string]any{"request_id": out.RequestID})
	})
	return out, err
}

// ReconcileProgress implements Store: it records the latest request an agent completed and returns the
// connector's latest request when it is still to do (nil otherwise).
func (s *SQLite) ReconcileProgress(ctx context.Context, connectorID string, completed int64) (*api.ReconcileRequest, error) {
	var out *api.ReconcileRequest
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = reconcileProgress(ctx, tx, connectorID, completed)
		return err
	})
	return out, err
}

// reconcileProgress records the request an agent completed and returns the pending one (nil when none).
func reconcileProgress(ctx context.Context, tx *sql.Tx, connectorID string, completed int64) (*api.ReconcileRequest, error) {
	if completed > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE reconcile_requests SET completed = ? WHERE connector_id = ? AND completed < ?`, completed, connectorID, completed); err != nil {
			return nil, err
		}
	}
	var id, at, done int64
	err := tx.QueryRowContext(ctx, `SELECT request_id, requested_at, completed FROM reconcile_requests WHERE connector_id = ?`, connectorID).Scan(&id, &at, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil || id <= done {
		return nil, err
	}
	return &api.ReconcileRequest{ConnectorID: connectorID, RequestID: id, RequestedAt: fromNanos(at)}, nil
}
