// Package localstore keeps an agent's checkpoints, dead letters and last status in a SQLite file (pure Go,
// no cgo) for standalone mode: `crmsync agent --config FILE --state-dir DIR`.
package localstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// Store implements agent.CheckpointStore, agent.DeadLetterStore and agent.Reporter.
type Store struct {
	db   *sql.DB
	lock *statedir.Lock

	mu     sync.Mutex
	status agent.Status
}

const schema = `
CREATE TABLE IF NOT EXISTS checkpoints (
	tbl  TEXT PRIMARY KEY,
	data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
	tbl       TEXT NOT NULL,
	record_id TEXT NOT NULL,
	operation TEXT NOT NULL,
	code      TEXT NOT NULL,
	reason    TEXT NOT NULL,
	payload   TEXT NOT NULL,
	at        INTEGER NOT NULL,
	first_at  INTEGER NOT NULL,
	attempts  INTEGER NOT NULL,
	PRIMARY KEY (tbl, record_id)
);
CREATE TABLE IF NOT EXISTS status (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	data TEXT NOT NULL
);`

// DBFile is the database's name inside the state directory.
const DBFile = "agent.db"

// Open opens (creating if needed) DIR/agent.db. The directory is this store's alone while it is open: a
// second store on it, in this process or another (a second `crmsync agent --state-dir DIR`), is refused
// naming the holder's PID, so one connector's changes are never written twice from one state. The directory
// is created 0700 and the database 0600 (it holds dead-letter payloads: personal data); a directory or state
// file open to group or others is refused.
func Open(dir string) (*Store, error) {
	lock, path, err := statedir.AcquireDB(dir, "crmsync agent", DBFile)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises anyway and this avoids SQLITE_BUSY
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		_ = lock.Release()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	return &Store{db: db, lock: lock}, nil
}

// Close closes the database and lets the state directory go.
func (s *Store) Close() error {
	err := s.db.Close()
	if lerr := s.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

// LoadCheckpoint implements agent.CheckpointStore.
func (s *Store) LoadCheckpoint(ctx context.Context, table string) (*agent.Checkpoint, error) {
	var data string
	err := s.db.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE tbl = ?`, table).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cp agent.Checkpoint
	if err := json.Unmarshal([]byte(data), &cp); err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", table, err)
	}
	return &cp, nil
}

// SaveCheckpoint implements agent.CheckpointStore; it is durable when it returns (synchronous=FULL).
func (s *Store) SaveCheckpoint(ctx context.Context, cp agent.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO checkpoints (tbl, data) VALUES (?, ?) ON CONFLICT (tbl) DO UPDATE SET data = excluded.data`, cp.Table, string(b))
	return err
}

// AddDeadLetters implements agent.DeadLetterStore.
func (s *Store) AddDeadLetters(ctx context.Context, dls []agent.DeadLetter) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	for _, d := range dls {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO dead_letters (tbl, record_id, operation, code, reason, payload, at, first_at, attempts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (tbl, record_id) DO UPDATE SET operation = excluded.operation, code = excluded.code, reason = excluded.reason,
	payload = excluded.payload, at = excluded.at, attempts = dead_letters.attempts + 1`,
			d.Table, d.RecordID, d.Operation, d.Code, d.Reason, d.Payload, d.At.UnixNano(), d.At.UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// RetryableDeadLetters implements agent.DeadLetterStore.
func (s *Store) RetryableDeadLetters(ctx context.Context, table, code string, since time.Time, limit int) ([]agent.DeadLetter, error) {
	return s.list(ctx, `WHERE tbl = ? AND code = ? AND first_at >= ? ORDER BY first_at LIMIT ?`, table, code, since.UnixNano(), limit)
}

// DeadLetters lists every dead letter (all tables when table is empty).
func (s *Store) DeadLetters(ctx context.Context, table string) ([]agent.DeadLetter, error) {
	if table == "" {
		return s.list(ctx, `ORDER BY tbl, first_at`)
	}
	return s.list(ctx, `WHERE tbl = ? ORDER BY first_at`, table)
}

func (s *Store) list(ctx context.Context, where string, args ...any) ([]agent.DeadLetter, error) {
	// where is one of this file's constant clauses; values always go through placeholders.
	rows, err := s.db.QueryContext(ctx, `SELECT tbl, record_id, operation, code, reason, payload, at, first_at, attempts FROM dead_letters `+where, args...) //nolint:gosec // constant clauses only
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []agent.DeadLetter
	for rows.Next() {
		var d agent.DeadLetter
		var at, first int64
		if err := rows.Scan(&d.Table, &d.RecordID, &d.Operation, &d.Code, &d.Reason, &d.Payload, &at, &first, &d.Attempts); err != nil {
			return nil, err
		}
		d.At, d.FirstAt = time.Unix(0, at).UTC(), time.Unix(0, first).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// ResolveDeadLetter implements agent.DeadLetterStore.
func (s *Store) ResolveDeadLetter(ctx context.Context, table, recordID string, before time.Time) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM dead_letters WHERE tbl = ? AND record_id = ? AND at < ?`, table, recordID, before.UnixNano())
	return err
}

// Report implements agent.Reporter: it keeps the status for Status and stores it.
func (s *Store) Report(ctx context.Context, st agent.Status) error {
	s.mu.Lock()
	s.status = st
	s.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO status (id, data) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data`, string(b))
	return err
}

// Status returns the last reported status.
func (s *Store) Status() agent.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// LastStatus reads the stored status (for `crmsync status` against a state directory).
func (s *Store) LastStatus(ctx context.Context) (*agent.Status, error) {
	var data string
	if err := s.db.QueryRowContext(ctx, `SELECT data FROM status WHERE id = 1`).Scan(&data); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		return nil, err
	}
	var st agent.Status
	return &st, json.Unmarshal([]byte(data), &st)
}
