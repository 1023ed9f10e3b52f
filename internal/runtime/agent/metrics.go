package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/syncmetrics"
)

// ReplayRetention is how long Salesforce keeps change events: a stored replay position older than this
// cannot resume (the table is re-synced). The metrics measure the replay age against it.
const ReplayRetention = 72 * time.Hour

// Collector exposes an agent's status as Prometheus metrics, read at scrape time: the names and labels the
// control plane serves for every connector (package syncmetrics), with the connector's name as label.
type Collector struct {
	connector string
	status    func() Status
	set       *syncmetrics.Set
}

// NewCollector returns a collector over a status source of the named connector.
func NewCollector(connector string, status func() Status) *Collector {
	return &Collector{connector: connector, status: status, set: syncmetrics.New()}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.set.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	c.set.Collect(ch, syncmetrics.Report{Connector: c.connector, Tables: s.Tables, Calls: s.Calls, Users: s.ApplicationUsers, Retention: ReplayRetention, Now: time.Now()})
}

// ConnectorName is the name of the connector the agent syncs (it labels its metrics).
func (a *Agent) ConnectorName() string { return a.cfg.Connector }
