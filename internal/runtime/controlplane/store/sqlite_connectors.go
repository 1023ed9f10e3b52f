package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// publicSpec returns spec without its inline secrets (the caller's slices are not touched).
func publicSpec(spec api.ConnectorSpec) api.ConnectorSpec {
	spec.Salesforce.ClientSecret, spec.Salesforce.PrivateKey, spec.Dataverse.ClientSecret = "", "", ""
	users := slices.Clone(spec.Dataverse.AdditionalUsers)
	for i := range users {
		users[i].ClientSecret = ""
	}
	spec.Dataverse.AdditionalUsers = users
	return spec
}

const connectorCols = `id, name, spec, secrets_set, revision, created_at, updated_at`

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
		if !KnownSecret(k) {
			return false, fmt.Errorf("unknown secret %q (known: %s, %s<client id>.client_secret)", k, strings.Join(SecretNames, ", "), api.SecretDataverseAdditionalUserPrefix)
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
	set := slices.Sorted(maps.Keys(cur))
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
			AdditionalUsers: publicSpec(c.ConnectorSpec).Dataverse.AdditionalUsers,
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
	for i := range cfg.Dataverse.AdditionalUsers {
		u := &cfg.Dataverse.AdditionalUsers[i]
		if v := sec[u.SecretName()]; v != "" {
			u.ClientSecret = v
		}
	}
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
