package store

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

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

// DeadLetterCounts implements Store.
func (s *SQLite) DeadLetterCounts(ctx context.Context, connectorID string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT tbl, COUNT(*) FROM dead_letters WHERE connector_id = ? GROUP BY tbl`, connectorID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t string
			var n int64
			if err := rows.Scan(&t, &n); err != nil {
				return err
			}
			out[t] = n
		}
		return rows.Err()
	})
	return out, err
}
