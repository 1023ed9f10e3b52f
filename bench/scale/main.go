// Command scale measures how crmsync scales (docs/scaling.md, docs/benchmarks.md), with the crmsync
// binary under test run as processes:
//
//   - capacity: N connectors whose agents report status every second (the hottest path: one heartbeat per
//     connector per second), spread over R serve replicas on PostgreSQL, while a reader makes the provider's
//     reads (connector, mappings, activation, status); it reports the readers' and heartbeats' latency
//     percentiles, the heartbeat rate achieved, PostgreSQL's CPU and the rows it writes per second. The same
//     with SQLite and one replica for comparison. The agents are simulated (one process holding N leases):
//     what is measured is the control plane and its store.
//   - failover: a pool of two `crmsync agent` processes runs real connectors against the sandbox; the agent
//     running connectors is SIGKILLed, and the time until every connector streams again on the other agent is
//     measured, K times, at the default lease TTL and check-in interval.
//   - sizing: one pool agent runs N connectors of the sandbox; its memory with none and with N, its CPU with
//     N idle and while they write Salesforce's changes (docs/scaling.md's sizing per agent).
//
// Usage: go run ./bench/scale -crmsync bin/crmsync -out bench/results [-only capacity,failover]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
)

type options struct {
	crmsync    string
	out        string
	only       string
	connectors int
	replicas   int
	seconds    int
	kills      int
	failConns  int
	sizeConns  int
	leaseTTL   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.crmsync, "crmsync", "bin/crmsync", "the crmsync binary under test")
	flag.StringVar(&o.out, "out", "bench/results", "directory for scaling.md and scaling.json")
	flag.StringVar(&o.only, "only", "", "comma-separated: capacity, failover, sizing (all when empty)")
	flag.IntVar(&o.connectors, "connectors", 1000, "capacity: connectors reporting status every second")
	flag.IntVar(&o.replicas, "replicas", 3, "capacity: serve replicas on PostgreSQL")
	flag.IntVar(&o.seconds, "seconds", 60, "capacity: how long the steady state is measured")
	flag.IntVar(&o.kills, "kills", 20, "failover: how many agent kills")
	flag.IntVar(&o.failConns, "failover-connectors", 4, "failover: connectors the pool runs")
	flag.IntVar(&o.sizeConns, "sizing-connectors", 20, "sizing: connectors one pool agent runs")
	flag.DurationVar(&o.leaseTTL, "lease-ttl", controlplane.DefaultLeaseTTL, "failover: serve --lease-ttl (the default)")
	flag.Parse()
	bin, err := filepath.Abs(o.crmsync)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fail(fmt.Errorf("the crmsync binary %s: %w (make build)", o.crmsync, err))
	}
	o.crmsync = bin
	want := func(s string) bool { return o.only == "" || strings.Contains(","+o.only+",", ","+s+",") }
	var rep report
	if want("capacity") {
		for _, kind := range []string{"postgres", "sqlite"} {
			r := o.replicas
			if kind == "sqlite" {
				r = 1
			}
			res, err := capacity(o, kind, r)
			if err != nil {
				fail(fmt.Errorf("capacity on %s: %w", kind, err))
			}
			rep.Capacity = append(rep.Capacity, res)
			fmt.Fprintf(os.Stderr, "scale: capacity %s: %+v\n", kind, res)
		}
	}
	if want("sizing") {
		res, err := sizing(o)
		if err != nil {
			fail(fmt.Errorf("sizing: %w", err))
		}
		rep.Sizing = &res
		fmt.Fprintf(os.Stderr, "scale: sizing: %s\n", res)
	}
	if want("failover") {
		res, err := failover(o)
		if err != nil {
			fail(fmt.Errorf("failover: %w", err))
		}
		rep.Failover = &res
		fmt.Fprintf(os.Stderr, "scale: failover: %+v\n", res)
	}
	if err := rep.write(o.out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}
