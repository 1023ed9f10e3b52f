package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Hot status: a heartbeat's report is kept in memory by the store that received it (one per control-plane
// replica) and written with every other report received since, in one transaction per StatusFlushInterval,
// instead of one transaction per report. A report is a snapshot (each one carries the agent's whole status,
// its counters included), so only the latest per connector is kept. What the buffer costs:
//
//   - Readers through this store see a report at once (LastStatus overlays the buffer); readers through
//     another replica see it once it is flushed: within StatusFlushInterval plus the flush's own time.
//   - A replica killed before its flush loses the reports since its last one. The agent's next heartbeat
//     (through any replica) reports again; counters that the connector's next agent adds to are carried over
//     from the last report written, so at most that interval's increments of a killed agent are not counted.
//     Checkpoints, dead letters and leases never go through the buffer: they are committed before the answer.
//   - Fencing holds: a report is written only while no other lease holds its connector, and never over a
//     newer report; a deleted connector's reports are dropped.

// StatusFlushInterval is how often a store writes the reports it holds.
const StatusFlushInterval = time.Second

// reportChunk bounds the rows of one statement of a flush (5 parameters each).
const reportChunk = 200

type pendingReport struct {
	leaseID string
	status  api.Status
	at      time.Time
}

// statusBuffer holds the reports not yet written: pending, and those of the flush under way (inflight), both
// visible to readers.
type statusBuffer struct {
	mu       sync.Mutex
	pending  map[string]pendingReport
	inflight map[string]pendingReport

	flushMu sync.Mutex // one flush at a time
	start   sync.Once
	stop    chan struct{}
	done    chan struct{}
}

// bufferReport keeps a report to be written by the next flush, starting the flusher at the first one.
func (s *SQLite) bufferReport(connectorID, leaseID string, status api.Status, at time.Time) {
	b := &s.reports
	b.start.Do(func() {
		b.stop, b.done = make(chan struct{}), make(chan struct{})
		go s.flushLoop(b.stop, b.done)
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]pendingReport{}
	}
	b.pending[connectorID] = pendingReport{leaseID: leaseID, status: status, at: at}
}

// buffered returns the latest report not yet written for a connector.
func (b *statusBuffer) buffered(connectorID string) (pendingReport, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.pending[connectorID]; ok {
		return p, true
	}
	p, ok := b.inflight[connectorID]
	return p, ok
}

func (s *SQLite) flushLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(StatusFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.flushReports(ctx) // kept for the next tick on failure (the store is down: callers see it too)
			cancel()
		}
	}
}

// closeReports stops the flusher and writes what it holds (a replica shutting down loses nothing).
func (s *SQLite) closeReports() error {
	b := &s.reports
	b.start.Do(func() {}) // no flusher starts after Close
	b.mu.Lock()
	stop := b.stop
	b.stop = nil
	b.mu.Unlock()
	if stop != nil {
		close(stop)
		<-b.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.flushReports(ctx)
}

// flushReports writes the reports held (writeBatch). On failure they are kept, unless a newer report of the
// same connector came meanwhile.
func (s *SQLite) flushReports(ctx context.Context) error {
	b := &s.reports
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	batch := b.pending
	b.pending, b.inflight = nil, batch
	b.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.writeBatch(ctx, batch)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight = nil
	if err != nil {
		if b.pending == nil {
			b.pending = map[string]pendingReport{}
		}
		for id, p := range batch {
			if _, newer := b.pending[id]; !newer {
				b.pending[id] = p
			}
		}
	}
	return err
}

// writeBatch writes the reports, their JSON encoded before any transaction. On PostgreSQL in one
// transaction at READ COMMITTED, the connectors' rows locked first: each replica's flush touches its own
// connectors' rows, but under SERIALIZABLE their reads of a third of the table conflicted with each other
// and were retried whole; the locks serialize the flushes of one connector (an agent that moved to another
// replica), and each statement after them reads what the previous flush committed. On SQLite one
// transaction per reportChunk reports, so that the one connection is not held for the whole batch.
func (s *SQLite) writeBatch(ctx context.Context, batch map[string]pendingReport) error {
	ids := make([]string, 0, len(batch))
	data := make(map[string]string, len(batch))
	for id, p := range batch {
		b, err := json.Marshal(p.status)
		if err != nil {
			return err
		}
		ids = append(ids, id)
		data[id] = string(b)
	}
	sort.Strings(ids) // the same order on every replica
	chunks := [][]string{}
	for start := 0; start < len(ids); start += reportChunk {
		chunks = append(chunks, ids[start:min(start+reportChunk, len(ids))])
	}
	if s.pg {
		return s.pgTxAt(ctx, sql.LevelReadCommitted, func(tx *sql.Tx) error {
			for _, chunk := range chunks {
				if err := writeReports(ctx, tx, chunk, batch, data, true); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, chunk := range chunks {
		if err := s.tx(ctx, func(tx *sql.Tx) error { return writeReports(ctx, tx, chunk, batch, data, false) }); err != nil {
			return err
		}
	}
	return nil
}

// storedReport is a connector's row of agent_status, with the lease that holds the connector now.
type storedReport struct {
	currentLease       string
	lease, data, total string
	at                 int64
}

// writeReports writes the reports of a chunk of connectors in a few statements, first locking their
// connectors' rows when lock (PostgreSQL). data holds the reports' JSON.
func writeReports(ctx context.Context, tx *sql.Tx, chunk []string, batch map[string]pendingReport, data map[string]string, lock bool) error {
	if lock {
		if err := lockConnectors(ctx, tx, chunk); err != nil {
			return err
		}
	}
	stored, err := storedReports(ctx, tx, chunk)
	if err != nil {
		return err
	}
	var rows []reportRow
	for _, id := range chunk {
		prev, ok := stored[id]
		p := batch[id]
		// Gone with its connector; another lease holds the connector; a newer report is written.
		if !ok || (prev.currentLease != "" && prev.currentLease != p.leaseID) || prev.at > nanos(p.at) {
			continue
		}
		totals, err := nextTotals(prev.lease, prev.data, prev.total, p.leaseID)
		if err != nil {
			return err
		}
		rows = append(rows, reportRow{connectorID: id, p: p, data: data[id], totals: totals})
	}
	if err := upsertReports(ctx, tx, rows); err != nil {
		return err
	}
	return recordHistories(ctx, tx, rows)
}

type reportRow struct {
	connectorID string
	p           pendingReport
	data        string // p.status's JSON
	totals      statusTotals
}

func placeholders(n, per int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", per), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

// idList is the placeholders and arguments of an IN list.
func idList(ids []string) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", "), args
}

// lockConnectors locks the connectors' rows (PostgreSQL only), in the order of ids.
func lockConnectors(ctx context.Context, tx *sql.Tx, ids []string) error {
	in, args := idList(ids)
	//nolint:gosec // G202: only placeholders are concatenated
	rows, err := tx.QueryContext(ctx, `SELECT id FROM connectors WHERE id IN (`+in+`) ORDER BY id FOR NO KEY UPDATE`, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	_ = rows.Close()
	return rows.Err()
}

func storedReports(ctx context.Context, tx *sql.Tx, ids []string) (map[string]storedReport, error) {
	in, args := idList(ids)
	//nolint:gosec // G202: only placeholders are concatenated
	rows, err := tx.QueryContext(ctx, `SELECT c.id, COALESCE(l.id, ''), COALESCE(st.lease_id, ''), COALESCE(st.data, ''), COALESCE(st.totals, ''), COALESCE(st.reported_at, 0)
FROM connectors c LEFT JOIN leases l ON l.connector_id = c.id LEFT JOIN agent_status st ON st.connector_id = c.id WHERE c.id IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]storedReport, len(ids))
	for rows.Next() {
		var id string
		var r storedReport
		if err := rows.Scan(&id, &r.currentLease, &r.lease, &r.data, &r.total, &r.at); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rows.Err()
}

func upsertReports(ctx context.Context, tx *sql.Tx, rows []reportRow) error {
	if len(rows) == 0 {
		return nil
	}
	args := make([]any, 0, 5*len(rows))
	for _, r := range rows {
		tb, err := json.Marshal(r.totals)
		if err != nil {
			return err
		}
		args = append(args, r.connectorID, r.data, nanos(r.p.at), r.p.leaseID, string(tb))
	}
	//nolint:gosec // G202: only placeholders are concatenated
	_, err := tx.ExecContext(ctx, `INSERT INTO agent_status (connector_id, data, reported_at, lease_id, totals) VALUES `+placeholders(len(rows), 5)+`
ON CONFLICT (connector_id) DO UPDATE SET data = excluded.data, reported_at = excluded.reported_at, lease_id = excluded.lease_id, totals = excluded.totals
WHERE agent_status.reported_at <= excluded.reported_at`, args...)
	return err
}

// recordHistories adds a history point for each report whose connector's last one is HistoryInterval old,
// and drops their points past HistoryRetention.
func recordHistories(ctx context.Context, tx *sql.Tx, rows []reportRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.connectorID
	}
	in, args := idList(ids)
	//nolint:gosec // G202: only placeholders are concatenated
	q, err := tx.QueryContext(ctx, `SELECT connector_id, MAX(at) FROM status_history WHERE connector_id IN (`+in+`) GROUP BY connector_id`, args...)
	if err != nil {
		return err
	}
	last := map[string]int64{}
	for q.Next() {
		var id string
		var at int64
		if err := q.Scan(&id, &at); err != nil {
			_ = q.Close()
			return err
		}
		last[id] = at
	}
	_ = q.Close()
	if err := q.Err(); err != nil {
		return err
	}
	var ins, del []any
	oldest := time.Time{}
	for _, r := range rows {
		if at, ok := last[r.connectorID]; ok && r.p.at.Sub(fromNanos(at)) < HistoryInterval {
			continue
		}
		b, err := historyPoint(r.p.status, r.totals, r.p.at)
		if err != nil {
			return err
		}
		ins = append(ins, r.connectorID, nanos(r.p.at), string(b))
		del = append(del, r.connectorID)
		if oldest.IsZero() || r.p.at.Before(oldest) {
			oldest = r.p.at
		}
	}
	if len(del) == 0 {
		return nil
	}
	//nolint:gosec // G202: only placeholders are concatenated
	if _, err := tx.ExecContext(ctx, `INSERT INTO status_history (connector_id, at, data) VALUES `+placeholders(len(del), 3)+` ON CONFLICT (connector_id, at) DO UPDATE SET data = excluded.data`, ins...); err != nil {
		return err
	}
	in = strings.TrimSuffix(strings.Repeat("?, ", len(del)), ", ")
	//nolint:gosec // G202: only placeholders are concatenated
	_, err = tx.ExecContext(ctx, `DELETE FROM status_history WHERE connector_id IN (`+in+`) AND at < ?`, append(del, nanos(oldest.Add(-HistoryRetention)))...)
	return err
}

// withBuffered returns the report to show for a connector: the buffered one when it is newer than the stored
// one, its counters carried over as the flush will.
func withBuffered(p pendingReport, prev storedReport) (*api.Status, time.Time, error) {
	totals, err := nextTotals(prev.lease, prev.data, prev.total, p.leaseID)
	if err != nil {
		return nil, time.Time{}, err
	}
	st := cloneStatus(p.status)
	totals.apply(&st)
	return &st, p.at, nil
}

// cloneStatus copies what statusTotals.apply changes in place (the tables), so a buffered report is never
// modified.
func cloneStatus(st api.Status) api.Status {
	st.Tables = append([]api.TableStatus(nil), st.Tables...)
	return st
}
