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
	// 2: backups, restores, reconciliation requests, the first activation's backup option (sqlite_backups.go, sqlite_checkpoints.go).
	migrationSafeguards,
	// 3: the agents' counters across leases and the history of reports (sqlite_status.go).
	migrationOperations,
	// 4: backups and restores outlive their connector (sqlite_backups.go).
	migrationBackupsOutliveConnectors,
	// 5: agent identities and enrollment tokens (sqlite_agents.go).
	migrationAgents,
	// 6: the agent pool's members (pool.go).
	migrationPool,
	// 7: the claims of once-only work across replicas (sqlite_claims.go).
	migrationClaims,
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema to SchemaVersion, one transaction per migration, and refuses a database written
// by a newer binary.
func migrate(ctx context.Context, db *sql.DB) error {
	return applyMigrations(ctx, db, "INTEGER", migrations)
}

// migrationRunner is what applyMigrations needs of a database: *sql.DB, or *sql.Conn to keep a session's
// lock for the whole run.
type migrationRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// applyMigrations brings a schema to version len(list): it records applied versions in schema_migrations
// (version of SQL type intType), applies each missing one in a transaction of its own, and refuses a
// database written by a newer binary. SQLite and PostgreSQL share it with their own lists.
func applyMigrations(ctx context.Context, db migrationRunner, intType string, list []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    `+intType+` PRIMARY KEY,
	applied_at `+intType+` NOT NULL
)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if current > len(list) {
		return fmt.Errorf("the database has schema version %d, newer than this binary's %d: upgrade crmsync", current, len(list))
	}
	for v := current + 1; v <= len(list); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, list[v-1]); err != nil {
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

// migrationSafeguards (schema version 2) adds backups, restores, on-demand reconciliation requests and the
// first activation's backup option.
const migrationSafeguards = `
ALTER TABLE activations ADD COLUMN backup_before_first_sync INTEGER NOT NULL DEFAULT 1;
CREATE TABLE backups (
	id           TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	state        TEXT NOT NULL,
	trigger_kind TEXT NOT NULL,
	blocking     INTEGER NOT NULL,        -- holds back the agent of a first activation until complete
	data         TEXT NOT NULL,           -- api.Backup as JSON
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX backups_by_connector ON backups (connector_id, created_at);
CREATE TABLE restores (
	id           TEXT PRIMARY KEY,
	backup_id    TEXT NOT NULL,
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	state        TEXT NOT NULL,
	data         TEXT NOT NULL,           -- api.Restore as JSON
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX restores_by_connector ON restores (connector_id, created_at);
CREATE TABLE reconcile_requests (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	request_id   INTEGER NOT NULL,        -- the latest request
	requested_at INTEGER NOT NULL,
	completed    INTEGER NOT NULL DEFAULT 0 -- the latest request an agent reported done
);
`

// migrationOperations (schema version 3) keeps, beside a connector's last report, which lease made it and
// the counters of the connector's earlier agents (so status and metrics count since the first activation,
// not since the last restart), and a bounded history of reports for the status page's charts.
const migrationOperations = `
ALTER TABLE agent_status ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_status ADD COLUMN totals TEXT NOT NULL DEFAULT '';  -- statusTotals as JSON: earlier agents' counters
CREATE TABLE status_history (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	at           INTEGER NOT NULL,
	data         TEXT NOT NULL,           -- api.HistoryPoint as JSON
	PRIMARY KEY (connector_id, at)
);
`

// migrationBackupsOutliveConnectors (schema version 4): backups and restores are no longer deleted with their
// connector (the foreign keys cascaded): a destroyed connector's backups stay listable and restorable into
// another connector of the same environment. SQLite cannot drop a foreign key, so both tables are rebuilt.
const migrationBackupsOutliveConnectors = `
CREATE TABLE backups_v4 (
	id           TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL,           -- no foreign key: a backup outlives its connector
	state        TEXT NOT NULL,
	trigger_kind TEXT NOT NULL,
	blocking     INTEGER NOT NULL,
	data         TEXT NOT NULL,           -- api.Backup as JSON
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
INSERT INTO backups_v4 SELECT id, connector_id, state, trigger_kind, blocking, data, created_at, updated_at FROM backups;
DROP TABLE backups;
ALTER TABLE backups_v4 RENAME TO backups;
CREATE INDEX backups_by_connector ON backups (connector_id, created_at);
CREATE TABLE restores_v4 (
	id           TEXT PRIMARY KEY,
	backup_id    TEXT NOT NULL,
	connector_id TEXT NOT NULL,           -- the connector restored into; no foreign key, like backups
	state        TEXT NOT NULL,
	data         TEXT NOT NULL,           -- api.Restore as JSON
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
INSERT INTO restores_v4 SELECT id, backup_id, connector_id, state, data, created_at, updated_at FROM restores;
DROP TABLE restores;
ALTER TABLE restores_v4 RENAME TO restores;
CREATE INDEX restores_by_connector ON restores (connector_id, created_at);
`

// migrationAgents adds agent identities and enrollment tokens.
const migrationAgents = `
CREATE TABLE agents (
	id           TEXT PRIMARY KEY,          -- agt_<32 hex>
	name         TEXT NOT NULL,
	host         TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL,             -- enrolled, local
	connector_id TEXT NOT NULL DEFAULT '',  -- the one connector it may lease; '' for any
	secret_hash  BLOB NOT NULL,             -- SHA-256 of the credential's secret
	next_hash    BLOB,                      -- a rotated secret not used yet; the current one works until it is
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL DEFAULT 0,
	rotated_at   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE enrollments (
	id           TEXT PRIMARY KEY,          -- enr_<32 hex>
	secret_hash  BLOB NOT NULL,
	connector_id TEXT NOT NULL DEFAULT '',
	description  TEXT NOT NULL DEFAULT '',
	expires_at   INTEGER NOT NULL,
	used_at      INTEGER NOT NULL DEFAULT 0,
	agent_id     TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL
);`
