package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is what the run publishes: scaling.json and scaling.md in the output directory.
type report struct {
	Capacity []capacityResult `json:"capacity,omitempty"`
	Failover *failoverResult  `json:"failover,omitempty"`
	Sizing   *sizingResult    `json:"sizing,omitempty"`
}

func (r report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: results are meant to be read
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scaling.json"), b, 0o644); err != nil { //nolint:gosec // G306: results are meant to be read
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Scaling benchmarks (%s, %d cores, %s)\n\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS)
	if len(r.Capacity) > 0 {
		md.WriteString("## Control-plane capacity\n\n")
		md.WriteString("| store | replicas | connectors | heartbeats/s | heartbeat p50 / p99 | provider reads | read p50 / p99 / max | errors | serve CPU | PostgreSQL CPU | rows written/s | commits/s |\n")
		md.WriteString("|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Capacity {
			fmt.Fprintf(&md, "| %s | %d | %d | %.0f | %.1f / %.1f ms | %d | %.1f / %.1f / %.1f ms | %d | %.2f cores | %.2f cores | %.0f | %.0f |\n",
				c.Store, c.Replicas, c.Connectors, c.HeartbeatsPerSecond, c.HeartbeatP50MS, c.HeartbeatP99MS, c.Reads,
				c.ReadP50MS, c.ReadP99MS, c.ReadMaxMS, c.Errors, c.ServeCPU, c.StoreCPU, c.RowsWritten, c.Commits)
		}
		md.WriteString("\n")
	}
	if f := r.Failover; f != nil {
		md.WriteString("## Agent failover\n\n")
		fmt.Fprintf(&md, "%d SIGKILLs of the pool agent running the most of %d connectors (lease TTL %s, check-ins every 5 s): "+
			"time until every connector streams on the other agent: **p50 %.1f s, max %.1f s** (mean %.1f s).\n\nSamples (s):",
			f.Kills, f.Connectors, f.LeaseTTL, f.P50, f.Max, f.Mean)
		for _, s := range f.Samples {
			fmt.Fprintf(&md, " %.1f", s)
		}
		md.WriteString("\n")
	}
	if z := r.Sizing; z != nil {
		md.WriteString("## One pool agent's size\n\n")
		fmt.Fprintf(&md, "| connectors | RSS base / with N | per connector | CPU idle | changes/s | rows written/s | CPU busy | CPU per 1,000 rows/s |\n")
		md.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|\n")
		fmt.Fprintf(&md, "| %d | %.0f / %.0f MiB | %.1f MiB | %.3f cores | %d | %.0f | %.2f cores | %.2f cores |\n\n",
			z.Connectors, z.BaseRSSMiB, z.RSSMiB, z.PerConnectorMiB, z.IdleCPU, z.Changes, z.Writes, z.BusyCPU, z.CPUPer1000Rows)
	}
	fmt.Fprint(os.Stdout, md.String())
	return os.WriteFile(filepath.Join(dir, "scaling.md"), []byte(md.String()), 0o644) //nolint:gosec // G306: results are meant to be read
}
