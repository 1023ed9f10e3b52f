package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema's versions, in order: migrations[i] takes the schema from version i to i+1.
// Never edit one that has shipped; append a new one. Times are Unix nanoseconds (UTC).
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE connectors (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	spec        TEXT NOT NULL,            -- api.ConnectorSpec as JSON, inline secrets removed
	secrets     BLOB,                     -- Secrets as JSON, sealed with AES-256-GCM (AAD: the id)
	secrets_set TEXT NOT NULL DEFAULT '[]',
	revision    INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE TABLE mappings (
	id           TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	source_key   TEXT NOT NULL,           -- lower-cased source table: one mapping per table
	spec         TEXT NOT NULL,           -- mapping.TableConfig as JSON
	revision     INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (connector_id, source_key)
);
CREATE TABLE revisions (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	revision     INTEGER NOT NULL,
	config       TEXT NOT NULL,           -- api.Config as JSON, without secrets
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (connector_id, revision)
);
CREATE TABLE activations (
	connector_id   TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	active         INTEGER NOT NULL,
	preflight      TEXT NOT NULL DEFAULT '[]',
	activated_at   INTEGER,
	deactivated_at INTEGER
);
CREATE TABLE leases (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE, -- one current lease
	id           TEXT NOT NULL UNIQUE,
	agent_id     TEXT NOT NULL,
	host         TEXT NOT NULL,
	pid          INTEGER NOT NULL,
	revision     INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	started_at   INTEGER NOT NULL,
	heartbeat_at INTEGER NOT NULL
);
CREATE TABLE agent_status (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	data         TEXT NOT NULL,           -- api.Status as JSON
	reported_at  INTEGER NOT NULL
);
CREATE TABLE checkpoints (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	tbl          TEXT NOT NULL,
	data         TEXT NOT NULL,           -- api.Checkpoint as JSON
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (connector_id, tbl)
);
CREATE TABLE dead_letters (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	tbl          TEXT NOT NULL,
	record_id    TEXT NOT NULL,
	operation    TEXT NOT NULL,
	code         TEXT NOT NULL,
	reason       TEXT NOT NULL,
	payload      TEXT NOT NULL,
	at           INTEGER NOT NULL,
	first_at     INTEGER NOT NULL,
	attempts     INTEGER NOT NULL,
	PRIMARY KEY (connector_id, tbl, record_id)
);
CREATE INDEX dead_letters_by_first_at ON dead_letters (connector_id, tbl, first_at);
CREATE TABLE audit (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	at           INTEGER NOT NULL,
	actor        TEXT NOT NULL,
	action       TEXT NOT NULL,
	connector_id TEXT NOT NULL DEFAULT '', -- no foreign key: the log outlives what it describes
	revision     INTEGER NOT NULL DEFAULT 0,
	detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_connector ON audit (connector_id, id);
`,
	// 2: backups, restores, reconciliation requests, the first activation's backup option (safeguards.go).
	migrationSafeguards,
	// 3: the agents' counters across leases and the history of reports (operations.go).
	migrationOperations,
	// 4: backups and restores outlive their connector (operations.go).
	migrationBackupsOutliveConnectors,
	// 5: agent identities and enrollment tokens (agents.go).
	migrationAgents,
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema to SchemaVersion, one transaction per migration, and refuses a database written
// by a newer binary.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("the database has schema version %d, newer than this binary's %d: upgrade crmsync", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("schema migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("schema migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("schema migration %d: %w", v, err)
		}
	}
	return nil
}
