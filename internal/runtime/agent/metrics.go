package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes an agent's status as Prometheus metrics, read at scrape time.
type Collector struct {
	status func() Status

	records   *prometheus.Desc
	loadDone  *prometheus.Desc
	loadTotal *prometheus.Desc
	lag       *prometheus.Desc
	phase     *prometheus.Desc
	calls     *prometheus.Desc
	throttled *prometheus.Desc
}

// NewCollector returns a collector over a status source.
func NewCollector(status func() Status) *Collector {
	return &Collector{
		status:    status,
		records:   prometheus.NewDesc("crmsync_records_total", "Records by outcome: received, written, dead_lettered, skipped (received = written + dead_lettered + skipped).", []string{"table", "outcome"}, nil),
		loadDone:  prometheus.NewDesc("crmsync_load_rows_done", "Rows written by the current or last load of the table.", []string{"table"}, nil),
		loadTotal: prometheus.NewDesc("crmsync_load_rows_estimated", "Estimated rows of the table's load.", []string{"table"}, nil),
		lag:       prometheus.NewDesc("crmsync_cdc_lag_seconds", "Seconds between the commit of the last applied change and now, while changes are pending.", []string{"table"}, nil),
		phase:     prometheus.NewDesc("crmsync_table_phase", "1 for the table's current phase.", []string{"table", "phase"}, nil),
		calls:     prometheus.NewDesc("crmsync_api_calls_total", "API calls by service and kind.", []string{"kind"}, nil),
		throttled: prometheus.NewDesc("crmsync_dataverse_throttled_total", "429 answers received from Dataverse.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.loadDone, c.loadTotal, c.lag, c.phase, c.calls, c.throttled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	for _, t := range s.Tables {
		for outcome, v := range map[string]int64{"received": t.Received, "written": t.Written, "dead_lettered": t.DeadLettered, "skipped": t.Skipped} {
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(v), t.Table, outcome)
		}
		ch <- prometheus.MustNewConstMetric(c.loadDone, prometheus.GaugeValue, float64(t.LoadDone), t.Table)
		ch <- prometheus.MustNewConstMetric(c.loadTotal, prometheus.GaugeValue, float64(t.LoadTotal), t.Table)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, t.LagSeconds, t.Table)
		ch <- prometheus.MustNewConstMetric(c.phase, prometheus.GaugeValue, 1, t.Table, t.Phase)
	}
	for k, v := range s.Calls {
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(v), k)
	}
	ch <- prometheus.MustNewConstMetric(c.throttled, prometheus.CounterValue, float64(s.Throttled))
}
