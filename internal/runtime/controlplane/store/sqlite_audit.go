package store

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

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
