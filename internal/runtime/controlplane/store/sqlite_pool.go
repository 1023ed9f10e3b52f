package store

import (
	"context"
	"database/sql"
	"time"
)

// migrationPool adds the pool's members.
const migrationPool = `
CREATE TABLE pool_members (
	agent_id       TEXT NOT NULL,
	host           TEXT NOT NULL,          -- one identity may run as several processes, told apart by host
	max_connectors INTEGER NOT NULL,
	draining       INTEGER NOT NULL DEFAULT 0,
	seen_at        INTEGER NOT NULL,
	PRIMARY KEY (agent_id, host)
);`

// PoolCheckIn implements Pool.
func (s *SQLite) PoolCheckIn(ctx context.Context, m PoolMember, ttl time.Duration) (PoolView, error) {
	var v PoolView
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.Now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO pool_members (agent_id, host, max_connectors, draining, seen_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (agent_id, host) DO UPDATE SET max_connectors = excluded.max_connectors, draining = excluded.draining, seen_at = excluded.seen_at`,
			m.AgentID, m.Host, m.MaxConnectors, boolInt(m.Draining), nanos(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pool_members WHERE seen_at < ?`, nanos(now.Add(-ttl))); err != nil {
			return err
		}
		var err error
		if v.Members, err = poolMembers(ctx, tx); err != nil {
			return err
		}
		if v.Active, err = queryStrings(ctx, tx, `SELECT connector_id FROM activations WHERE active = 1 ORDER BY connector_id`); err != nil {
			return err
		}
		v.Holders, err = liveHolders(ctx, tx, now)
		return err
	})
	return v, err
}

func poolMembers(ctx context.Context, tx *sql.Tx) ([]PoolMember, error) {
	rows, err := tx.QueryContext(ctx, `SELECT agent_id, host, max_connectors, draining, seen_at FROM pool_members ORDER BY agent_id, host`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PoolMember
	for rows.Next() {
		var m PoolMember
		var draining int
		var seen int64
		if err := rows.Scan(&m.AgentID, &m.Host, &m.MaxConnectors, &draining, &seen); err != nil {
			return nil, err
		}
		m.Draining, m.SeenAt = draining != 0, fromNanos(seen)
		out = append(out, m)
	}
	return out, rows.Err()
}

func liveHolders(ctx context.Context, tx *sql.Tx, now time.Time) (map[string]PoolHolder, error) {
	rows, err := tx.QueryContext(ctx, `SELECT connector_id, agent_id, host FROM leases WHERE expires_at > ?`, nanos(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]PoolHolder{}
	for rows.Next() {
		var id string
		var h PoolHolder
		if err := rows.Scan(&id, &h.AgentID, &h.Host); err != nil {
			return nil, err
		}
		out[id] = h
	}
	return out, rows.Err()
}

func queryStrings(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
