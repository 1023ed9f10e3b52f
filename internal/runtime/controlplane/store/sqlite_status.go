package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// LastStatus implements Store: nil (and a zero time) when no agent reported yet. The counters add up the
// connector's earlier agents (storeReport). A report this store holds unwritten (status_buffer.go) is shown
// when it is the newest.
func (s *SQLite) LastStatus(ctx context.Context, connectorID string) (*api.Status, time.Time, error) {
	var prev storedReport
	found := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT data, reported_at, totals, lease_id FROM agent_status WHERE connector_id = ?`, connectorID).Scan(&prev.data, &prev.at, &prev.total, &prev.lease)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	if p, ok := s.reports.buffered(connectorID); ok && (!found || nanos(p.at) >= prev.at) {
		return withBuffered(p, prev)
	}
	if !found {
		return nil, time.Time{}, nil
	}
	out := &api.Status{}
	if err := json.Unmarshal([]byte(prev.data), out); err != nil {
		return nil, time.Time{}, err
	}
	if prev.total != "" {
		var totals statusTotals
		if err := json.Unmarshal([]byte(prev.total), &totals); err != nil {
			return nil, time.Time{}, err
		}
		totals.apply(out)
	}
	return out, fromNanos(prev.at), nil
}

// History bounds: one point per HistoryInterval at most, kept for HistoryRetention (6 h at one point per 10 s
// is 2,160 points, a few hundred KiB per connector).
const (
	HistoryInterval  = 10 * time.Second
	HistoryRetention = 6 * time.Hour
)

// statusTotals are the counters of a connector's agents before the current one.
type statusTotals struct {
	Tables          map[string]tableTotals `json:"tables,omitempty"`
	SalesforceCalls int64                  `json:"salesforce_calls,omitempty"`
	DataverseCalls  int64                  `json:"dataverse_requests,omitempty"`
	Throttled       int64                  `json:"dataverse_throttled,omitempty"`
	Calls           map[string]int64       `json:"calls,omitempty"`
}

type tableTotals struct {
	Received          int64          `json:"received,omitempty"`
	Written           int64          `json:"written,omitempty"`
	DeadLettered      int64          `json:"dead_lettered,omitempty"`
	DeadLetterEvents  int64          `json:"dead_letter_events,omitempty"`
	Skipped           int64          `json:"skipped,omitempty"`
	OutOfBandDetected int64          `json:"out_of_band_detected,omitempty"`
	OutOfBandRepaired int64          `json:"out_of_band_repaired,omitempty"`
	Latency           *api.Histogram `json:"latency,omitempty"`
}

// fold adds an agent's last report to the totals.
func (t *statusTotals) fold(st api.Status) {
	if t.Tables == nil {
		t.Tables = map[string]tableTotals{}
	}
	for _, ts := range st.Tables {
		tt := t.Tables[ts.Table]
		// Only the work whose result stands carries over: records an agent received but had not settled
		// when it last reported (it was killed) are received again by its successor from the checkpoint,
		// so received = written + dead-lettered + skipped holds across agents as it does within one.
		tt.Received += ts.Written + ts.DeadLettered + ts.Skipped
		tt.Written += ts.Written
		tt.DeadLettered += ts.DeadLettered
		tt.DeadLetterEvents += ts.DeadLetterEvents
		tt.Skipped += ts.Skipped
		if ts.OutOfBand != nil {
			tt.OutOfBandDetected += ts.OutOfBand.Detected
			tt.OutOfBandRepaired += ts.OutOfBand.Repaired
		}
		if ts.LatencyHistogram != nil {
			if tt.Latency == nil {
				tt.Latency = &api.Histogram{}
			}
			tt.Latency.Add(ts.LatencyHistogram)
		}
		t.Tables[ts.Table] = tt
	}
	t.SalesforceCalls += st.SalesforceCalls
	t.DataverseCalls += st.DataverseCalls
	t.Throttled += st.Throttled
	for k, v := range st.Calls {
		if t.Calls == nil {
			t.Calls = map[string]int64{}
		}
		t.Calls[k] += v
	}
}

// apply adds the totals to a report, in place: the counters then count since the first activation.
func (t *statusTotals) apply(st *api.Status) {
	for i := range st.Tables {
		ts := &st.Tables[i]
		tt, ok := t.Tables[ts.Table]
		if !ok {
			continue
		}
		ts.Received += tt.Received
		ts.Written += tt.Written
		ts.DeadLettered += tt.DeadLettered
		ts.DeadLetterEvents += tt.DeadLetterEvents
		ts.Skipped += tt.Skipped
		if ts.OutOfBand != nil {
			o := *ts.OutOfBand
			o.Detected += tt.OutOfBandDetected
			o.Repaired += tt.OutOfBandRepaired
			ts.OutOfBand = &o
		}
		if tt.Latency != nil {
			h := api.Histogram{}
			h.Add(tt.Latency)
			h.Add(ts.LatencyHistogram)
			ts.LatencyHistogram = &h
		}
	}
	st.SalesforceCalls += t.SalesforceCalls
	st.DataverseCalls += t.DataverseCalls
	st.Throttled += t.Throttled
	if len(t.Calls) > 0 {
		calls := make(map[string]int64, len(st.Calls)+len(t.Calls))
		for k, v := range t.Calls {
			calls[k] = v
		}
		for k, v := range st.Calls {
			calls[k] += v
		}
		st.Calls = calls
	}
}

// nextTotals are the totals to store with a report of leaseID, given the connector's stored report: when
// that report came from another lease, its agent's counters are folded into the totals first.
func nextTotals(prevLease, prevData, prevTotals, leaseID string) (statusTotals, error) {
	var totals statusTotals
	if prevTotals != "" {
		if err := json.Unmarshal([]byte(prevTotals), &totals); err != nil {
			return totals, err
		}
	}
	// A report stored before schema version 3 has no lease: it is taken as the current agent's (folding it
	// could count the running agent twice).
	if prevLease != "" && prevLease != leaseID && prevData != "" {
		var prev api.Status
		if err := json.Unmarshal([]byte(prevData), &prev); err != nil {
			return totals, err
		}
		totals.fold(prev)
	}
	return totals, nil
}

// storeReport stores an agent's report under its lease (RenewLease's transaction), its totals carried over
// (nextTotals). It also records a history point when the last one is HistoryInterval old, and drops points
// past HistoryRetention.
func storeReport(ctx context.Context, tx *sql.Tx, connectorID, leaseID string, status api.Status, now time.Time) error {
	var prevLease, prevData, prevTotals string
	err := tx.QueryRowContext(ctx, `SELECT lease_id, data, totals FROM agent_status WHERE connector_id = ?`, connectorID).Scan(&prevLease, &prevData, &prevTotals)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	totals, err := nextTotals(prevLease, prevData, prevTotals, leaseID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(status)
	if err != nil {
		return err
	}
	tb, err := json.Marshal(totals)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO agent_status (connector_id, data, reported_at, lease_id, totals) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (connector_id) DO UPDATE SET data = excluded.data, reported_at = excluded.reported_at, lease_id = excluded.lease_id, totals = excluded.totals`,
		connectorID, string(data), nanos(now), leaseID, string(tb)); err != nil {
		return err
	}
	return recordHistories(ctx, tx, []reportRow{{connectorID: connectorID, p: pendingReport{leaseID: leaseID, status: status, at: now}, totals: totals}})
}

// historyPoint is a report's point of the status history, its counters with the totals.
func historyPoint(status api.Status, totals statusTotals, now time.Time) ([]byte, error) {
	status = cloneStatus(status)
	totals.apply(&status)
	p := api.HistoryPoint{At: now.UTC(), State: status.State, Revision: status.Revision, Tables: make([]api.HistoryTable, 0, len(status.Tables))}
	for _, t := range status.Tables {
		ht := api.HistoryTable{Table: t.Table, Phase: t.Phase, LoadDone: t.LoadDone, LoadTotal: t.LoadTotal, Received: t.Received,
			Written: t.Written, DeadLettered: t.DeadLettered, LagSeconds: t.LagSeconds}
		if t.Latency != nil {
			ht.LatencyP50, ht.LatencyP95 = t.Latency.P50, t.Latency.P95
		}
		p.Tables = append(p.Tables, ht)
	}
	return json.Marshal(p)
}

// StatusHistory implements Store.
func (s *SQLite) StatusHistory(ctx context.Context, connectorID string, since time.Time) ([]api.HistoryPoint, error) {
	// The reports this store holds make their points first (history is read rarely: /ui, the CLI).
	if err := s.flushReports(ctx); err != nil {
		return nil, err
	}
	var out []api.HistoryPoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := getConnector(ctx, tx, connectorID); err != nil {
			return err
		}
		from := int64(0)
		if since.After(time.Unix(0, 0)) {
			from = nanos(since)
		}
		var err error
		out, err = listJSON[api.HistoryPoint](ctx, tx, "status history point", `SELECT data FROM status_history WHERE connector_id = ? AND at >= ? ORDER BY at`, connectorID, from)
		return err
	})
	if out == nil {
		out = []api.HistoryPoint{}
	}
	return out, err
}
