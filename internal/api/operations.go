package api

import "time"

// Operations: what the control plane keeps of its agents' reports for people and Prometheus —
// counters that add up every agent of a connector, a change latency histogram, and a bounded history of
// reports for the status page's charts.

// LatencyBuckets are the upper bounds, in seconds, of the change latency histogram (Salesforce commit to
// Dataverse acknowledgement): sub-second when streaming is healthy, minutes when it catches up.
var LatencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Histogram counts observations per bucket of LatencyBuckets: Counts[i] those at most LatencyBuckets[i] and
// above the bound before it, the last entry (len(LatencyBuckets)) those above every bound. Count and Sum are
// over all of them. Not cumulative, so two histograms add bucket by bucket.
type Histogram struct {
	Counts []int64 `json:"counts" crmsync:"required"`
	Count  int64   `json:"count" crmsync:"required"`
	Sum    float64 `json:"sum" crmsync:"required"`
}

// Observe adds one observation of v seconds.
func (h *Histogram) Observe(v float64) {
	if len(h.Counts) != len(LatencyBuckets)+1 {
		h.Counts = make([]int64, len(LatencyBuckets)+1)
	}
	i := len(LatencyBuckets)
	for j, b := range LatencyBuckets {
		if v <= b {
			i = j
			break
		}
	}
	h.Counts[i]++
	h.Count++
	h.Sum += v
}

// Add adds o to h (a nil o adds nothing).
func (h *Histogram) Add(o *Histogram) {
	if o == nil || len(o.Counts) != len(LatencyBuckets)+1 {
		return
	}
	if len(h.Counts) != len(LatencyBuckets)+1 {
		h.Counts = make([]int64, len(LatencyBuckets)+1)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// History is GET /v1/connectors/{id}/history: the connector's recent reports, oldest first, one point per
// IntervalSeconds at most, kept for RetentionSeconds.
type History struct {
	ConnectorID      string         `json:"connector_id"`
	IntervalSeconds  float64        `json:"interval_seconds"`
	RetentionSeconds float64        `json:"retention_seconds"`
	Points           []HistoryPoint `json:"points"`
}

// HistoryPoint is one report of the connector's agent, reduced to what the charts draw.
type HistoryPoint struct {
	At       time.Time      `json:"at"`
	State    string         `json:"state"`
	Revision int64          `json:"revision"`
	Tables   []HistoryTable `json:"tables"`
}

// HistoryTable is one table in a HistoryPoint. The counters add up every agent of the connector (as in
// status), so the difference of two points is the work done between them.
type HistoryTable struct {
	Table        string  `json:"table"`
	Phase        string  `json:"phase"`
	LoadDone     int64   `json:"load_done"`
	LoadTotal    int64   `json:"load_total"`
	Received     int64   `json:"received"`
	Written      int64   `json:"written"`
	DeadLettered int64   `json:"dead_lettered"`
	LagSeconds   float64 `json:"lag_seconds"`
	// LatencyP50 and LatencyP95 summarise the agent's recent change latencies at the time of the point
	// (0 when it has none).
	LatencyP50 float64 `json:"latency_p50,omitempty"`
	LatencyP95 float64 `json:"latency_p95,omitempty"`
}

// SignInRequest is POST /ui/session: the operator's API token, exchanged for a status page session.
type SignInRequest struct {
	Token string `json:"token" crmsync:"required"`
}

// UISession is a status page session: its CSRF token (sent back as X-CSRF-Token with every request that
// changes something) and when it ends at the latest. The session itself is an HttpOnly cookie.
type UISession struct {
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}
