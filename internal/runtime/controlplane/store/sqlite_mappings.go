package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

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
