package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
)

// sizingResult is what one pool agent costs: its memory with no connector and with N streaming, and its
// CPU with N connectors idle and while every connector writes Salesforce's changes.
type sizingResult struct {
	Connectors      int     `json:"connectors"`
	BaseRSSMiB      float64 `json:"base_rss_mib"`       // the agent checked in, running nothing
	RSSMiB          float64 `json:"rss_mib"`            // N connectors streaming, after the changes
	PerConnectorMiB float64 `json:"per_connector_mib"`  // (RSS - base) / N
	IdleCPU         float64 `json:"idle_cpu_cores"`     // N connectors streaming, no change
	Changes         int     `json:"changes_per_second"` // Salesforce changes committed per second
	Writes          float64 `json:"rows_written_per_second"`
	BusyCPU         float64 `json:"busy_cpu_cores"`
	CPUPer1000Rows  float64 `json:"cpu_cores_per_1000_rows_per_second"`
}

// sizing runs one pool agent with o.sizeConns connectors of the sandbox (each streams the whole org, so a
// change is written once per connector) and measures it.
func sizing(o options) (sizingResult, error) {
	res := sizingResult{Connectors: o.sizeConns, Changes: 10}
	dir, err := os.MkdirTemp("", "crmsync-sizing-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	o.failConns = o.sizeConns
	e := &failoverEnv{o: o, dir: dir}
	defer e.close()
	if err := e.startControlPlane(); err != nil {
		return res, err
	}
	// Not the budget under test: one application user writes every connector's changes here.
	e.sb.Dataverse.SetLimits(dataverse.Limits{ExecutionTime: dataverse.Duration(1000 * time.Hour)})
	a, err := e.startAgent(0, o.sizeConns)
	if err != nil {
		return res, err
	}
	e.agents = append(e.agents, a)
	time.Sleep(10 * time.Second) // the base: the agent has checked in (every 5 s) with nothing to run
	res.BaseRSSMiB = rssMiB(a.p.cmd.Process.Pid)
	if err := e.createConnectors(); err != nil {
		return res, err
	}
	if _, err := e.waitStreaming("", 10*time.Minute); err != nil {
		return res, err
	}
	pid := a.p.cmd.Process.Pid
	time.Sleep(10 * time.Second) // settled after the initial loads
	c0, t0 := cpuSeconds(pid), time.Now()
	time.Sleep(30 * time.Second)
	res.IdleCPU = (cpuSeconds(pid) - c0) / time.Since(t0).Seconds()

	written := func() int64 {
		var n int64
		for _, id := range e.conns {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := e.c.Status(ctx, id)
			cancel()
			if err == nil {
				for _, t := range st.Tables {
					n += t.Written
				}
			}
		}
		return n
	}
	w0 := written()
	c0, t0 = cpuSeconds(pid), time.Now()
	tick := time.NewTicker(time.Second / time.Duration(res.Changes))
	for time.Since(t0) < 30*time.Second {
		<-tick.C
		if _, err := e.sb.Salesforce.Mutate("Contact", 1, ""); err != nil {
			tick.Stop()
			return res, err
		}
	}
	tick.Stop()
	busy := time.Since(t0).Seconds()
	res.BusyCPU = (cpuSeconds(pid) - c0) / busy
	time.Sleep(5 * time.Second) // the last changes' status reports
	res.Writes = float64(written()-w0) / busy
	if res.Writes > 0 {
		res.CPUPer1000Rows = res.BusyCPU / res.Writes * 1000
	}
	res.RSSMiB = rssMiB(pid)
	res.PerConnectorMiB = (res.RSSMiB - res.BaseRSSMiB) / float64(o.sizeConns)
	return res, nil
}

// rssMiB is a process's resident memory (VmRSS), from /proc (0 elsewhere).
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func (r sizingResult) String() string {
	return fmt.Sprintf("%d connectors: RSS %.0f MiB (base %.0f, %.1f per connector), idle %.3f cores, %d changes/s → %.0f rows/s written at %.2f cores (%.2f cores per 1,000 rows/s)",
		r.Connectors, r.RSSMiB, r.BaseRSSMiB, r.PerConnectorMiB, r.IdleCPU, r.Changes, r.Writes, r.BusyCPU, r.CPUPer1000Rows)
}
