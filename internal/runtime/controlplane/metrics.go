package controlplane

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the control plane's Prometheus metrics, on a registry of its own (several servers can run in
// one process, as in tests).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmsync_api_requests_total",
			Help: "API requests by route (method and path pattern) and HTTP status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crmsync_api_request_duration_seconds",
			Help:    "API request latency by route and HTTP status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.requests, m.latency, &connectorCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(route, code).Inc()
	m.latency.WithLabelValues(route, code).Observe(d.Seconds())
}

var connectorsDesc = prometheus.NewDesc("crmsync_connectors", "Connectors by state (inactive, deploying, initial_load, streaming, resyncing, degraded, failed).", []string{"state"}, nil)

var _ prometheus.Collector = (*connectorCollector)(nil)

// connectorCollector counts connectors by state at scrape time, from the same computation as the status
// route.
type connectorCollector struct{ s *Server }

func (c *connectorCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connectorsDesc }

func (c *connectorCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts := map[string]int{}
	for _, st := range allStates {
		counts[st] = 0
	}
	conns, err := c.s.cfg.Store.ListConnectors(ctx)
	if err != nil {
		c.s.log.WarnContext(ctx, "metrics: listing connectors", "err", err)
		return
	}
	for _, conn := range conns {
		st, err := c.s.connectorStatus(ctx, conn)
		if err != nil {
			c.s.log.WarnContext(ctx, "metrics: connector status", "connector", conn.ID, "err", err)
			continue
		}
		counts[st.State]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(connectorsDesc, prometheus.GaugeValue, float64(n), state)
	}
}
