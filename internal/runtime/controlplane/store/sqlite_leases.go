package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

type leaseRow struct {
	api.Lease
	host                   string
	pid                    int
	startedAt, heartbeatAt time.Time
}

func (s *SQLite) leaseBy(ctx context.Context, tx *sql.Tx, where string, arg string) (leaseRow, error) {
	var l leaseRow
	var expires, started, hb int64
	// where is one of this file's constant clauses; the value goes through a placeholder.
	q := `SELECT id, connector_id, agent_id, host, pid, revision, expires_at, started_at, heartbeat_at FROM leases WHERE ` + where //nolint:gosec // constant clauses only
	err := tx.QueryRowContext(ctx, q, arg).Scan(&l.ID, &l.ConnectorID, &l.AgentID, &l.host, &l.pid, &l.Revision, &expires, &started, &hb)
	if err != nil {
		return l, err
	}
	l.ExpiresAt, l.startedAt, l.heartbeatAt = fromNanos(expires), fromNanos(started), fromNanos(hb)
	return l, nil
}

// currentLease returns the connector id of a lease that is still its connector's current one.
func (s *SQLite) currentLease(ctx context.Context, tx *sql.Tx, leaseID string) (leaseRow, error) {
	l, err := s.leaseBy(ctx, tx, `id = ?`, leaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("%w: lease %s is not its connector's current lease", ErrLeaseLost, leaseID)
	}
	return l, err
}

// AcquireLease implements Store. The same agent asking again from the same host (it restarted) gets a new
// lease at once; another agent, or the same identity on another host, waits until the current lease expires.
// The returned Config holds the decrypted inline secrets.
func (s *SQLite) AcquireLease(ctx context.Context, req api.LeaseRequest, ttl time.Duration) (api.Lease, error) {
	var out api.Lease
	err := s.tx(ctx, func(tx *sql.Tx) error {
		c, err := getConnector(ctx, tx, req.ConnectorID)
		if err != nil {
			return err
		}
		now := s.Now()
		cur, err := s.leaseBy(ctx, tx, `connector_id = ?`, req.ConnectorID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur.ExpiresAt.After(now) && (cur.AgentID != req.AgentID || cur.host != req.Host):
			// One identity may run as several processes (a pool's pods share their credential): only the same
			// process asking again, on its host, takes the lease over before it expires.
			return fmt.Errorf("%w: agent %s on %s holds connector %s until %s", ErrConflict, cur.AgentID, cur.host, req.ConnectorID, cur.ExpiresAt.Format(time.RFC3339))
		}
		if err := backupGate(ctx, tx, c.ID); err != nil {
			return err
		}
		var b string
		if err := tx.QueryRowContext(ctx, `SELECT config FROM revisions WHERE connector_id = ? AND revision = ?`, c.ID, c.Revision).Scan(&b); err != nil {
			return fmt.Errorf("connector %s revision %d: %w", c.ID, c.Revision, err)
		}
		if out.Config, err = decodeRevision(b); err != nil {
			return err
		}
		sec, err := s.secretsOf(ctx, tx, c.ID)
		if err != nil {
			return err
		}
		applySecrets(&out.Config, sec)
		out.ID, out.ConnectorID, out.AgentID, out.Revision = NewID(PrefixLease), c.ID, req.AgentID, c.Revision
		out.ExpiresAt, out.TTLSeconds = now.Add(ttl), ttl.Seconds()
		if _, err := tx.ExecContext(ctx, `INSERT INTO leases (connector_id, id, agent_id, host, pid, revision, expires_at, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (connector_id) DO UPDATE SET id = excluded.id, agent_id = excluded.agent_id, host = excluded.host, pid = excluded.pid,
	revision = excluded.revision, expires_at = excluded.expires_at, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
			c.ID, out.ID, req.AgentID, req.Host, req.PID, c.Revision, nanos(out.ExpiresAt), nanos(now), nanos(now)); err != nil {
			return err
		}
		// The lease ID is the agent's to use: the audit log names the agent, never the lease.
		return s.audit(ctx, tx, "agent:"+req.AgentID, "lease.acquire", c.ID, c.Revision,
			map[string]any{"host": req.Host, "pid": req.PID})
	})
	return out, err
}

// RenewLease implements Store. A lease that expired but was not replaced is still current and renews: an
// agent cut off from the control plane for a while (a control plane restart) re-attaches.
func (s *SQLite) RenewLease(ctx context.Context, leaseID string, ttl time.Duration, status api.Status) (api.Lease, error) {
	var out api.Lease
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		out, err = s.renew(ctx, tx, l, ttl, status)
		return err
	})
	return out, err
}

// renew extends a current lease by ttl from now and stores its agent's status.
func (s *SQLite) renew(ctx context.Context, tx *sql.Tx, l leaseRow, ttl time.Duration, status api.Status) (api.Lease, error) {
	now := s.Now()
	l.ExpiresAt, l.TTLSeconds = now.Add(ttl), ttl.Seconds()
	if _, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?, heartbeat_at = ? WHERE id = ?`, nanos(l.ExpiresAt), nanos(now), l.ID); err != nil {
		return api.Lease{}, err
	}
	if err := storeReport(ctx, tx, l.ConnectorID, l.ID, status, now); err != nil {
		return api.Lease{}, err
	}
	return l.Lease, nil
}

// Heartbeat implements Store: the holder check, the renewal with the status, and the reads of the answer
// (activation, pending reconciliation) in one transaction instead of four, on the hottest path of the control
// plane (docs/scaling.md, "Status at scale").
func (s *SQLite) Heartbeat(ctx context.Context, leaseID, agentID string, ttl time.Duration, status api.Status) (Beat, error) {
	var out Beat
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		if l.AgentID != agentID {
			return fmt.Errorf("%w: lease %s belongs to another agent", ErrNotHolder, leaseID)
		}
		if out.Lease, err = s.renew(ctx, tx, l, ttl, status); err != nil {
			return err
		}
		if out.Activation, err = s.activation(ctx, tx, l.ConnectorID); err != nil {
			return err
		}
		out.Reconcile, err = reconcileProgress(ctx, tx, l.ConnectorID, status.ReconcileRequestID)
		return err
	})
	return out, err
}

// ReleaseLease implements Store; releasing a lease that is no longer current is a no-op (the call is
// idempotent and retried by clients).
func (s *SQLite) ReleaseLease(ctx context.Context, leaseID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.leaseBy(ctx, tx, `id = ?`, leaseID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE id = ?`, leaseID); err != nil {
			return err
		}
		return s.audit(ctx, tx, "agent:"+l.AgentID, "lease.release", l.ConnectorID, l.Revision, map[string]string{})
	})
}

// CurrentLease implements Store.
func (s *SQLite) CurrentLease(ctx context.Context, connectorID string) (api.Lease, error) {
	l, err := s.CurrentAgent(ctx, connectorID)
	if err != nil {
		return api.Lease{}, err
	}
	return api.Lease{ID: l.LeaseID, ConnectorID: connectorID, AgentID: l.ID, Revision: l.Revision, ExpiresAt: l.ExpiresAt}, nil
}

// CurrentAgent implements Store.
func (s *SQLite) CurrentAgent(ctx context.Context, connectorID string) (LeaseInfo, error) {
	var out LeaseInfo
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.leaseBy(ctx, tx, `connector_id = ?`, connectorID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: connector %s has no lease", ErrNotFound, connectorID)
		}
		if err != nil {
			return err
		}
		out = LeaseInfo{AgentInfo: api.AgentInfo{ID: l.AgentID, Host: l.host, PID: l.pid, Revision: l.Revision,
			HeartbeatAt: l.heartbeatAt, StartedAt: l.startedAt}, LeaseID: l.ID, ExpiresAt: l.ExpiresAt}
		return nil
	})
	return out, err
}

// LeaseHolder implements Store.
func (s *SQLite) LeaseHolder(ctx context.Context, leaseID string) (agentID, connectorID string, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.leaseBy(ctx, tx, `id = ?`, leaseID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: lease %s is not its connector's current lease", ErrLeaseLost, leaseID)
		}
		agentID, connectorID = l.AgentID, l.ConnectorID
		return err
	})
	return agentID, connectorID, err
}
