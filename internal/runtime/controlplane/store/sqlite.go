package store

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// DBFile is the name of the database inside the data directory.
const DBFile = "control-plane.db"

// SQLite is the Store on an embedded SQLite database (modernc.org/sqlite, no cgo) in one directory.
//
// Every method runs in one transaction on a single connection: the control plane's load is small, and one
// writer at a time rules out SQLITE_BUSY and lost updates without retry loops. The journal is WAL with
// synchronous=FULL, so a committed method survives a crash or power loss.
//
// The same type is the PostgreSQL store (OpenPostgres, pg.go): its statements are portable SQL, and pg
// switches what differs (schema migrations, transaction isolation).
type SQLite struct {
	db      *sql.DB
	aead    cipher.AEAD
	dir     string
	lock    *statedir.Lock
	keyPath string // the secrets key (DIR/secret.key by default)
	pg      bool   // PostgreSQL (pg.go)
	reports statusBuffer

	// Now is the clock (UTC); tests replace it before use to move time without sleeping.
	Now func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating when needed) the store in dir: DIR/control-plane.db and the secret key
// DIR/secret.key. It refuses to start when the key file is readable by group or others, when the key is
// missing but secrets exist, or when the key does not decrypt the stored secrets (naming the connector).
//
// The directory is this store's alone while it is open (statedir.AcquireDB): a second store on it, in this
// process or another, is refused naming the holder's PID; Close lets it go. The directory must be 0700 and
// its state files 0600 (checked at open, like the key).
func OpenSQLite(dir string) (*SQLite, error) {
	lock, path, err := statedir.AcquireDB(dir, "crmsync serve", DBFile)
	if err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, dir: dir, lock: lock, keyPath: filepath.Join(dir, KeyFile), Now: func() time.Time { return time.Now().UTC() }}
	if err := s.initWith(context.Background(), filepath.Join(dir, DBFile)); err != nil {
		_ = db.Close()
		_ = lock.Release()
		return nil, err
	}
	return s, nil
}

// initWith migrates the schema and checks the key against the database (where names the database in
// errors).
func (s *SQLite) initWith(ctx context.Context, where string) error {
	migrateFn := migrate
	if s.pg {
		migrateFn = pgMigrate
	}
	if err := migrateFn(ctx, s.db); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var check []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	hasCheck := err == nil
	keyPath := s.keyPath
	key, _, err := loadKey(keyPath, !hasCheck)
	if err != nil {
		return err
	}
	if s.aead, err = newAEAD(key); err != nil {
		return err
	}
	if !hasCheck {
		sealed, err := seal(s.aead, []byte(keyCheckPlain), []byte("key_check"))
		if err != nil {
			return err
		}
		// Another replica may have stored its key check first: the one stored is read back and checked.
		if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('key_check', ?) ON CONFLICT (key) DO NOTHING`, sealed); err != nil {
			return err
		}
		if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&check); err != nil {
			return err
		}
	}
	if plain, err := open(s.aead, check, []byte("key_check")); err != nil || string(plain) != keyCheckPlain {
		return fmt.Errorf("%s is not the key the database's secrets were encrypted with (its key check does not decrypt); restore the original key file (every replica needs the same one)", keyPath)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, secrets FROM connectors WHERE secrets IS NOT NULL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		var sealed []byte
		if err := rows.Scan(&id, &name, &sealed); err != nil {
			return err
		}
		if _, err := open(s.aead, sealed, []byte(id)); err != nil {
			return fmt.Errorf("%s does not decrypt the secrets of connector %s (%s); restore the original key file", keyPath, id, name)
		}
	}
	return rows.Err()
}

// Close writes the reports the store holds, closes the database and lets the data directory go.
func (s *SQLite) Close() error {
	ferr := s.closeReports()
	err := s.db.Close()
	if err == nil {
		err = ferr
	}
	if lerr := s.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

// tx runs fn in one transaction, committed when fn returns nil.
func (s *SQLite) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.pg {
		return s.pgTx(ctx, fn)
	}
	return s.once(ctx, nil, fn)
}

// once runs fn in one transaction with the options.
func (s *SQLite) once(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func notFound(what, id string) error { return fmt.Errorf("%w: no %s %s", ErrNotFound, what, id) }

type scanner interface{ Scan(dest ...any) error }

func scanJSON[T any](r scanner, what string) (T, error) {
	var v T
	var data string
	if err := r.Scan(&data); err != nil {
		return v, err
	}
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return v, fmt.Errorf("stored %s: %w", what, err)
	}
	return v, nil
}

func listJSON[T any](ctx context.Context, tx *sql.Tx, what, q string, args ...any) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scanJSON[T](rows, what)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
