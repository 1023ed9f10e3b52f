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

// Heartbeat implements Store, on the hottest path of the control plane (docs/scaling.md, "Status at scale"):
// when the lease needs no renewal and no reconciliation is reported done, it is one read statement (the
// holder check and the answer: activation, pending reconciliation); otherwise one transaction that also
// renews. The status is buffered (status_buffer.go), never written here.
func (s *SQLite) Heartbeat(ctx context.Context, leaseID, agentID string, ttl, renewEvery time.Duration, status api.Status) (Beat, error) {
	now := s.Now()
	b, err := beatRead(ctx, s.db, leaseID, agentID)
	if err != nil {
		return Beat{}, err
	}
	if b.needsWrite(now, ttl, renewEvery, status.ReconcileRequestID) {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			now = s.Now()
			if b, err = beatRead(ctx, tx, leaseID, agentID); err != nil {
				return err
			}
			return s.beatWrite(ctx, tx, &b, now, ttl, renewEvery, status.ReconcileRequestID)
		})
		if err != nil {
			return Beat{}, err
		}
	}
	s.bufferReport(b.Lease.ConnectorID, leaseID, status, now) //nolint:contextcheck // the flusher it may start outlives the request
	out := Beat{Lease: b.Lease, Activation: b.Activation, ExpiresIn: b.Lease.ExpiresAt.Sub(now)}
	out.Lease.TTLSeconds = ttl.Seconds()
	if b.requestID > b.completed {
		out.Reconcile = &api.ReconcileRequest{ConnectorID: b.Lease.ConnectorID, RequestID: b.requestID, RequestedAt: fromNanos(b.requestedAt)}
	}
	return out, nil
}

// beatRow is what a heartbeat reads, in one statement.
type beatRow struct {
	Lease                             api.Lease
	Activation                        api.Activation
	requestID, requestedAt, completed int64
}

// needsWrite: the lease is renewed when renewEvery (every heartbeat when 0) passed since its last renewal,
// or when it expired (a current lease that expired re-attaches, as RenewLease); a reconciliation reported
// done is recorded.
func (b *beatRow) needsWrite(now time.Time, ttl, renewEvery time.Duration, reconciled int64) bool {
	return renewEvery <= 0 || b.Lease.ExpiresAt.Sub(now) <= ttl-renewEvery || reconciled > b.completed
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func beatRead(ctx context.Context, q queryRower, leaseID, agentID string) (beatRow, error) {
	var b beatRow
	var holder string
	var expires, active int64
	err := q.QueryRowContext(ctx, `SELECT l.agent_id, l.connector_id, l.revision, l.expires_at, c.revision, COALESCE(a.active, 0),
	COALESCE(r.request_id, 0), COALESCE(r.requested_at, 0), COALESCE(r.completed, 0)
FROM leases l JOIN connectors c ON c.id = l.connector_id LEFT JOIN activations a ON a.connector_id = l.connector_id
	LEFT JOIN reconcile_requests r ON r.connector_id = l.connector_id
WHERE l.id = ?`, leaseID).Scan(&holder, &b.Lease.ConnectorID, &b.Lease.Revision, &expires, &b.Activation.DesiredRevision, &active,
		&b.requestID, &b.requestedAt, &b.completed)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("%w: lease %s is not its connector's current lease", ErrLeaseLost, leaseID)
	}
	if err != nil {
		return b, err
	}
	if holder != agentID {
		return b, fmt.Errorf("%w: lease %s belongs to another agent", ErrNotHolder, leaseID)
	}
	b.Lease.ID, b.Lease.AgentID, b.Lease.ExpiresAt = leaseID, holder, fromNanos(expires)
	b.Activation.ConnectorID, b.Activation.Active = b.Lease.ConnectorID, active == 1
	return b, nil
}

func (s *SQLite) beatWrite(ctx context.Context, tx *sql.Tx, b *beatRow, now time.Time, ttl, renewEvery time.Duration, reconciled int64) error {
	if renewEvery <= 0 || b.Lease.ExpiresAt.Sub(now) <= ttl-renewEvery {
		b.Lease.ExpiresAt = now.Add(ttl)
		if _, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?, heartbeat_at = ? WHERE id = ?`, nanos(b.Lease.ExpiresAt), nanos(now), b.Lease.ID); err != nil {
			return err
		}
	}
	if reconciled > b.completed {
		if _, err := tx.ExecContext(ctx, `UPDATE reconcile_requests SET completed = ? WHERE connector_id = ? AND completed < ?`, reconciled, b.Lease.ConnectorID, reconciled); err != nil {
			return err
		}
		b.completed = reconciled
	}
	return nil
}

// ReleaseLease implements Store; releasing a lease that is no longer current is a no-op (the call is
// idempotent and retried by clients).
func (s *SQLite) ReleaseLease(ctx context.Context, leaseID string) error {
	// The agent's last reports (sent just before) are written while the lease is still its own.
	if err := s.flushReports(ctx); err != nil {
		return err
	}
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
		// A heartbeat that did not renew the lease left its time with its report.
		var reported int64
		err = tx.QueryRowContext(ctx, `SELECT reported_at FROM agent_status WHERE connector_id = ? AND lease_id = ?`, connectorID, l.ID).Scan(&reported)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if at := fromNanos(reported); at.After(out.HeartbeatAt) {
			out.HeartbeatAt = at
		}
		return nil
	})
	if p, ok := s.reports.buffered(connectorID); ok && err == nil && p.leaseID == out.LeaseID && p.at.After(out.HeartbeatAt) {
		out.HeartbeatAt = p.at
	}
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
