// Package chaos is crmsync's reliability and security suite: scenarios that break the processes,
// the network, the services and the data under a running sync, and then prove that nothing was lost, nothing
// was duplicated and nothing leaked. The scenarios are the package's tests; this file holds what they report.
//
// Every scenario ends with a whole-dataset comparison of Salesforce and Dataverse (every mapped field of
// every record, plus the deleted set; package compare) and reports one Result line. `make chaos` runs the
// quick profile (also part of `make test`; skipped under -short); `make chaos PROFILE=long` the long one
// (CHAOS_PROFILE=long). CHAOS_SEED repeats a run; CHAOS_REPORT names a file that receives the result table.
// docs/reliability.md says what crmsync guarantees and which scenario proves each guarantee.
package chaos

import (
	"fmt"
	"strings"
	"time"
)

// Result is what one scenario reports.
type Result struct {
	Scenario string
	// Iterations counts the scenario's rounds: kills, outages, storms, injected batches.
	Iterations int
	// Faults counts the faults injected (resets, refused connections, 429s, 5xx, gap events, bad records...).
	Faults int64
	// Compared counts the records compared at the end (live and deleted, every table).
	Compared int
	// Differences counts missing, extra and mismatched rows; it must be 0.
	Differences int
	// Duplicates counts rows written twice for one record; it must be 0.
	Duplicates int
	Seed       uint64
	Elapsed    time.Duration
}

// OK reports whether the scenario found nothing wrong.
func (r Result) OK() bool { return r.Differences == 0 && r.Duplicates == 0 }

// Line is the one-line summary a scenario prints.
func (r Result) Line() string {
	return fmt.Sprintf("chaos: scenario=%s iterations=%d faults=%d compared=%d differences=%d duplicates=%d seed=%d elapsed=%s",
		r.Scenario, r.Iterations, r.Faults, r.Compared, r.Differences, r.Duplicates, r.Seed, r.Elapsed.Round(time.Second))
}

// Table formats results as a Markdown table, in the order given.
func Table(profile string, results []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos profile %s: %d scenarios\n\n", profile, len(results))
	b.WriteString("| scenario | iterations | faults injected | records compared | differences | duplicates | seed | time |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var faults int64
	var compared, diffs, dups, iters int
	var elapsed time.Duration
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", r.Scenario, r.Iterations, r.Faults, r.Compared,
			r.Differences, r.Duplicates, r.Seed, r.Elapsed.Round(time.Second))
		iters, faults, compared, diffs, dups = iters+r.Iterations, faults+r.Faults, compared+r.Compared, diffs+r.Differences, dups+r.Duplicates
		elapsed += r.Elapsed
	}
	fmt.Fprintf(&b, "| **total** | %d | %d | %d | %d | %d | | %s |\n", iters, faults, compared, diffs, dups, elapsed.Round(time.Second))
	return b.String()
}
