package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// The PostgreSQL store (crmsync serve --store postgres://…, docs/scaling.md): the SQLite store's methods, run
// on PostgreSQL through pgx's database/sql driver. The statements are the same portable SQL (upserts with ON
// CONFLICT, RETURNING, times as Unix nanoseconds): the driver below rewrites SQLite's "?" placeholders into
// PostgreSQL's "$n". What differs is what the engines differ in:
//
//   - Schema: pg_migrations.go, versioned like SQLite's, applied under an advisory lock (golang-migrate's
//     way), so replicas starting at once migrate once.
//   - Concurrency: SQLite runs one transaction at a time; PostgreSQL serves several replicas, each with a
//     pool of connections. Every method is one SERIALIZABLE transaction, retried when PostgreSQL aborts it
//     for a conflict (SQLSTATE 40001, 40P01): the outcome is that of some serial order, as on SQLite, so
//     check-then-write methods (AcquireLease: "no live lease, so take it") stay correct across replicas.
//   - The key: every replica reads the same key file (a Kubernetes Secret, or a copy of the first replica's
//     DIR/secret.key). The first replica on an empty database may generate it; a replica whose key does not
//     decrypt the database's key check is refused, naming the file.
//
// Replicas' clocks (the store's Now) write lease expiries: keep them NTP-synchronized; a skew of d eats d
// from the lease's margin.

// PostgresOptions configures OpenPostgres.
type PostgresOptions struct {
	// URL is the connection string (postgres://user:password@host:5432/db?sslmode=verify-full).
	URL string
	// Dir is this replica's data directory (held by one process, as with SQLite: its local socket lives
	// there).
	Dir string
	// KeyFile is the secrets key; DIR/secret.key when empty. It is created only when the database has no
	// key yet.
	KeyFile string
	// MaxConns caps the pool (20 when zero).
	MaxConns int
}

// OpenPostgres opens the store on PostgreSQL, migrating its schema.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*SQLite, error) {
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", redact(err, o.URL))
	}
	lock, err := statedir.Acquire(o.Dir, "crmsync serve")
	if err != nil {
		return nil, err
	}
	if o.KeyFile == "" {
		o.KeyFile = filepath.Join(o.Dir, KeyFile)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 20
	}
	db := sql.OpenDB(rebindConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &SQLite{db: db, dir: o.Dir, lock: lock, keyPath: o.KeyFile, pg: true, Now: func() time.Time { return time.Now().UTC() }}
	where := fmt.Sprintf("PostgreSQL %s/%s", cfg.Host, cfg.Database)
	if err := s.initWith(ctx, where); err != nil {
		_ = db.Close()
		_ = lock.Release()
		return nil, err
	}
	return s, nil
}

// redact removes the password of a URL from an error's text.
func redact(err error, url string) error {
	if cfg, perr := pgx.ParseConfig(url); perr == nil && cfg.Password != "" {
		return errors.New(strings.ReplaceAll(err.Error(), cfg.Password, "***"))
	}
	return err
}

// serializationRetries bounds the retries of a transaction PostgreSQL aborted for a conflict.
const serializationRetries = 30

// retryable reports whether PostgreSQL aborted a transaction for a conflict with another (serialization
// failure, deadlock): running it again is the remedy.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// pgTx runs fn in one SERIALIZABLE transaction, again when PostgreSQL aborts it for a conflict.
func (s *SQLite) pgTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.pgTxAt(ctx, sql.LevelSerializable, fn)
}

// pgTxAt runs fn in one transaction at the isolation level, again when PostgreSQL aborts it for a conflict.
func (s *SQLite) pgTxAt(ctx context.Context, level sql.IsolationLevel, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.once(ctx, &sql.TxOptions{Isolation: level}, fn)
		if err == nil || !retryable(err) || attempt >= serializationRetries {
			return err
		}
		d := time.Duration(1+rand.IntN(5<<min(attempt, 5))) * time.Millisecond
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// rebindConnector hands database/sql connections that take "?" placeholders.
type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return rebindConn{conn.(*stdlib.Conn)}, nil
}

// rebindConn is pgx's connection with the statements' "?" rewritten to "$1", "$2", … .
type rebindConn struct{ *stdlib.Conn }

func (c rebindConn) Prepare(query string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(query)) }

func (c rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// rebind rewrites "?" placeholders outside quotes into "$n".
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n, quote := 0, byte(0)
	for i := 0; i < len(q); i++ {
		ch := q[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// Shared reports whether other control-plane replicas may use the store at the same time (PostgreSQL).
func (s *SQLite) Shared() bool { return s.pg }
