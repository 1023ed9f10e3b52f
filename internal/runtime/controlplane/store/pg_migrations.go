package store

import (
	"context"
	"database/sql"
	"fmt"
)

// pgMigrations are the PostgreSQL schema's versions, in order, like SQLite's (sqlite_migrations.go): never
// edit one that has shipped; append. Version 1 is SQLite's schema 6 in PostgreSQL's types (version n > 1 is SQLite's n+5) (BIGINT for the
// Unix-nanosecond times and counters, BYTEA for blobs, an identity for the audit log's order). A change to
// the SQLite schema appends a migration to both lists.
var pgMigrations = []string{
	// 1: the schema of SQLite version 6.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
CREATE TABLE connectors (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	spec        TEXT NOT NULL,
	secrets     BYTEA,
	secrets_set TEXT NOT NULL DEFAULT '[]',
	revision    BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE TABLE mappings (
	id           TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	source_key   TEXT NOT NULL,
	spec         TEXT NOT NULL,
	revision     BIGINT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL,
	UNIQUE (connector_id, source_key)
);
CREATE TABLE revisions (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	revision     BIGINT NOT NULL,
	config       TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	PRIMARY KEY (connector_id, revision)
);
CREATE TABLE activations (
	connector_id   TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	active         BIGINT NOT NULL,
	preflight      TEXT NOT NULL DEFAULT '[]',
	activated_at   BIGINT,
	deactivated_at BIGINT,
	backup_before_first_sync BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE leases (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	id           TEXT NOT NULL UNIQUE,
	agent_id     TEXT NOT NULL,
	host         TEXT NOT NULL,
	pid          BIGINT NOT NULL,
	revision     BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	started_at   BIGINT NOT NULL,
	heartbeat_at BIGINT NOT NULL
);
CREATE INDEX leases_by_agent ON leases (agent_id);
CREATE TABLE agent_status (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	data         TEXT NOT NULL,
	reported_at  BIGINT NOT NULL,
	lease_id     TEXT NOT NULL DEFAULT '',
	totals       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE checkpoints (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	tbl          TEXT NOT NULL,
	data         TEXT NOT NULL,
	updated_at   BIGINT NOT NULL,
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
	at           BIGINT NOT NULL,
	first_at     BIGINT NOT NULL,
	attempts     BIGINT NOT NULL,
	PRIMARY KEY (connector_id, tbl, record_id)
);
CREATE INDEX dead_letters_by_first_at ON dead_letters (connector_id, tbl, first_at);
CREATE TABLE audit (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at           BIGINT NOT NULL,
	actor        TEXT NOT NULL,
	action       TEXT NOT NULL,
	connector_id TEXT NOT NULL DEFAULT '',
	revision     BIGINT NOT NULL DEFAULT 0,
	detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_connector ON audit (connector_id, id);
CREATE TABLE reconcile_requests (
	connector_id TEXT PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
	request_id   BIGINT NOT NULL,
	requested_at BIGINT NOT NULL,
	completed    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE status_history (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	at           BIGINT NOT NULL,
	data         TEXT NOT NULL,
	PRIMARY KEY (connector_id, at)
);
CREATE TABLE backups (
	id           TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL,
	state        TEXT NOT NULL,
	trigger_kind TEXT NOT NULL,
	blocking     BIGINT NOT NULL,
	data         TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE INDEX backups_by_connector ON backups (connector_id, created_at);
CREATE TABLE restores (
	id           TEXT PRIMARY KEY,
	backup_id    TEXT NOT NULL,
	connector_id TEXT NOT NULL,
	state        TEXT NOT NULL,
	data         TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE INDEX restores_by_connector ON restores (connector_id, created_at);
CREATE TABLE agents (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	host         TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL,
	connector_id TEXT NOT NULL DEFAULT '',
	secret_hash  BYTEA NOT NULL,
	next_hash    BYTEA,
	created_at   BIGINT NOT NULL,
	last_seen_at BIGINT NOT NULL DEFAULT 0,
	rotated_at   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE enrollments (
	id           TEXT PRIMARY KEY,
	secret_hash  BYTEA NOT NULL,
	connector_id TEXT NOT NULL DEFAULT '',
	description  TEXT NOT NULL DEFAULT '',
	expires_at   BIGINT NOT NULL,
	used_at      BIGINT NOT NULL DEFAULT 0,
	agent_id     TEXT NOT NULL DEFAULT '',
	created_at   BIGINT NOT NULL
);
CREATE TABLE pool_members (
	agent_id       TEXT NOT NULL,
	host           TEXT NOT NULL,
	max_connectors BIGINT NOT NULL,
	draining       BIGINT NOT NULL DEFAULT 0,
	seen_at        BIGINT NOT NULL,
	PRIMARY KEY (agent_id, host)
);
`,
	// 2: SQLite's 7, the claims of once-only work (sqlite_claims.go).
	migrationClaims,
}

// PGSchemaVersion is the PostgreSQL schema version this binary writes.
func PGSchemaVersion() int { return len(pgMigrations) }

// migrationLock is the advisory lock the migrations of every replica take (an arbitrary constant:
// golang-migrate derives its own from the database name; one crmsync schema per database here).
const migrationLock = 0x63726d73796e63 // "crmsync"

// pgMigrate brings the PostgreSQL schema to PGSchemaVersion under a session advisory lock held on one
// connection for the whole run, so replicas starting together migrate once; it refuses a database written by
// a newer binary.
func pgMigrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, migrationLock); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, migrationLock)
	}()
	return applyMigrations(ctx, conn, "BIGINT", pgMigrations)
}
