// Package syncmetrics turns a connector's sync status into Prometheus metrics, labelled by connector and
// table. The control plane exports them for every connector from its agents' reports (their counters added
// up across agents), and a standalone agent for its own connector, so both serve the same names and labels.
//
// Names follow Prometheus conventions: counters end in _total, units are base units (seconds), a state is a
// gauge of 1 per label value. docs/control-plane.md lists them; deploy/ holds a Grafana dashboard and
// alert rules that use them (a test checks that every name they use is served).
package syncmetrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Report is what the metrics are made of: one connector's tables and API call counts.
type Report struct {
	Connector string
	Tables    []api.TableStatus
	// Calls are the agent's API call counts by "side.kind" (api.Status.Calls).
	Calls map[string]int64
	// Users are the Dataverse application users' shares (api.Status.ApplicationUsers).
	Users []api.ApplicationUserStatus
	// Retention is the change-event retention the replay age is measured against (72 h).
	Retention time.Duration
	Now       time.Time
}

// Set holds the descriptors; it is stateless and safe for concurrent use.
type Set struct {
	records, deadLettered, deadLetterEvents                                  *prometheus.Desc
	loadDone, loadTotal, phase, lag, latency, replayAge, retention           *prometheus.Desc
	outOfBand, outOfBandRepaired, reconcileDiff, reconcileMatch, reconcileAt *prometheus.Desc
	calls, throttled, retries                                                *prometheus.Desc
	userRequests, userThrottled, userConcurrency, userRemaining              *prometheus.Desc
}

// New returns the descriptors.
func New() *Set {
	ct := []string{"connector", "table"}
	return &Set{
		records: prometheus.NewDesc("crmsync_records_total",
			"Records by outcome: received, written, skipped (received = written + skipped + crmsync_records_dead_lettered once settled); since the connector's first activation.",
			append(ct, "outcome"), nil),
		// A record dead-lettered and later retried and written is taken back out of the dead-lettered count,
		// so the counts add up: that figure goes down and is a gauge; the events counter never does.
		deadLettered: prometheus.NewDesc("crmsync_records_dead_lettered",
			"Records received whose outcome is dead-lettered now: a dead letter retried and written is taken back out.", ct, nil),
		deadLetterEvents: prometheus.NewDesc("crmsync_dead_letter_events_total",
			"Records put in the dead-letter store (a record retried and refused again counts again); never decreases.", ct, nil),
		loadDone:  prometheus.NewDesc("crmsync_load_rows_done", "Rows written by the table's current or last load (initial load or re-sync).", ct, nil),
		loadTotal: prometheus.NewDesc("crmsync_load_rows_estimated", "Rows the table's current or last load is estimated to copy.", ct, nil),
		phase:     prometheus.NewDesc("crmsync_table_phase", "1 for the table's current phase (pending, initial_load, streaming, resyncing, failed).", append(ct, "phase"), nil),
		lag:       prometheus.NewDesc("crmsync_cdc_lag_seconds", "Seconds since the commit of the oldest change received and not yet written (0 when none is pending).", ct, nil),
		latency: prometheus.NewDesc("crmsync_cdc_latency_seconds",
			"Time from a change's Salesforce commit to Dataverse's acknowledgement of its write.", ct, nil),
		replayAge: prometheus.NewDesc("crmsync_replay_age_seconds",
			"Age of the table's stored replay position; past crmsync_replay_retention_seconds the stream cannot resume and the table is re-synced.", ct, nil),
		retention: prometheus.NewDesc("crmsync_replay_retention_seconds", "How long Salesforce keeps change events (72 h).", ct, nil),
		outOfBand: prometheus.NewDesc("crmsync_out_of_band_edits_total",
			"Synced rows found changed in Dataverse by someone other than the agent.", ct, nil),
		outOfBandRepaired: prometheus.NewDesc("crmsync_out_of_band_edits_repaired_total",
			"Out-of-band edits rewritten from Salesforce (repair_out_of_band_edits).", ct, nil),
		reconcileDiff: prometheus.NewDesc("crmsync_reconcile_differences",
			"Differences the table's last reconciliation found, by kind: missing, different, extra, healed, unhealed.", append(ct, "kind"), nil),
		reconcileMatch: prometheus.NewDesc("crmsync_reconcile_match", "1 when the table's last reconciliation found both sides equal, else 0.", ct, nil),
		reconcileAt: prometheus.NewDesc("crmsync_reconcile_last_finished_timestamp_seconds",
			"When the table's last reconciliation finished (Unix time).", ct, nil),
		calls: prometheus.NewDesc("crmsync_sync_api_calls_total",
			"Calls the sync made to Salesforce and Dataverse, by side and kind (Salesforce REST, Bulk, token and Pub/Sub calls; Dataverse requests).",
			[]string{"connector", "side", "kind"}, nil),
		throttled: prometheus.NewDesc("crmsync_sync_api_throttled_total", "Answers that throttled the sync (Dataverse 429 service protection).", []string{"connector", "side"}, nil),
		retries:   prometheus.NewDesc("crmsync_sync_api_retries_total", "Requests the sync retried after a transient failure.", []string{"connector", "side"}, nil),
		userRequests: prometheus.NewDesc("crmsync_dataverse_user_requests_total",
			"Dataverse requests sent as each application user (since its agent started).", []string{"connector", "client_id"}, nil),
		userThrottled: prometheus.NewDesc("crmsync_dataverse_user_throttled_total",
			"429 answers to each application user (service protection is per user).", []string{"connector", "client_id"}, nil),
		userConcurrency: prometheus.NewDesc("crmsync_dataverse_user_concurrency",
			"Each application user's current limit on concurrent requests (its x-ms-dop-hint, halved on throttling).", []string{"connector", "client_id"}, nil),
		userRemaining: prometheus.NewDesc("crmsync_dataverse_user_remaining_execution_seconds",
			"Execution time each application user has left in its 5-minute window, as Dataverse last said.", []string{"connector", "client_id"}, nil),
	}
}

// Describe sends every descriptor.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.records, s.deadLettered, s.deadLetterEvents, s.loadDone, s.loadTotal, s.phase, s.lag, s.latency, s.replayAge, s.retention,
		s.outOfBand, s.outOfBandRepaired, s.reconcileDiff, s.reconcileMatch, s.reconcileAt, s.calls, s.throttled, s.retries,
		s.userRequests, s.userThrottled, s.userConcurrency, s.userRemaining} {
		ch <- d
	}
}

// dataverseAggregates are Dataverse counts that are not one kind of request: the total of requests, and the
// throttled and retried ones (metrics of their own), rows and operations carried.
var dataverseAggregates = map[string]bool{"requests": true, "throttled": true, "retries": true, "bulk_rows": true, "batch_ops": true}

// Collect sends the metrics of one connector's report.
func (s *Set) Collect(ch chan<- prometheus.Metric, r Report) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, max(0, v), labels...)
	}
	for _, t := range r.Tables {
		c, tb := r.Connector, t.Table
		counter(s.records, float64(t.Received), c, tb, "received")
		counter(s.records, float64(t.Written), c, tb, "written")
		counter(s.records, float64(t.Skipped), c, tb, "skipped")
		gauge(s.deadLettered, float64(t.DeadLettered), c, tb)
		counter(s.deadLetterEvents, float64(t.DeadLetterEvents), c, tb)
		gauge(s.loadDone, float64(t.LoadDone), c, tb)
		gauge(s.loadTotal, float64(t.LoadTotal), c, tb)
		if t.Phase != "" {
			gauge(s.phase, 1, c, tb, t.Phase)
		}
		gauge(s.lag, t.LagSeconds, c, tb)
		ch <- prometheus.MustNewConstHistogram(s.latency, latencyCount(t.LatencyHistogram), latencySum(t.LatencyHistogram),
			cumulative(t.LatencyHistogram), c, tb)
		if !t.ReplayAt.IsZero() {
			gauge(s.replayAge, max(0, r.Now.Sub(t.ReplayAt).Seconds()), c, tb)
			gauge(s.retention, r.Retention.Seconds(), c, tb)
		}
		// Counters exist from the start (0 until the detector first finds an edit), so rate() and
		// increase() see the first edit.
		var found, repaired int64
		if o := t.OutOfBand; o != nil {
			found, repaired = o.Detected, o.Repaired
		}
		counter(s.outOfBand, float64(found), c, tb)
		counter(s.outOfBandRepaired, float64(repaired), c, tb)
		if rc := t.Reconcile; rc != nil && !rc.FinishedAt.IsZero() {
			for kind, v := range map[string]int64{"missing": rc.Missing, "different": rc.Different, "extra": rc.Extra, "healed": rc.Healed, "unhealed": rc.Unhealed} {
				gauge(s.reconcileDiff, float64(v), c, tb, kind)
			}
			match := 0.0
			if rc.Match && rc.Error == "" {
				match = 1
			}
			gauge(s.reconcileMatch, match, c, tb)
			gauge(s.reconcileAt, float64(rc.FinishedAt.UnixNano())/1e9, c, tb)
		}
	}
	// Throttled and retried requests are counted from 0, like the out-of-band edits.
	counter(s.throttled, float64(r.Calls["dataverse.throttled"]), r.Connector, "dataverse")
	counter(s.retries, float64(r.Calls["dataverse.retries"]), r.Connector, "dataverse")
	for _, u := range r.Users {
		counter(s.userRequests, float64(u.Requests), r.Connector, u.ClientID)
		counter(s.userThrottled, float64(u.Throttled), r.Connector, u.ClientID)
		gauge(s.userConcurrency, float64(u.Concurrency), r.Connector, u.ClientID)
		if u.RemainingExecutionSeconds != nil {
			gauge(s.userRemaining, *u.RemainingExecutionSeconds, r.Connector, u.ClientID)
		}
	}
	for key, v := range r.Calls {
		side, kind, ok := strings.Cut(key, ".")
		if !ok || side == "dataverse" && dataverseAggregates[kind] {
			continue
		}
		counter(s.calls, float64(v), r.Connector, side, kind)
	}
}

func latencyCount(h *api.Histogram) uint64 {
	if h == nil || h.Count < 0 {
		return 0
	}
	return uint64(h.Count)
}

func latencySum(h *api.Histogram) float64 {
	if h == nil {
		return 0
	}
	return h.Sum
}

// cumulative turns per-bucket counts into Prometheus's cumulative buckets.
func cumulative(h *api.Histogram) map[float64]uint64 {
	out := make(map[float64]uint64, len(api.LatencyBuckets))
	var n int64
	for i, b := range api.LatencyBuckets {
		if h != nil && i < len(h.Counts) {
			n += max(0, h.Counts[i])
		}
		out[b] = uint64(n)
	}
	return out
}
