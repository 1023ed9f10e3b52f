package controlplane

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/syncmetrics"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// metrics are the control plane's Prometheus metrics, on a registry of its own (several servers can run in
// one process, as in tests): its own HTTP API, and every connector's sync from its agents' reports
// (package syncmetrics), so one scrape of the control plane covers every agent it runs.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_http_requests_total",
			Help: "Requests to the control plane's HTTP API, by route (method and path pattern) and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crmsync_http_request_duration_seconds",
			Help:    "Latency of the control plane's HTTP API, by route and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
	}
	info := version.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "crmsync_build_info",
		Help:        "1, labelled with the running control plane's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": info.Version, "revision": info.Commit, "goversion": info.GoVersion},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.latency, build, newConnectorCollector(s),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(route, code).Inc()
	m.latency.WithLabelValues(route, code).Observe(d.Seconds())
}

var _ prometheus.Collector = (*connectorCollector)(nil)

// connectorCollector reads every connector's state and its agent's last report at scrape time, from the same
// computation as the status route.
type connectorCollector struct {
	s    *Server
	sync *syncmetrics.Set

	connectors, state, active, revision, deployed, agentUp, heartbeatAge, deadLetters *prometheus.Desc
}

func newConnectorCollector(s *Server) *connectorCollector {
	c := []string{"connector"}
	return &connectorCollector{s: s, sync: syncmetrics.New(),
		connectors: prometheus.NewDesc("crmsync_connectors", "Connectors by state (inactive, deploying, backing_up, initial_load, streaming, resyncing, degraded, failed).", []string{"state"}, nil),
		state:      prometheus.NewDesc("crmsync_connector_state", "1 for the connector's current state, 0 for the others.", append(c, "state"), nil),
		active:     prometheus.NewDesc("crmsync_connector_active", "1 when the connector is activated.", c, nil),
		revision:   prometheus.NewDesc("crmsync_connector_revision", "The connector's latest configuration revision.", c, nil),
		deployed:   prometheus.NewDesc("crmsync_connector_deployed_revision", "The revision its agent runs (0 when none runs).", c, nil),
		agentUp:    prometheus.NewDesc("crmsync_agent_up", "1 when an agent holds a live lease on the connector.", c, nil),
		heartbeatAge: prometheus.NewDesc("crmsync_agent_heartbeat_age_seconds",
			"Seconds since the connector's agent last renewed its lease (absent when no agent ever took it).", c, nil),
		deadLetters: prometheus.NewDesc("crmsync_dead_letters", "Dead letters stored now, by table: records Dataverse refused or that could not be mapped.", []string{"connector", "table"}, nil),
	}
}

func (c *connectorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connectors, c.state, c.active, c.revision, c.deployed, c.agentUp, c.heartbeatAge, c.deadLetters} {
		ch <- d
	}
	c.sync.Describe(ch)
}

// metricStates are the values of crmsync_connector_state and crmsync_connectors.
var metricStates = append(append([]string(nil), allStates...), api.StateBackingUp)

func (c *connectorCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counts := map[string]int{}
	for _, st := range metricStates {
		counts[st] = 0
	}
	defer func() {
		for state, n := range counts {
			gauge(c.connectors, float64(n), state)
		}
	}()
	conns, err := c.s.cfg.Store.ListConnectors(ctx)
	if err != nil {
		c.s.log.WarnContext(ctx, "metrics: listing connectors", "err", err)
		return
	}
	now := c.s.cfg.Now()
	for _, conn := range conns {
		st, err := c.s.connectorStatus(ctx, conn)
		if err != nil {
			c.s.log.WarnContext(ctx, "metrics: connector status", "connector", conn.ID, "err", err)
			continue
		}
		counts[st.State]++
		name := conn.Name
		for _, s := range metricStates {
			v := 0.0
			if s == st.State {
				v = 1
			}
			gauge(c.state, v, name, s)
		}
		gauge(c.active, boolFloat(st.Active), name)
		gauge(c.revision, float64(st.LatestRevision), name)
		gauge(c.deployed, float64(st.DeployedRevision), name)
		up := false
		if lease, err := c.s.cfg.Store.CurrentAgent(ctx, conn.ID); err == nil {
			up = lease.ExpiresAt.After(now)
			gauge(c.heartbeatAge, max(0, now.Sub(lease.HeartbeatAt).Seconds()), name)
		} else if !errors.Is(err, store.ErrNotFound) {
			c.s.log.WarnContext(ctx, "metrics: connector lease", "connector", conn.ID, "err", err)
		}
		gauge(c.agentUp, boolFloat(up), name)
		dead, err := c.s.cfg.Store.DeadLetterCounts(ctx, conn.ID)
		if err != nil {
			c.s.log.WarnContext(ctx, "metrics: dead letters", "connector", conn.ID, "err", err)
		}
		report := syncmetrics.Report{Connector: name, Calls: st.Calls, Users: st.ApplicationUsers, Retention: RetentionWindow, Now: now}
		for _, t := range st.Tables {
			report.Tables = append(report.Tables, t.TableStatus)
			gauge(c.deadLetters, float64(dead[t.Table]), name, t.Table)
			delete(dead, t.Table)
		}
		for table, n := range dead { // tables no longer reported (a mapping removed) keep their dead letters
			gauge(c.deadLetters, float64(n), name, table)
		}
		c.sync.Collect(ch, report)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
