package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
)

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// loadOnce runs an agent process over a fresh sandbox of n contacts and n/5 accounts until the load is
// done, and returns its figures. The Dataverse execution-time budget is lifted: the benchmark measures the
// agent, and the default budget (about 200 records/s per application user past the first 60,000) would
// bound a 100,000-contact load.
func loadOnce(b *testing.B, n int) (recsPerSec, sfPer1000, dvPer1000 float64, rss int64) {
	b.Helper()
	e := newEnv(b, n, n/5)
	e.liftExecutionBudget()
	p := e.startProcess(b, filepath.Join(e.dir, "state"))
	defer p.kill()
	var s agent.Status
	start := time.Now()
	deadline := start.Add(10 * time.Minute)
	for {
		var ok bool
		s, ok = p.status()
		if ok && streaming(s) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("load of %d contacts did not finish in 10 minutes: %+v", n, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	rss, err := peakRSS(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	records := float64(n + n/5)
	return records / elapsed.Seconds(), float64(s.SalesforceCalls) / records * 1000, float64(s.DataverseCalls) / records * 1000, rss
}

// BenchmarkInitialLoad measures an initial load by an agent process: records per second, Salesforce calls
// and Dataverse requests per 1,000 records, and the agent's peak RSS, for 20,000 and 100,000 contacts (plus
// a fifth as many accounts), and prints how peak memory grows between the two. Run with
// `go test -run '^$' -bench InitialLoad -benchtime 1x ./internal/runtime/agent/`; CRMSYNC_BENCH_CONTACTS
// (comma-separated) changes the sizes.
func BenchmarkInitialLoad(b *testing.B) {
	sizes := []int{20000, 100000}
	if v := os.Getenv("CRMSYNC_BENCH_CONTACTS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	peaks := map[int]int64{}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("contacts=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rps, sf, dv, rss := loadOnce(b, n)
				b.ReportMetric(rps, "records/s")
				b.ReportMetric(sf, "sf-calls/1000rec")
				b.ReportMetric(dv, "dv-requests/1000rec")
				b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
				peaks[n] = rss
				fmt.Printf("initial load of %d contacts + %d accounts: %.0f records/s, %.3f Salesforce calls and %.3f Dataverse requests per 1,000 records, agent peak RSS %.1f MiB\n",
					n, n/5, rps, sf, dv, float64(rss)/(1<<20))
			}
		})
	}
	if len(sizes) >= 2 && peaks[sizes[0]] > 0 {
		lo, hi := sizes[0], sizes[len(sizes)-1]
		fmt.Printf("peak RSS at %d contacts is %.2f× the peak at %d\n", hi, float64(peaks[hi])/float64(peaks[lo]), lo)
	}
}

// BenchmarkCDCLatency runs an agent process streaming while the org commits 200 changes per second for
// 20 seconds, and reports the latency from Salesforce commit to Dataverse acknowledgement (p50, p99, max)
// as the agent measured it, plus Dataverse requests per 1,000 changes.
func BenchmarkCDCLatency(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newEnv(b, 5000, 1000)
		p := e.startProcess(b, filepath.Join(e.dir, "state"))
		waitForB(b, 2*time.Minute, func() bool { s, ok := p.status(); return ok && streaming(s) })
		before, _ := p.status()
		const rate, seconds, perTick = 200, 20, 20 // 20 changes every 100 ms
		tick := time.NewTicker(100 * time.Millisecond)
		changes := 0
		for j := 0; j < rate*seconds/perTick; j++ {
			<-tick.C
			if _, err := e.sb.Salesforce.Mutate("Contact", perTick, ""); err != nil {
				b.Fatal(err)
			}
			changes += perTick
		}
		tick.Stop()
		waitForB(b, time.Minute, func() bool {
			s, ok := p.status()
			if !ok || !streaming(s) {
				return false
			}
			for _, ts := range s.Tables {
				if ts.Table == "Contact" && ts.Latency != nil && ts.Received >= int64(changes) {
					return true
				}
			}
			return false
		})
		s, _ := p.status()
		p.kill()
		for _, ts := range s.Tables {
			if ts.Table != "Contact" || ts.Latency == nil {
				continue
			}
			dv := float64(s.DataverseCalls-before.DataverseCalls) / float64(changes) * 1000
			b.ReportMetric(ts.Latency.P50*1000, "p50-ms")
			b.ReportMetric(ts.Latency.P99*1000, "p99-ms")
			b.ReportMetric(ts.Latency.Max*1000, "max-ms")
			b.ReportMetric(dv, "dv-requests/1000changes")
			fmt.Printf("CDC at %d changes/s for %d s: %d changes, latency p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms; %.1f Dataverse requests per 1,000 changes (%d throttled)\n",
				rate, seconds, changes, ts.Latency.P50*1000, ts.Latency.P95*1000, ts.Latency.P99*1000, ts.Latency.Max*1000, dv, s.Throttled)
			fmt.Printf("  calls: %v\n", s.Calls)
		}
	}
}

func waitForB(b *testing.B, timeout time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
