package store

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// DBFile is the name of the database inside the data directory.
const DBFile = "control-plane.db"

// Names of the write-only secrets.
const (
	SecretSalesforceClientSecret = api.SecretSalesforceClientSecret
	SecretSalesforcePrivateKey   = api.SecretSalesforcePrivateKey
	SecretDataverseClientSecret  = api.SecretDataverseClientSecret
)

// SecretNames lists every secret name a connector can hold.
var SecretNames = []string{SecretDataverseClientSecret, SecretSalesforceClientSecret, SecretSalesforcePrivateKey}

// ID prefixes.
const (
	PrefixConnector = "con_"
	PrefixMapping   = "map_"
	PrefixLease     = "lease_"
)

var idPattern = regexp.MustCompile(`^(con|map|lease|bak|rst|agt|enr)_[0-9a-f]{32}$`)

// NewID returns a fresh ID with the prefix: the prefix and a random UUID's 32 hex digits.
func NewID(prefix string) string { return prefix + strings.ReplaceAll(uuid.NewString(), "-", "") }

// ValidID reports whether id is an ID of the prefix's kind.
func ValidID(prefix, id string) bool {
	return strings.HasPrefix(id, prefix) && idPattern.MatchString(id)
}

// SQLite is the Store on an embedded SQLite database (modernc.org/sqlite, no cgo) in one directory.
//
// Every method runs in one transaction on a single connection: the control plane's load is small, and one
// writer at a time rules out SQLITE_BUSY and lost updates without retry loops. The journal is WAL with
// synchronous=FULL, so a committed method survives a crash or power loss.
type SQLite struct {
	db   *sql.DB
	aead cipher.AEAD
	dir  string
	lock *statedir.Lock

	// Now is the clock (UTC); tests replace it before use to move time without sleeping.
	Now func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating when needed) the store in dir: DIR/control-plane.db and the secret key
// DIR/secret.key. It refuses to start when the key file is readable by group or others, when the key is
// missing but secrets exist, or when the key does not decrypt the stored secrets (naming the connector).
//
// The directory is this store's alone while it is open (statedir.Acquire): a second store on it, in this
// process or another, is refused naming the holder's PID; Close lets it go. The directory must be 0700 and
// its state files 0600 (checked at open, like the key).
func OpenSQLite(dir string) (*SQLite, error) {
	lock, err := statedir.Acquire(dir, "crmsync serve")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	if err := statedir.CheckPrivate(path, path+"-wal", path+"-shm"); err != nil {
		_ = lock.Release()
		return nil, err
	}
	// Create the file ourselves so it is 0600 from the start (SQLite would use the umask).
	if err := statedir.CreatePrivate(path); err != nil {
		_ = lock.Release()
		return nil, err
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, dir: dir, lock: lock, Now: func() time.Time { return time.Now().UTC() }}
	if err := s.init(context.Background()); err != nil {
		_ = db.Close()
		_ = lock.Release()
		return nil, err
	}
	return s, nil
}

func (s *SQLite) init(ctx context.Context) error {
	if err := migrate(ctx, s.db); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(s.dir, DBFile), err)
	}
	var check []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	hasCheck := err == nil
	key, created, err := loadKey(s.dir, !hasCheck)
	if err != nil {
		return err
	}
	if s.aead, err = newAEAD(key); err != nil {
		return err
	}
	keyPath := filepath.Join(s.dir, KeyFile)
	if !hasCheck || created {
		sealed, err := seal(s.aead, []byte(keyCheckPlain), []byte("key_check"))
		if err != nil {
			return err
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('key_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, sealed); err != nil {
			return err
		}
	} else if plain, err := open(s.aead, check, []byte("key_check")); err != nil || string(plain) != keyCheckPlain {
		return fmt.Errorf("%s is not the key the database's secrets were encrypted with (its key check does not decrypt); restore the original key file", keyPath)
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

// Close closes the database and lets the data directory go.
func (s *SQLite) Close() error {
	err := s.db.Close()
	if lerr := s.lock.Release(); err == nil {
		err = lerr
	}
	return err
}

// tx runs fn in one transaction, committed when fn returns nil.
func (s *SQLite) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
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

// Connectors.

// publicSpec returns spec without its inline secrets.
func publicSpec(spec api.ConnectorSpec) api.ConnectorSpec {
	spec.Salesforce.ClientSecret, spec.Salesforce.PrivateKey, spec.Dataverse.ClientSecret = "", "", ""
	return spec
}

const connectorCols = `id, name, spec, secrets_set, revision, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanConnector(r scanner) (api.Connector, error) {
	var c api.Connector
	var name, spec, set string
	var created, updated int64
	if err := r.Scan(&c.ID, &name, &spec, &set, &c.Revision, &created, &updated); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(spec), &c.ConnectorSpec); err != nil {
		return c, fmt.Errorf("connector %s: stored spec: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(set), &c.SecretsSet); err != nil {
		return c, fmt.Errorf("connector %s: stored secrets_set: %w", c.ID, err)
	}
	if c.SecretsSet == nil {
		c.SecretsSet = []string{}
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

func getConnector(ctx context.Context, tx *sql.Tx, id string) (api.Connector, error) {
	c, err := scanConnector(tx.QueryRowContext(ctx, `SELECT `+connectorCols+` FROM connectors WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound("connector", id)
	}
	return c, err
}

// secretsOf decrypts a connector's secrets (empty when none are stored).
func (s *SQLite) secretsOf(ctx context.Context, tx *sql.Tx, id string) (Secrets, error) {
	var sealed []byte
	err := tx.QueryRowContext(ctx, `SELECT secrets FROM connectors WHERE id = ?`, id).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("connector", id)
	}
	if err != nil {
		return nil, err
	}
	out := Secrets{}
	if sealed == nil {
		return out, nil
	}
	plain, err := open(s.aead, sealed, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("decrypting the secrets of connector %s: %w", id, err)
	}
	return out, json.Unmarshal(plain, &out)
}

// writeSecrets merges changes into the stored secrets (an empty value deletes) and stores them sealed.
func (s *SQLite) writeSecrets(ctx context.Context, tx *sql.Tx, id string, changes Secrets) (changed bool, err error) {
	cur, err := s.secretsOf(ctx, tx, id)
	if err != nil {
		return false, err
	}
	for k, v := range changes {
		if !slices.Contains(SecretNames, k) {
			return false, fmt.Errorf("unknown secret %q (known: %s)", k, strings.Join(SecretNames, ", "))
		}
		if cur[k] != v {
			changed = true
		}
		if v == "" {
			delete(cur, k)
		} else {
			cur[k] = v
		}
	}
	if !changed {
		return false, nil
	}
	set := make([]string, 0, len(cur))
	for k := range cur {
		set = append(set, k)
	}
	sort.Strings(set)
	setJSON, _ := json.Marshal(set)
	var sealed []byte
	if len(cur) > 0 {
		plain, err := json.Marshal(cur)
		if err != nil {
			return false, err
		}
		if sealed, err = seal(s.aead, plain, []byte(id)); err != nil {
			return false, err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE connectors SET secrets = ?, secrets_set = ? WHERE id = ?`, sealed, string(setJSON), id)
	return true, err
}

// CreateConnector implements Store.
func (s *SQLite) CreateConnector(ctx context.Context, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error) {
	var out api.Connector
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM connectors WHERE name = ?`, spec.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a connector named %q exists", ErrConflict, spec.Name)
		}
		id, now := NewID(PrefixConnector), nanos(s.Now())
		b, err := json.Marshal(publicSpec(spec))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO connectors (id, name, spec, revision, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)`,
			id, spec.Name, string(b), now, now); err != nil {
			return err
		}
		if _, err := s.writeSecrets(ctx, tx, id, secrets); err != nil {
			return err
		}
		if err := s.writeRevision(ctx, tx, id, 1); err != nil {
			return err
		}
		if out, err = getConnector(ctx, tx, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "connector.create", id, 1, connectorDetail(out))
	})
	return out, err
}

func connectorDetail(c api.Connector) any {
	return struct {
		Name       string            `json:"name"`
		Spec       api.ConnectorSpec `json:"spec"`
		SecretsSet []string          `json:"secrets_set"`
	}{c.Name, publicSpec(c.ConnectorSpec), c.SecretsSet}
}

// GetConnector implements Store.
func (s *SQLite) GetConnector(ctx context.Context, id string) (api.Connector, error) {
	var out api.Connector
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = getConnector(ctx, tx, id)
		return err
	})
	return out, err
}

// FindConnector implements Store.
func (s *SQLite) FindConnector(ctx context.Context, name string) (api.Connector, error) {
	var out api.Connector
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = scanConnector(tx.QueryRowContext(ctx, `SELECT `+connectorCols+` FROM connectors WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no connector is named %q", ErrNotFound, name)
		}
		return err
	})
	return out, err
}

// ListConnectors implements Store; connectors come sorted by name.
func (s *SQLite) ListConnectors(ctx context.Context) ([]api.Connector, error) {
	out := []api.Connector{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+connectorCols+` FROM connectors ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConnector(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// UpdateConnector implements Store. The revision moves only when something changed (the spec or a secret),
// so a retried PUT does not roll the agent twice.
func (s *SQLite) UpdateConnector(ctx context.Context, id string, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error) {
	var out api.Connector
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := getConnector(ctx, tx, id)
		if err != nil {
			return err
		}
		if spec.Name != cur.Name {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM connectors WHERE name = ? AND id <> ?`, spec.Name, id).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: a connector named %q exists", ErrConflict, spec.Name)
			}
		}
		oldSpec, _ := json.Marshal(publicSpec(cur.ConnectorSpec))
		newSpec, err := json.Marshal(publicSpec(spec))
		if err != nil {
			return err
		}
		secretsChanged, err := s.writeSecrets(ctx, tx, id, secrets)
		if err != nil {
			return err
		}
		if string(oldSpec) == string(newSpec) && !secretsChanged {
			out = cur
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE connectors SET name = ?, spec = ? WHERE id = ?`, spec.Name, string(newSpec), id); err != nil {
			return err
		}
		rev, err := s.bump(ctx, tx, id)
		if err != nil {
			return err
		}
		if out, err = getConnector(ctx, tx, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "connector.update", id, rev, connectorDetail(out))
	})
	return out, err
}

// bump moves a connector to its next revision and records that revision's agent config.
func (s *SQLite) bump(ctx context.Context, tx *sql.Tx, id string) (int64, error) {
	var rev int64
	if err := tx.QueryRowContext(ctx, `UPDATE connectors SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision`,
		nanos(s.Now()), id).Scan(&rev); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, notFound("connector", id)
		}
		return 0, err
	}
	return rev, s.writeRevision(ctx, tx, id, rev)
}

// writeRevision records the agent config of the connector as it stands in tx.
func (s *SQLite) writeRevision(ctx context.Context, tx *sql.Tx, id string, rev int64) error {
	c, err := getConnector(ctx, tx, id)
	if err != nil {
		return err
	}
	specs, err := mappingSpecs(ctx, tx, id)
	if err != nil {
		return err
	}
	cfg := configOf(c, rev, specs)
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO revisions (connector_id, revision, config, created_at) VALUES (?, ?, ?, ?)`, id, rev, string(b), nanos(s.Now()))
	return err
}

// configOf is the agent configuration of a connector and its mappings, without secrets.
func configOf(c api.Connector, rev int64, tables []mapping.TableConfig) api.Config {
	sf, dv := c.Salesforce, c.Dataverse
	cfg := api.Config{
		Connector: c.Name,
		Revision:  rev,
		TeamID:    c.TeamID,
		Salesforce: api.SalesforceConfig{
			LoginURL: sf.LoginURL, InstanceURL: sf.InstanceURL, APIVersion: sf.APIVersion, PubSubAddr: sf.PubSubAddr,
			PubSubPlaintext: sf.PubSubPlaintext, Auth: sf.Auth, ClientID: sf.ClientID, Username: sf.Username,
			ClientSecretEnv: sf.ClientSecretEnv, ClientSecretFile: sf.ClientSecretFile,
			PrivateKeyEnv: sf.PrivateKeyEnv, PrivateKeyFile: sf.PrivateKeyFile, CAFile: sf.CAFile,
		},
		Dataverse: api.DataverseConfig{
			EnvironmentURL: dv.EnvironmentURL, AuthorityURL: dv.AuthorityURL, TenantID: dv.TenantID, ClientID: dv.ClientID,
			ClientSecretEnv: dv.ClientSecretEnv, ClientSecretFile: dv.ClientSecretFile, CAFile: dv.CAFile,
		},
		// The one place the effective columns of an agent's tables are resolved: the agent, backups and
		// restores use the revision's.
		Tables: mapping.ResolveAll(tables),
	}
	if c.Tuning != nil {
		cfg.Tuning = *c.Tuning
	}
	return cfg
}

// applySecrets fills the inline secrets of an agent config.
func applySecrets(cfg *api.Config, sec Secrets) {
	if v := sec[SecretSalesforceClientSecret]; v != "" {
		cfg.Salesforce.ClientSecret = v
	}
	if v := sec[SecretSalesforcePrivateKey]; v != "" {
		cfg.Salesforce.PrivateKey = v
	}
	if v := sec[SecretDataverseClientSecret]; v != "" {
		cfg.Dataverse.ClientSecret = v
	}
}

// DeleteConnector implements Store.
func (s *SQLite) DeleteConnector(ctx context.Context, id string, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		c, err := getConnector(ctx, tx, id)
		if err != nil {
			return err
		}
		// The foreign keys cascade to mappings, revisions, activation, lease, status, checkpoints and dead
		// letters. Backups and restores stay (they are restored into another connector of the environment);
		// a backup still running is cancelled, as there is no connector left to finish it with.
		if err := cancelBackupsOf(ctx, tx, id, s.Now()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM connectors WHERE id = ?`, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "connector.delete", id, c.Revision, map[string]string{"name": c.Name})
	})
}

// ConnectorSecrets implements Store.
func (s *SQLite) ConnectorSecrets(ctx context.Context, id string) (Secrets, error) {
	var out Secrets
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.secretsOf(ctx, tx, id)
		return err
	})
	return out, err
}

// Mappings.

const mappingCols = `id, connector_id, spec, revision, created_at, updated_at`

func scanMapping(r scanner) (api.TableMapping, error) {
	var m api.TableMapping
	var spec string
	var created, updated int64
	if err := r.Scan(&m.ID, &m.ConnectorID, &spec, &m.Revision, &created, &updated); err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(spec), &m.TableConfig); err != nil {
		return m, fmt.Errorf("mapping %s: stored spec: %w", m.ID, err)
	}
	m.CreatedAt, m.UpdatedAt = fromNanos(created), fromNanos(updated)
	return m, nil
}

func mappingSpecs(ctx context.Context, tx *sql.Tx, connectorID string) ([]mapping.TableConfig, error) {
	ms, err := listMappings(ctx, tx, connectorID)
	if err != nil {
		return nil, err
	}
	out := make([]mapping.TableConfig, len(ms))
	for i, m := range ms {
		out[i] = m.TableConfig
	}
	return out, nil
}

// listMappings returns a connector's mappings sorted by source table, as stored (no effective columns).
func listMappings(ctx context.Context, tx *sql.Tx, connectorID string) ([]api.TableMapping, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+mappingCols+` FROM mappings WHERE connector_id = ? ORDER BY source_key`, connectorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.TableMapping{}
	for rows.Next() {
		m, err := scanMapping(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// withEffective fills each mapping's effective destination and columns, given all of the connector's
// mappings (lookups depend on which tables are synced).
func withEffective(ms []api.TableMapping, all []api.TableMapping) {
	siblings := make(mapping.Siblings, len(all))
	for _, m := range all {
		siblings[m.SourceTable] = m.Destination()
	}
	for i := range ms {
		ms[i].EffectiveColumns = mapping.Effective(ms[i].TableConfig, siblings)
		ms[i].DestinationTable = ms[i].Destination()
	}
}

func (s *SQLite) getMapping(ctx context.Context, tx *sql.Tx, id string) (api.TableMapping, error) {
	m, err := scanMapping(tx.QueryRowContext(ctx, `SELECT `+mappingCols+` FROM mappings WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, notFound("mapping", id)
	}
	if err != nil {
		return m, err
	}
	all, err := listMappings(ctx, tx, m.ConnectorID)
	if err != nil {
		return m, err
	}
	one := []api.TableMapping{m}
	withEffective(one, all)
	return one[0], nil
}

func (s *SQLite) sourceTaken(ctx context.Context, tx *sql.Tx, connectorID, source, exceptID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mappings WHERE connector_id = ? AND source_key = ? AND id <> ?`,
		connectorID, strings.ToLower(source), exceptID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: connector %s already maps %s", ErrConflict, connectorID, source)
	}
	return nil
}

// CreateMapping implements Store.
func (s *SQLite) CreateMapping(ctx context.Context, connectorID string, spec mapping.TableConfig, actor string) (api.TableMapping, error) {
	var out api.TableMapping
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		if err := s.sourceTaken(ctx, tx, connectorID, spec.SourceTable, ""); err != nil {
			return err
		}
		b, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		id, now := NewID(PrefixMapping), nanos(s.Now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO mappings (id, connector_id, source_key, spec, revision, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)`,
			id, connectorID, strings.ToLower(spec.SourceTable), string(b), now, now); err != nil {
			return err
		}
		rev, err := s.bump(ctx, tx, connectorID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mappings SET revision = ? WHERE id = ?`, rev, id); err != nil {
			return err
		}
		if out, err = s.getMapping(ctx, tx, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "mapping.create", connectorID, rev, map[string]any{"mapping_id": id, "spec": spec})
	})
	return out, err
}

// GetMapping implements Store.
func (s *SQLite) GetMapping(ctx context.Context, id string) (api.TableMapping, error) {
	var out api.TableMapping
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.getMapping(ctx, tx, id)
		return err
	})
	return out, err
}

// ListMappings implements Store; mappings come sorted by source table.
func (s *SQLite) ListMappings(ctx context.Context, connectorID string) ([]api.TableMapping, error) {
	var out []api.TableMapping
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		var err error
		if out, err = listMappings(ctx, tx, connectorID); err != nil {
			return err
		}
		withEffective(out, out)
		return nil
	})
	return out, err
}

// UpdateMapping implements Store. As with connectors, an update that changes nothing keeps the revision.
func (s *SQLite) UpdateMapping(ctx context.Context, id string, spec mapping.TableConfig, actor string) (api.TableMapping, error) {
	var out api.TableMapping
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanMapping(tx.QueryRowContext(ctx, `SELECT `+mappingCols+` FROM mappings WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("mapping", id)
		}
		if err != nil {
			return err
		}
		if err := s.sourceTaken(ctx, tx, cur.ConnectorID, spec.SourceTable, id); err != nil {
			return err
		}
		oldSpec, _ := json.Marshal(cur.TableConfig)
		newSpec, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		if string(oldSpec) == string(newSpec) {
			out, err = s.getMapping(ctx, tx, id)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mappings SET source_key = ?, spec = ?, updated_at = ? WHERE id = ?`,
			strings.ToLower(spec.SourceTable), string(newSpec), nanos(s.Now()), id); err != nil {
			return err
		}
		rev, err := s.bump(ctx, tx, cur.ConnectorID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mappings SET revision = ? WHERE id = ?`, rev, id); err != nil {
			return err
		}
		if out, err = s.getMapping(ctx, tx, id); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "mapping.update", cur.ConnectorID, rev, map[string]any{"mapping_id": id, "spec": spec})
	})
	return out, err
}

// DeleteMapping implements Store.
func (s *SQLite) DeleteMapping(ctx context.Context, id string, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var connectorID, source string
		err := tx.QueryRowContext(ctx, `SELECT connector_id, source_key FROM mappings WHERE id = ?`, id).Scan(&connectorID, &source)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("mapping", id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mappings WHERE id = ?`, id); err != nil {
			return err
		}
		rev, err := s.bump(ctx, tx, connectorID)
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "mapping.delete", connectorID, rev, map[string]string{"mapping_id": id, "source_table": source})
	})
}

// RevisionConfig implements Store.
func (s *SQLite) RevisionConfig(ctx context.Context, connectorID string, revision int64) (api.Config, error) {
	var cfg api.Config
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var b string
		err := tx.QueryRowContext(ctx, `SELECT config FROM revisions WHERE connector_id = ? AND revision = ?`, connectorID, revision).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: connector %s has no revision %d", ErrNotFound, connectorID, revision)
		}
		if err != nil {
			return err
		}
		cfg, err = decodeRevision(b)
		return err
	})
	return cfg, err
}

// decodeRevision reads a revision's agent config. Revisions stored before they carried effective columns get
// them resolved now, as writeRevision does.
func decodeRevision(b string) (api.Config, error) {
	var cfg api.Config
	if err := json.Unmarshal([]byte(b), &cfg); err != nil {
		return cfg, err
	}
	if slices.ContainsFunc(cfg.Tables, func(t mapping.Resolved) bool { return len(t.EffectiveColumns) == 0 }) {
		cfg.Resolve()
	}
	return cfg, nil
}

// Activation.

// activation reads a connector's activation: inactive when never activated. The deployed revision is the
// revision of the live lease (the agent runs exactly the config its lease carries), 0 when no agent holds a
// live lease.
func (s *SQLite) activation(ctx context.Context, tx *sql.Tx, connectorID string) (api.Activation, error) {
	c, err := getConnector(ctx, tx, connectorID)
	if err != nil {
		return api.Activation{}, err
	}
	a := api.Activation{ConnectorID: connectorID, DesiredRevision: c.Revision, BackupBeforeFirstSync: true}
	var active, backupOpt int
	var preflight string
	var activated, deactivated sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT active, preflight, activated_at, deactivated_at, backup_before_first_sync FROM activations WHERE connector_id = ?`, connectorID).
		Scan(&active, &preflight, &activated, &deactivated, &backupOpt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err == nil {
		a.Active, a.BackupBeforeFirstSync = active == 1, backupOpt == 1
		if err := json.Unmarshal([]byte(preflight), &a.Preflight); err != nil {
			return a, fmt.Errorf("activation of %s: stored preflight: %w", connectorID, err)
		}
		if activated.Valid {
			t := fromNanos(activated.Int64)
			a.ActivatedAt = &t
		}
		if deactivated.Valid {
			t := fromNanos(deactivated.Int64)
			a.DeactivatedAt = &t
		}
	}
	var rev, expires int64
	err = tx.QueryRowContext(ctx, `SELECT revision, expires_at FROM leases WHERE connector_id = ?`, connectorID).Scan(&rev, &expires)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err == nil && expires > nanos(s.Now()) {
		a.DeployedRevision = rev
	}
	if a.Backup, err = firstActivationBackup(ctx, tx, connectorID); err != nil {
		return a, err
	}
	return a, nil
}

// GetActivation implements Store.
func (s *SQLite) GetActivation(ctx context.Context, connectorID string) (api.Activation, error) {
	var out api.Activation
	err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		out, err = s.activation(ctx, tx, connectorID)
		return err
	})
	return out, err
}

// SetActivation implements Store. Activating keeps the first activation time while the connector stays
// active; deactivating clears the preflight checks.
func (s *SQLite) SetActivation(ctx context.Context, connectorID string, active bool, preflight []api.PreflightCheck, actor string) (api.Activation, error) {
	var out api.Activation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := s.activation(ctx, tx, connectorID)
		if err != nil {
			return err
		}
		if preflight == nil {
			preflight = []api.PreflightCheck{}
		}
		pf, err := json.Marshal(preflight)
		if err != nil {
			return err
		}
		now := nanos(s.Now())
		activated, deactivated := sql.NullInt64{}, sql.NullInt64{}
		if cur.ActivatedAt != nil {
			activated = sql.NullInt64{Int64: nanos(*cur.ActivatedAt), Valid: true}
		}
		if cur.DeactivatedAt != nil {
			deactivated = sql.NullInt64{Int64: nanos(*cur.DeactivatedAt), Valid: true}
		}
		switch {
		case active && !cur.Active:
			activated, deactivated = sql.NullInt64{Int64: now, Valid: true}, sql.NullInt64{}
		case !active && cur.Active:
			deactivated = sql.NullInt64{Int64: now, Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO activations (connector_id, active, preflight, activated_at, deactivated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (connector_id) DO UPDATE SET active = excluded.active, preflight = excluded.preflight, activated_at = excluded.activated_at, deactivated_at = excluded.deactivated_at`,
			connectorID, boolInt(active), string(pf), activated, deactivated); err != nil {
			return err
		}
		if out, err = s.activation(ctx, tx, connectorID); err != nil {
			return err
		}
		if active == cur.Active {
			return nil
		}
		action := "connector.deactivate"
		if active {
			action = "connector.activate"
		}
		return s.audit(ctx, tx, actor, action, connectorID, out.DesiredRevision, map[string]any{"preflight": preflight})
	})
	return out, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ListActive implements Store.
func (s *SQLite) ListActive(ctx context.Context) ([]api.Activation, error) {
	out := []api.Activation{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT a.connector_id FROM activations a JOIN connectors c ON c.id = a.connector_id WHERE a.active = 1 ORDER BY c.name`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			a, err := s.activation(ctx, tx, id)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// Leases.

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

// AcquireLease implements Store. The same agent asking again (it restarted) gets a new lease at once; another
// agent waits until the current lease expires. The returned Config holds the decrypted inline secrets.
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
		case cur.ExpiresAt.After(now) && cur.AgentID != req.AgentID:
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
		now := s.Now()
		l.ExpiresAt, l.TTLSeconds = now.Add(ttl), ttl.Seconds()
		if _, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?, heartbeat_at = ? WHERE id = ?`, nanos(l.ExpiresAt), nanos(now), leaseID); err != nil {
			return err
		}
		if err := storeReport(ctx, tx, l.ConnectorID, leaseID, status, now); err != nil {
			return err
		}
		out = l.Lease
		return nil
	})
	return out, err
}

// ReleaseLease implements Store; releasing a lease that is no longer current is a no-op (the call is
// idempotent and retried by clients).
func (s *SQLite) ReleaseLease(ctx context.Context, leaseID string) error {
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
		return nil
	})
	return out, err
}

// Checkpoints.

// LoadCheckpoint implements Store.
func (s *SQLite) LoadCheckpoint(ctx context.Context, leaseID, table string) (*api.Checkpoint, error) {
	var out *api.Checkpoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		var b string
		err = tx.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE connector_id = ? AND tbl = ?`, l.ConnectorID, table).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out = &api.Checkpoint{}
		return json.Unmarshal([]byte(b), out)
	})
	return out, err
}

// SaveCheckpoint implements Store; it is durable when it returns.
func (s *SQLite) SaveCheckpoint(ctx context.Context, leaseID string, cp api.Checkpoint) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		// Intents the control plane added that this agent has not taken in yet (a restore while it drained)
		// stay: an agent removes only what it has seen.
		stored, err := s.storedCheckpoint(ctx, tx, l.ConnectorID, cp.Table)
		if err != nil {
			return err
		}
		if stored != nil {
			cp.Intents = unseenIntents(stored.Intents, cp)
		}
		return s.putCheckpoint(ctx, tx, l.ConnectorID, cp)
	})
}

// unseenIntents returns cp's intents plus those of stored that the control plane added after cp's agent
// last took intents in.
func unseenIntents(stored []api.Intent, cp api.Checkpoint) []api.Intent {
	out := cp.Intents
	for _, in := range stored {
		if in.Seq > cp.IntentSeq && !slices.ContainsFunc(out, func(x api.Intent) bool { return x.Seq == in.Seq }) {
			out = append(out, in)
		}
	}
	return out
}

func (s *SQLite) storedCheckpoint(ctx context.Context, tx *sql.Tx, connectorID, table string) (*api.Checkpoint, error) {
	var b string
	err := tx.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE connector_id = ? AND tbl = ?`, connectorID, table).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cp api.Checkpoint
	if err := json.Unmarshal([]byte(b), &cp); err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", table, err)
	}
	return &cp, nil
}

func (s *SQLite) putCheckpoint(ctx context.Context, tx *sql.Tx, connectorID string, cp api.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO checkpoints (connector_id, tbl, data, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (connector_id, tbl) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`, connectorID, cp.Table, string(b), nanos(s.Now()))
	return err
}

// addIntents records work a table owes in its checkpoint, numbered after every intent the table has seen
// (api.Checkpoint.IntentSeq); the next agent takes them in when it starts. A table without a checkpoint owes
// its initial load, which covers everything: it is left alone.
func (s *SQLite) addIntents(ctx context.Context, tx *sql.Tx, connectorID, table string, intents ...api.Intent) error {
	cp, err := s.storedCheckpoint(ctx, tx, connectorID, table)
	if err != nil || cp == nil {
		return err
	}
	seq := cp.IntentSeq
	for _, in := range cp.Intents {
		seq = max(seq, in.Seq)
	}
	for _, in := range intents {
		seq++
		in.Seq = seq
		cp.Intents = append(cp.Intents, in)
	}
	return s.putCheckpoint(ctx, tx, connectorID, *cp)
}

// ListCheckpoints implements Store.
func (s *SQLite) ListCheckpoints(ctx context.Context, connectorID string) ([]api.Checkpoint, error) {
	out := []api.Checkpoint{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT data FROM checkpoints WHERE connector_id = ? ORDER BY tbl`, connectorID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				return err
			}
			var cp api.Checkpoint
			if err := json.Unmarshal([]byte(b), &cp); err != nil {
				return err
			}
			out = append(out, cp)
		}
		return rows.Err()
	})
	return out, err
}

// Dead letters.

// AddDeadLetters implements Store: a record already dead-lettered is replaced, keeping its first failure
// time and counting attempts.
func (s *SQLite) AddDeadLetters(ctx context.Context, leaseID string, dls []api.DeadLetter) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		for _, d := range dls {
			at := d.At
			if at.IsZero() {
				at = s.Now()
			}
			first := d.FirstAt
			if first.IsZero() || first.After(at) {
				first = at
			}
			if _, err := tx.ExecContext(ctx, `
INSERT INTO dead_letters (connector_id, tbl, record_id, operation, code, reason, payload, at, first_at, attempts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (connector_id, tbl, record_id) DO UPDATE SET operation = excluded.operation, code = excluded.code, reason = excluded.reason,
	payload = excluded.payload, at = excluded.at, attempts = dead_letters.attempts + 1`,
				l.ConnectorID, d.Table, d.RecordID, d.Operation, d.Code, d.Reason, d.Payload, nanos(at), nanos(first)); err != nil {
				return err
			}
		}
		return nil
	})
}

// where builds the WHERE clause of a dead-letter filter (placeholders only).
func (f DeadLetterFilter) where(connectorID string) (string, []any) {
	clauses, args := []string{"connector_id = ?"}, []any{connectorID}
	if f.Table != "" {
		clauses, args = append(clauses, "tbl = ?"), append(args, f.Table)
	}
	if f.Code != "" {
		clauses, args = append(clauses, "code = ?"), append(args, f.Code)
	}
	if !f.Since.IsZero() {
		clauses, args = append(clauses, "first_at >= ?"), append(args, nanos(f.Since))
	}
	if len(f.RecordIDs) > 0 {
		clauses = append(clauses, "record_id IN (?"+strings.Repeat(", ?", len(f.RecordIDs)-1)+")")
		for _, id := range f.RecordIDs {
			args = append(args, id)
		}
	}
	return " WHERE " + strings.Join(clauses, " AND "), args
}

func listDeadLetters(ctx context.Context, tx *sql.Tx, connectorID string, f DeadLetterFilter) ([]api.DeadLetter, error) {
	where, args := f.where(connectorID)
	// where holds placeholders only (DeadLetterFilter.where); values go through args.
	q := `SELECT tbl, record_id, operation, code, reason, payload, at, first_at, attempts FROM dead_letters` + where + ` ORDER BY tbl, first_at, record_id` //nolint:gosec // placeholders only
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.DeadLetter{}
	for rows.Next() {
		var d api.DeadLetter
		var at, first int64
		if err := rows.Scan(&d.Table, &d.RecordID, &d.Operation, &d.Code, &d.Reason, &d.Payload, &at, &first, &d.Attempts); err != nil {
			return nil, err
		}
		d.At, d.FirstAt = fromNanos(at), fromNanos(first)
		out = append(out, d)
	}
	return out, rows.Err()
}

// RetryableDeadLetters implements Store.
func (s *SQLite) RetryableDeadLetters(ctx context.Context, leaseID string, f DeadLetterFilter) ([]api.DeadLetter, error) {
	var out []api.DeadLetter
	err := s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		out, err = listDeadLetters(ctx, tx, l.ConnectorID, f)
		return err
	})
	return out, err
}

// ResolveDeadLetter implements Store: the dead letter goes if it failed before before (a retry that failed
// again keeps its new entry).
func (s *SQLite) ResolveDeadLetter(ctx context.Context, leaseID, table, recordID string, before time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		l, err := s.currentLease(ctx, tx, leaseID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM dead_letters WHERE connector_id = ? AND tbl = ? AND record_id = ? AND at < ?`,
			l.ConnectorID, table, recordID, nanos(before))
		return err
	})
}

// ListDeadLetters implements Store: the selected dead letters (up to f.Limit) and how many match in all.
func (s *SQLite) ListDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter) ([]api.DeadLetter, int64, error) {
	var out []api.DeadLetter
	var total int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		var err error
		if out, err = listDeadLetters(ctx, tx, connectorID, f); err != nil {
			return err
		}
		where, args := f.where(connectorID)
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM dead_letters`+where, args...).Scan(&total)
	})
	return out, total, err
}

// MarkDeadLettersForRetry implements Store.
func (s *SQLite) MarkDeadLettersForRetry(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error) {
	return s.deadLetterAction(ctx, connectorID, f, actor, "dead_letters.retry", `UPDATE dead_letters SET code = 'retry_requested'`)
}

// DiscardDeadLetters implements Store.
func (s *SQLite) DiscardDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error) {
	return s.deadLetterAction(ctx, connectorID, f, actor, "dead_letters.discard", `DELETE FROM dead_letters`)
}

func (s *SQLite) deadLetterAction(ctx context.Context, connectorID string, f DeadLetterFilter, actor, action, stmt string) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		c, err := getConnector(ctx, tx, connectorID)
		if err != nil {
			return err
		}
		f.Limit = 0 // an action covers every match
		where, args := f.where(connectorID)
		res, err := tx.ExecContext(ctx, stmt+where, args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, action, connectorID, c.Revision,
			map[string]any{"table": f.Table, "record_ids": f.RecordIDs, "affected": n})
	})
	return n, err
}

// LastStatus implements Store: nil (and a zero time) when no agent reported yet. The counters add up the
// connector's earlier agents (storeReport).
func (s *SQLite) LastStatus(ctx context.Context, connectorID string) (*api.Status, time.Time, error) {
	var out *api.Status
	var at int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var b, tb string
		err := tx.QueryRowContext(ctx, `SELECT data, reported_at, totals FROM agent_status WHERE connector_id = ?`, connectorID).Scan(&b, &at, &tb)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out = &api.Status{}
		if err := json.Unmarshal([]byte(b), out); err != nil {
			return err
		}
		if tb != "" {
			var totals statusTotals
			if err := json.Unmarshal([]byte(tb), &totals); err != nil {
				return err
			}
			totals.apply(out)
		}
		return nil
	})
	if out == nil {
		return nil, time.Time{}, err
	}
	return out, fromNanos(at), err
}

// Audit.

func (s *SQLite) audit(ctx context.Context, tx *sql.Tx, actor, action, connectorID string, rev int64, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, connector_id, revision, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		nanos(s.Now()), actor, action, connectorID, rev, string(b))
	return err
}

// Audit implements Store: newest first, every connector when connectorID is empty, at most limit (100 when
// limit is 0).
func (s *SQLite) Audit(ctx context.Context, connectorID string, limit int) ([]api.AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	out := []api.AuditEntry{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		q, args := `SELECT id, at, actor, action, connector_id, revision, detail FROM audit`, []any{}
		if connectorID != "" {
			q, args = q+` WHERE connector_id = ?`, append(args, connectorID)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e api.AuditEntry
			var at int64
			var detail string
			if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.ConnectorID, &e.Revision, &detail); err != nil {
				return err
			}
			e.At = fromNanos(at)
			if detail != "" {
				e.Detail = json.RawMessage(detail)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}
