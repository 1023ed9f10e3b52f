package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// How long an agent's last_seen may lag before an authenticated call writes it again: a heartbeat per second
// must not cost a write each.
const lastSeenEvery = 30 * time.Second

func (s *SQLite) insertAgent(ctx context.Context, tx *sql.Tx, kind, connectorID, name, host string) (api.AgentCredential, error) {
	secret, hash, err := newSecret()
	if err != nil {
		return api.AgentCredential{}, err
	}
	id := NewID(PrefixAgent)
	if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, name, host, kind, connector_id, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, name, host, kind, connectorID, hash, nanos(s.Now())); err != nil {
		return api.AgentCredential{}, err
	}
	return api.AgentCredential{AgentID: id, Credential: id + "." + secret, ConnectorID: connectorID}, nil
}

// CreateEnrollment implements Store.
func (s *SQLite) CreateEnrollment(ctx context.Context, req api.EnrollmentRequest, actor string) (api.Enrollment, error) {
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl == 0 {
		ttl = DefaultEnrollmentTTL
	}
	secret, hash, err := newSecret()
	if err != nil {
		return api.Enrollment{}, err
	}
	out := api.Enrollment{ID: NewID(PrefixEnrollment), ConnectorID: req.ConnectorID, Description: req.Description}
	out.Token = out.ID + "." + secret
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if req.ConnectorID != "" {
			if _, err := getConnector(ctx, tx, req.ConnectorID); err != nil {
				return err
			}
		}
		now := s.Now()
		out.ExpiresAt = now.Add(ttl)
		if _, err := tx.ExecContext(ctx, `INSERT INTO enrollments (id, secret_hash, connector_id, description, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			out.ID, hash, req.ConnectorID, req.Description, nanos(out.ExpiresAt), nanos(now)); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "enrollment.create", req.ConnectorID, 0,
			map[string]any{"enrollment_id": out.ID, "expires_at": out.ExpiresAt, "description": req.Description})
	})
	return out, err
}

// Enroll implements Store: the enrollment token is used once, within its lifetime; every refusal is the
// same ErrUnauthenticated (no oracle on which part was wrong).
func (s *SQLite) Enroll(ctx context.Context, token string, req api.EnrollRequest) (api.AgentCredential, error) {
	id, secret, ok := SplitCredential(PrefixEnrollment, token)
	if !ok {
		return api.AgentCredential{}, ErrUnauthenticated
	}
	var out api.AgentCredential
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var hash []byte
		var connectorID string
		var expires, used int64
		err := tx.QueryRowContext(ctx, `SELECT secret_hash, connector_id, expires_at, used_at FROM enrollments WHERE id = ?`, id).
			Scan(&hash, &connectorID, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		now := s.Now()
		if !sameHash(secret, hash) || used != 0 || !fromNanos(expires).After(now) {
			return ErrUnauthenticated
		}
		if out, err = s.insertAgent(ctx, tx, api.AgentEnrolled, connectorID, req.Name, req.Host); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE enrollments SET used_at = ?, agent_id = ? WHERE id = ?`, nanos(now), out.AgentID, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, "agent:"+out.AgentID, "agent.enroll", connectorID, 0,
			map[string]any{"enrollment_id": id, "name": req.Name, "host": req.Host})
	})
	return out, err
}

// CreateLocalAgent implements Store.
func (s *SQLite) CreateLocalAgent(ctx context.Context, connectorID, name, host string) (api.AgentCredential, error) {
	var out api.AgentCredential
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.insertAgent(ctx, tx, api.AgentLocal, connectorID, name, host)
		return err
	})
	return out, err
}

// AuthenticateAgent implements Store. A rotated credential not used yet is accepted too, and its first use
// retires the one it replaced.
func (s *SQLite) AuthenticateAgent(ctx context.Context, credential string) (api.AgentIdentity, error) {
	id, secret, ok := SplitCredential(PrefixAgent, credential)
	if !ok {
		return api.AgentIdentity{}, ErrUnauthenticated
	}
	var out api.AgentIdentity
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var hash, next []byte
		var created, seen, rotated int64
		err := tx.QueryRowContext(ctx, `SELECT name, host, kind, connector_id, secret_hash, next_hash, created_at, last_seen_at, rotated_at FROM agents WHERE id = ?`, id).
			Scan(&out.Name, &out.Host, &out.Kind, &out.ConnectorID, &hash, &next, &created, &seen, &rotated)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		now := s.Now()
		switch {
		case sameHash(secret, hash):
		case next != nil && sameHash(secret, next):
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET secret_hash = next_hash, next_hash = NULL WHERE id = ?`, id); err != nil {
				return err
			}
		default:
			return ErrUnauthenticated
		}
		out.ID, out.CreatedAt, out.LastSeenAt, out.RotatedAt = id, fromNanos(created), fromNanos(seen), fromNanos(rotated)
		if now.Sub(out.LastSeenAt) > lastSeenEvery {
			out.LastSeenAt = now
			if _, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen_at = ? WHERE id = ?`, nanos(now), id); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// RotateAgentCredential implements Store: a new secret is issued and works at once; the current one keeps
// working until the new one is first used, so an agent that dies before saving the new one loses nothing.
func (s *SQLite) RotateAgentCredential(ctx context.Context, agentID string) (api.AgentCredential, error) {
	secret, hash, err := newSecret()
	if err != nil {
		return api.AgentCredential{}, err
	}
	out := api.AgentCredential{AgentID: agentID, Credential: agentID + "." + secret}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `UPDATE agents SET next_hash = ?, rotated_at = ? WHERE id = ? RETURNING connector_id`,
			hash, nanos(s.Now()), agentID).Scan(&out.ConnectorID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrUnauthenticated
			}
			return err
		}
		return s.audit(ctx, tx, "agent:"+agentID, "agent.rotate", out.ConnectorID, 0, map[string]any{})
	})
	return out, err
}

// RevokeAgent implements Store: the identity is gone (its credentials no longer work) and so are its leases,
// so another agent can take its connectors at once.
func (s *SQLite) RevokeAgent(ctx context.Context, agentID, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var name string
		if err := tx.QueryRowContext(ctx, `DELETE FROM agents WHERE id = ? RETURNING name`, agentID).Scan(&name); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("agent", agentID)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE agent_id = ?`, agentID); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "agent.revoke", "", 0, map[string]any{"agent_id": agentID, "name": name})
	})
}

// ListAgents implements Store.
func (s *SQLite) ListAgents(ctx context.Context) ([]api.AgentIdentity, error) {
	out := []api.AgentIdentity{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, name, host, kind, connector_id, created_at, last_seen_at, rotated_at FROM agents ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a api.AgentIdentity
			var created, seen, rotated int64
			if err := rows.Scan(&a.ID, &a.Name, &a.Host, &a.Kind, &a.ConnectorID, &created, &seen, &rotated); err != nil {
				return err
			}
			a.CreatedAt = fromNanos(created)
			if seen != 0 {
				a.LastSeenAt = fromNanos(seen)
			}
			if rotated != 0 {
				a.RotatedAt = fromNanos(rotated)
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}
