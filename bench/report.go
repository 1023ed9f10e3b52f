package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

func find(rs []Result, scenario string) []Result {
	var out []Result
	for _, r := range rs {
		if r.Scenario == scenario {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Param < out[j].Param })
	return out
}

// pair is a relay run and the load run right after it, of the same size.
type pair struct{ relay, load Result }

// pairs are the relay runs each followed by a load of its size, in run order.
func pairs(rs []Result) []pair {
	var out []pair
	for i := 0; i+1 < len(rs); i++ {
		if rs[i].Scenario == "relay" && rs[i+1].Scenario == "load" && rs[i+1].Param == rs[i].Param {
			out = append(out, pair{rs[i], rs[i+1]})
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rate(r Result) float64 { return r.Figures["records_per_second"] }

// ceilingSection compares crmsync's load with the ceiling runs: the intake and output alone, and the relay
// paired with the load (the published ratio is the median of the pairs' ratios).
func ceilingSection(b *strings.Builder, rs []Result, intake, output, naive Result) {
	in, out, nv := rate(intake), rate(output), rate(naive)
	ceiling := math.Min(in, out)
	ps := pairs(rs)
	var relays, crms, ratios []float64
	for _, p := range ps {
		relays, crms, ratios = append(relays, rate(p.relay)), append(crms, rate(p.load)), append(ratios, rate(p.load)/rate(p.relay))
	}
	if len(ps) == 0 { // no pair (a run of the ceiling alone): compare with any load of the same size
		for _, l := range find(rs, "load") {
			if l.Param == intake.Param {
				crms = append(crms, rate(l))
			}
		}
		for _, r := range find(rs, "relay") {
			relays = append(relays, rate(r))
		}
	}
	crm, relay := median(crms), median(relays)
	size := func(r Result) string { return fmt.Sprintf("%d contacts + %d accounts", r.Param, r.Param/5) }
	b.WriteString("## The ceiling, measured in the same run\n\n")
	b.WriteString("The trivial clients send and read the very rows crmsync's load does: the sandbox's accounts and contacts, mapped with the predefined mappings before the clock starts (contacts bind their accounts, so accounts are written first, as the load must).\n\n| measure | records/s |\n|---|---|\n")
	fmt.Fprintf(b, "| sandbox intake: trivial writer, pre-mapped UpsertMultiple of 1,000, 4 in flight (%s) | %.0f |\n", size(intake), in)
	fmt.Fprintf(b, "| sandbox output: trivial reader draining crmsync's Bulk queries (%s) | %.0f |\n", size(output), out)
	if len(relays) > 0 {
		fmt.Fprintf(b, "| both at once: the trivial reader and writer relaying, each batch sent once its rows are read (%s; median of %d) | %.0f |\n", size(intake), len(relays), relay)
	}
	fmt.Fprintf(b, "| naive baseline: one PATCH per record, one at a time (%s) | %.0f |\n", size(naive), nv)
	fmt.Fprintf(b, "| crmsync initial load (%s; median of %d) | %.0f |\n\n", size(intake), len(crms), crm)
	if len(ps) > 0 {
		b.WriteString("The relay and the load ran alternately; each ratio is the load's rate over the relay's just before it, with the machine's 1-minute load average at the start of each run. CPU is per 1,000 records: the relay's sandbox plus its trivial clients (a process of their own, as the agent is), and the load's sandbox plus agent. When both runs are bound by the same cores, the load can reach at most the relay's CPU over its own (the last column).\n\n")
		b.WriteString("| pair | relay records/s (load average) | crmsync records/s (load average) | crmsync / relay | relay CPU: sandbox + clients (ms) | load CPU: sandbox + agent (ms) | CPU bound |\n|---|---|---|---|---|---|---|\n")
		for i, p := range ps {
			rc, sc, ac := p.relay.Figures["cpu_ms_per_1000"], p.load.Figures["sandbox_cpu_ms_per_1000"], p.load.Figures["agent_cpu_ms_per_1000"]
			rs, rcl := p.relay.Figures["sandbox_cpu_ms_per_1000"], p.relay.Figures["clients_cpu_ms_per_1000"]
			fmt.Fprintf(b, "| %d | %.0f (%.2f) | %.0f (%.2f) | %.0f %% | %.1f + %.1f | %.1f + %.1f | %.0f %% |\n", i+1, rate(p.relay), p.relay.Figures["load_average"],
				rate(p.load), p.load.Figures["load_average"], ratios[i]*100, rs, rcl, sc, ac, rc/(sc+ac)*100)
		}
		b.WriteString("\n")
	}
	b.WriteString("| target | figure | |\n|---|---|---|\n")
	fmt.Fprintf(b, "| ≥ 60 %% of the ceiling (the lower of intake and output) | %.0f %% | %s |\n", crm/ceiling*100, verdict(crm/ceiling >= 0.6))
	if len(relays) > 0 {
		// The relay — trivial reader and writer at once, on the same cores as the sandbox — is the honest
		// ceiling on a shared machine; at zero latency no sync can be 20 × the naive baseline here (the
		// relay itself is about 10 ×), so that target is kept only with a modelled round trip (below).
		r := crm / relay
		what := "medians"
		if len(ratios) > 0 {
			r, what = median(ratios), fmt.Sprintf("median of %d pairs", len(ratios))
		}
		fmt.Fprintf(b, "| ≥ 90 %% of the relay | %.1f %% (%s) | %s |\n", r*100, what, verdict(r >= 0.9))
	}
	fmt.Fprintf(b, "| (for reference, no target) the naive baseline | %.1f × | |\n\n", crm/nv)
	if len(relays) > 0 {
		fmt.Fprintf(b, "On this machine the two halves share the same two cores: with clients that do no work at all, the sandbox reaches %.0f %% of the ceiling, and crmsync reaches %.0f %% of that relay. The relay also bounds any sync here at %.1f × the naive baseline.\n\n", relay/ceiling*100, crm/relay*100, relay/nv)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// markdown renders the results with every figure against its target.
func markdown(rep Report) string {
	var b strings.Builder
	rs := rep.Results
	fmt.Fprintf(&b, "# crmsync benchmark results\n\nMachine: %s. Started %s, took %.0f s.\n\nCommand: `%s`\n\n",
		rep.Machine, rep.Started.Format("2006-01-02 15:04 UTC"), rep.Seconds, rep.Command)
	b.WriteString("Every scenario names the Dataverse service-protection budget it runs under. The sandbox's default is Dataverse's published limits per application user (6,000 requests and 1,200 s of execution time per 5-minute window, 52 concurrent), a bulk item modelled at 20 ms: about 200 records/s sustained per user once the first window's budget is spent. The initial-load, ceiling and CDC scenarios lift the execution-time budget (the request count stays), so they measure the sync rather than the budget; the backlog runs under the default budget; the throttled scenario sets its own.\n\n")

	loads := find(rs, "load")
	if len(loads) > 0 {
		b.WriteString("## Initial load (contacts + a fifth as many accounts, agent as its own process)\n\n")
		b.WriteString("| contacts | records | records/s | Salesforce calls / 1,000 records | Dataverse requests / 1,000 records | agent peak RSS (MiB) | agent CPU (ms / 1,000 records) | agent CPU (cores) | sandbox CPU (cores) | load average |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range loads {
			f := r.Figures
			fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.3f | %.3f | %.1f | %.1f | %.2f | %.2f | %.2f |\n", r.Param, f["records"], f["records_per_second"],
				f["salesforce_calls_per_1000"], f["dataverse_requests_per_1000"], f["peak_rss_mib"], f["agent_cpu_ms_per_1000"], f["agent_cpu_cores"], f["sandbox_cpu_cores"], f["load_average"])
		}
		b.WriteString("\nCPU is user + system time over the load, in cores: the agent's process, and the sandbox's (both emulators, in the harness's process on the same machine).\n")
		// The first run of the smallest size and the last of the largest (the largest may run several times).
		last, first := loads[len(loads)-1].Figures, loads[0].Figures
		b.WriteString("\n| target | figure | |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| ≤ 1 Salesforce call per 1,000 records | %.3f (largest run) | %s |\n", last["salesforce_calls_per_1000"], verdict(last["salesforce_calls_per_1000"] <= 1))
		fmt.Fprintf(&b, "| ≤ 1.5 Dataverse requests per 1,000 records | %.3f (largest run) | %s |\n", last["dataverse_requests_per_1000"], verdict(last["dataverse_requests_per_1000"] <= 1.5))
		if loads[len(loads)-1].Param != loads[0].Param {
			ratio := last["peak_rss_mib"] / first["peak_rss_mib"]
			fmt.Fprintf(&b, "| peak memory at the largest N ≤ 1.5 × the smallest | %.2f × (%d vs %d contacts) | %s |\n", ratio, loads[len(loads)-1].Param, loads[0].Param, verdict(ratio <= 1.5))
		}
		b.WriteString("\n![memory and throughput against N](load.svg)\n\n")
	}

	intake, output, naive := find(rs, "intake"), find(rs, "output"), find(rs, "naive")
	if len(intake) > 0 && len(output) > 0 && len(naive) > 0 && len(loads) > 0 {
		ceilingSection(&b, rs, intake[0], output[0], naive[0])
	}

	li, ln, ll := find(rs, "intake-lat"), find(rs, "naive-lat"), find(rs, "load-lat")
	if len(li) > 0 && len(ln) > 0 && len(ll) > 0 && len(output) > 0 {
		lat := li[0].Figures["latency_ms"]
		in, nv, crm := li[0].Figures["records_per_second"], ln[0].Figures["records_per_second"], ll[0].Figures["records_per_second"]
		ceiling := math.Min(in, output[0].Figures["records_per_second"])
		fmt.Fprintf(&b, "### The same with a modelled %.0f ms round trip on every request\n\n", lat)
		b.WriteString("The sandbox answers in microseconds, which flatters one-request-per-record integrations; a real service is a network round trip away. Here every Salesforce REST/Bulk and Dataverse request waits that long first.\n\n| measure | records/s |\n|---|---|\n")
		fmt.Fprintf(&b, "| sandbox intake, trivial writer (%d contacts) | %.0f |\n", li[0].Param, in)
		fmt.Fprintf(&b, "| naive baseline, one PATCH per record (%d contacts) | %.0f |\n", ln[0].Param, nv)
		fmt.Fprintf(&b, "| crmsync initial load (%d contacts) | %.0f |\n\n", ll[0].Param, crm)
		b.WriteString("| target | figure | |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| ≥ 60 %% of the ceiling | %.0f %% | %s |\n", crm/ceiling*100, verdict(crm/ceiling >= 0.6))
		fmt.Fprintf(&b, "| ≥ 20 × the naive baseline | %.0f × | %s |\n\n", crm/nv, verdict(crm/nv >= 20))
	}

	if cdc := find(rs, "cdc"); len(cdc) > 0 {
		b.WriteString("## CDC latency (Salesforce commit → Dataverse acknowledgement, every change)\n\n")
		b.WriteString("| changes/s | changes | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | Dataverse requests / 1,000 events |\n|---|---|---|---|---|---|---|\n")
		for _, r := range cdc {
			f := r.Figures
			fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f |\n", r.Param, f["changes"], f["latency_p50_ms"], f["latency_p95_ms"], f["latency_p99_ms"], f["latency_max_ms"], f["dataverse_requests_per_1000"])
		}
		b.WriteString("\n| target | figure | |\n|---|---|---|\n")
		for _, r := range cdc {
			f := r.Figures
			switch r.Param {
			case 10:
				fmt.Fprintf(&b, "| p50 ≤ 10 ms at 10 changes/s | %.0f ms | %s |\n", f["latency_p50_ms"], verdict(f["latency_p50_ms"] <= 10))
				fmt.Fprintf(&b, "| p99 ≤ 30 ms at 10 changes/s | %.0f ms | %s |\n", f["latency_p99_ms"], verdict(f["latency_p99_ms"] <= 30))
			case 100:
				fmt.Fprintf(&b, "| p99 < 1 s at 100 changes/s | %.0f ms | %s |\n", f["latency_p99_ms"], verdict(f["latency_p99_ms"] < 1000))
			case 1000:
				fmt.Fprintf(&b, "| p99 ≤ 150 ms at 1,000 changes/s | %.0f ms | %s |\n", f["latency_p99_ms"], verdict(f["latency_p99_ms"] <= 150))
				fmt.Fprintf(&b, "| ≤ 20 Dataverse requests/s at 1,000 changes/s (one user's budget) | %.1f | %s |\n", f["dataverse_requests_per_second"], verdict(f["dataverse_requests_per_second"] <= 20))
				fmt.Fprintf(&b, "| ≤ 50 Dataverse requests per 1,000 events at 1,000/s | %.1f | %s |\n", f["dataverse_requests_per_1000"], verdict(f["dataverse_requests_per_1000"] <= 50))
			}
		}
		b.WriteString("\n")
	}

	if bl := find(rs, "backlog"); len(bl) > 0 {
		f := bl[0].Figures
		b.WriteString("## Backlog catch-up\n\n| changes | accumulated in (s) | drained in (s) | changes/s | drain vs accumulation |\n|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %.0f | %.1f | %.1f | %.0f | %.1f × (target ≥ 20 ×: %s) |\n\n", f["changes"], f["accumulated_seconds"], f["drain_seconds"], f["changes_per_second"], f["speedup"], verdict(f["speedup"] >= 20))
	}

	if th := find(rs, "throttled"); len(th) > 0 {
		f := th[0].Figures
		b.WriteString("## Throttled (Dataverse budget: 60 requests per 10 s)\n\n| records | records/s | budget maximum (records/s) | fraction of the maximum | 429 answers / 1,000 records |\n|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.0f %% (target ≥ 85 %%: %s) | %.2f |\n\n", f["records"], f["records_per_second"], f["budget_max_records_per_second"], f["fraction_of_budget"]*100, verdict(f["fraction_of_budget"] >= 0.85), f["throttled_per_1000"])
	}
	if us := find(rs, "users"); len(us) > 0 {
		b.WriteString("## Several application users: a budget-bound load\n\n")
		fmt.Fprintf(&b, "%s; %s. The sustained rate is measured from when every user has had a 429 (its first window's budget spent) to the end of the load.\n\n",
			"Dataverse's published limits per user, the default 20 ms per bulk item", strings.Join(us[0].Notes, "; "))
		b.WriteString("| users | records | records/s (whole load) | sustained records/s | combined budget (records/s) | budget used | speed-up (sustained) | 429s / 1,000 records | early retries | Dataverse equal |\n|---|---|---|---|---|---|---|---|---|---|\n")
		base := us[0].Figures["sustained_records_per_second"]
		for _, r := range us {
			f := r.Figures
			speedup := 0.0
			if base > 0 {
				speedup = f["sustained_records_per_second"] / base
			}
			fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.0f | %.0f | %.0f %% | %.2f × | %.2f | %.0f | %s |\n", f["users"], f["records"], f["records_per_second"],
				f["sustained_records_per_second"], f["budget_records_per_second"], f["budget_fraction"]*100, speedup, f["throttled_per_1000"], f["early_retries"],
				verdict(f["dataverse_rows_equal"] == 1))
		}
		b.WriteString("\n| target | figure | |\n|---|---|---|\n")
		for _, r := range us {
			f := r.Figures
			fmt.Fprintf(&b, "| ≥ 90 %% of the combined budget with %.0f user(s) | %.0f %% | %s |\n", f["users"], f["budget_fraction"]*100, verdict(f["budget_fraction"] >= 0.9))
			if f["users"] == 4 && base > 0 {
				fmt.Fprintf(&b, "| ≥ 3.5 × with 4 users | %.2f × | %s |\n", f["sustained_records_per_second"]/base, verdict(f["sustained_records_per_second"]/base >= 3.5))
			}
		}
		b.WriteString("\n")
	}
	if pl := find(rs, "plan"); len(pl) > 0 {
		f := pl[0].Figures
		b.WriteString("## Provider: `terraform plan` against a running control plane\n\n")
		b.WriteString("| connectors | resources | plan (s) | control-plane requests | of which the provider's connection check | requests per refreshed resource |\n|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %.0f | %.0f (each connector: 2 table mappings with column overrides, an activation) | %.1f | %.0f | %.0f | %.2f |\n\n",
			f["connectors"], f["resources"], f["plan_seconds"], f["control_plane_requests"], f["provider_configure_requests"], f["requests_per_resource"])
		b.WriteString("| target | figure | |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| plan under 10 s | %.1f s | %s |\n", f["plan_seconds"], verdict(f["plan_seconds"] < 10))
		fmt.Fprintf(&b, "| one control-plane request per refreshed resource | %.2f | %s |\n\n", f["requests_per_resource"], verdict(f["requests_per_resource"] <= 1.0))
	}
	return b.String()
}

// loadPlot draws throughput and peak memory against table size as an SVG line chart (log-scaled x).
func loadPlot(rs []Result) string {
	var loads []Result // one point per size: the first run of each
	for _, r := range find(rs, "load") {
		if len(loads) == 0 || loads[len(loads)-1].Param != r.Param {
			loads = append(loads, r)
		}
	}
	if len(loads) < 2 {
		return ""
	}
	const w, h, left, right, top, bottom = 640.0, 360.0, 70.0, 70.0, 40.0, 50.0
	minX, maxX := math.Log10(float64(loads[0].Param)), math.Log10(float64(loads[len(loads)-1].Param))
	maxThr, maxMem := 0.0, 0.0
	for _, r := range loads {
		maxThr = math.Max(maxThr, r.Figures["records_per_second"])
		maxMem = math.Max(maxMem, r.Figures["peak_rss_mib"])
	}
	maxThr, maxMem = maxThr*1.15, maxMem*1.15
	x := func(n int) float64 { return left + (math.Log10(float64(n))-minX)/(maxX-minX)*(w-left-right) }
	y := func(v, m float64) float64 { return h - bottom - v/m*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="20" text-anchor="middle" font-size="14">crmsync initial load: throughput and agent peak memory against contacts</text>`+"\n", w/2)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#1f77b4"/>`+"\n", left, top, left, h-bottom)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#d62728"/>`+"\n", w-right, top, w-right, h-bottom)
	for i := 0; i <= 4; i++ {
		v := float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end" fill="#1f77b4">%.0f</text>`+"\n", left-6, y(v*maxThr, maxThr)+4, v*maxThr)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#d62728">%.0f</text>`+"\n", w-right+6, y(v*maxMem, maxMem)+4, v*maxMem)
	}
	var thr, mem []string
	for _, r := range loads {
		px := x(r.Param)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%d</text>`+"\n", px, h-bottom+18, r.Param)
		thr = append(thr, fmt.Sprintf("%.1f,%.1f", px, y(r.Figures["records_per_second"], maxThr)))
		mem = append(mem, fmt.Sprintf("%.1f,%.1f", px, y(r.Figures["peak_rss_mib"], maxMem)))
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1f77b4"/><circle cx="%.1f" cy="%.1f" r="3" fill="#d62728"/>`+"\n",
			px, y(r.Figures["records_per_second"], maxThr), px, y(r.Figures["peak_rss_mib"], maxMem))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>`+"\n", strings.Join(thr, " "))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3" points="%s"/>`+"\n", strings.Join(mem, " "))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">contacts (log scale; accounts are a fifth)</text>`+"\n", w/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%.0f" fill="#1f77b4" transform="rotate(-90 16 %.0f)" text-anchor="middle">records per second</text>`+"\n", h/2, h/2)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#d62728" transform="rotate(90 %.0f %.0f)" text-anchor="middle">peak RSS (MiB)</text>`+"\n", w-14, h/2, w-14, h/2)
	b.WriteString("</svg>\n")
	return b.String()
}
