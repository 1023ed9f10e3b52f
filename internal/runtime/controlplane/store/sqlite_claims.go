package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Claims (store.go) on SQLite and PostgreSQL alike: one row per name, taken when free or expired, renewed
// by its holder, its token raised at every change of holder. Modelled on river's leader table (elect with an
// upsert that only succeeds when the row is free, re-elect only as the same holder) and Temporal's shard
// ownership (a range ID that grows at every change of owner fences the previous owner's writes).

// migrationClaims adds the claims of once-only work.
const migrationClaims = `
CREATE TABLE claims (
	name       TEXT PRIMARY KEY,   -- the work: "backup:<id>", "restore:<id>"
	holder     TEXT NOT NULL,      -- the replica doing it
	token      BIGINT NOT NULL,    -- grows at every change of holder: the fencing token
	expires_at BIGINT NOT NULL
);`

// Claim implements Claims.
func (s *SQLite) Claim(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	var token int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.Now()
		return tx.QueryRowContext(ctx, `INSERT INTO claims (name, holder, token, expires_at) VALUES (?, ?, 1, ?)
ON CONFLICT (name) DO UPDATE SET
	token = CASE WHEN claims.holder = excluded.holder THEN claims.token ELSE claims.token + 1 END,
	holder = excluded.holder, expires_at = excluded.expires_at
WHERE claims.holder = excluded.holder OR claims.expires_at <= ?
RETURNING token`, name, holder, nanos(now.Add(ttl)), nanos(now)).Scan(&token)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return token, err == nil, err
}

// ReleaseClaim implements Claims: the claim expires now; its row stays, so the next holder's token is still
// higher than every earlier one.
func (s *SQLite) ReleaseClaim(ctx context.Context, name, holder string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE claims SET expires_at = 0 WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
}
