package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// What `crmsync status` draws: the list of connectors, and for one connector its header, running loads,
// tables, last errors, out-of-band edits and reconciliations, with the figures' formats.

func renderList(w io.Writer, list []api.ConnectorStatus, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "No connectors.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tREVISION\tLAG\tDEAD LETTERS\tAGENT")
	for _, s := range list {
		agent := "-"
		if s.Agent != nil {
			agent = fmt.Sprintf("%s pid %d, seen %s ago", s.Agent.Host, s.Agent.PID, ago(now, s.Agent.HeartbeatAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.State, revision(s), seconds(s.LagSeconds), s.DeadLetters, agent)
	}
	_ = tw.Flush()
	// Reasons go below the table, whole: the part that matters (the missing privilege, the refused column)
	// is often at the end of a long message.
	for _, s := range list {
		if s.Reason != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Name, oneLine(s.Reason, maxMessage))
		}
	}
}

// maxMessage bounds a message printed on one line: far above any reason the control plane keeps (it clips
// them itself), so nothing is cut in practice.
const maxMessage = 16 << 10

// revision says which revision runs: the latest alone when the agent runs it, "deployed/latest (behind)"
// during a rollout, and the latest with "not running" when no agent runs (deactivated, or not deployed
// yet) — never "0/8", which reads as if revision 0 were deployed.
func revision(s api.ConnectorStatus) string {
	switch {
	case s.DeployedRevision == 0 && !s.Active:
		return fmt.Sprintf("%d (inactive)", s.LatestRevision)
	case s.DeployedRevision == 0:
		return fmt.Sprintf("%d (not running yet)", s.LatestRevision)
	case s.DeployedRevision != s.LatestRevision:
		return fmt.Sprintf("%d/%d (behind)", s.DeployedRevision, s.LatestRevision)
	}
	return fmt.Sprint(s.LatestRevision)
}

func renderConnector(w io.Writer, s api.ConnectorStatus, rates map[string]float64, now time.Time) {
	renderHeader(w, s, now)
	renderLoading(w, s.Tables, rates)
	renderTables(w, s.Tables)
	renderOutOfBand(w, s.Tables, now)
	renderReconciliations(w, s.Tables, now)
	renderLastErrors(w, s.LastErrors, now)
}

// renderHeader is the connector's block: state, revisions, agent, totals.
func renderHeader(w io.Writer, s api.ConnectorStatus, now time.Time) {
	fmt.Fprintf(w, "Connector %s (%s)\n", s.Name, s.ConnectorID)
	fmt.Fprintf(w, "  State     %s", s.State)
	if s.Reason != "" {
		fmt.Fprintf(w, ": %s", s.Reason)
	}
	fmt.Fprintln(w)
	switch {
	case s.DeployedRevision == 0 && !s.Active:
		fmt.Fprintf(w, "  Revision  %d latest; no agent runs (inactive)\n", s.LatestRevision)
	case s.DeployedRevision == 0:
		fmt.Fprintf(w, "  Revision  %d latest; no agent runs it yet\n", s.LatestRevision)
	default:
		fmt.Fprintf(w, "  Revision  %d deployed, %d latest\n", s.DeployedRevision, s.LatestRevision)
	}
	if s.Agent != nil {
		fmt.Fprintf(w, "  Agent     %s on %s (pid %d), revision %d, heartbeat %s ago\n", s.Agent.ID, s.Agent.Host, s.Agent.PID, s.Agent.Revision, ago(now, s.Agent.HeartbeatAt))
	}
	fmt.Fprintf(w, "  Totals    lag %s · dead letters %d · Salesforce calls %d · Dataverse requests %d (throttled %d), since the first activation\n",
		seconds(s.LagSeconds), s.DeadLetters, s.SalesforceCalls, s.DataverseCalls, s.Throttled)
	if len(s.ApplicationUsers) > 1 {
		// Each user's share of the current agent's requests and what the service says is left of its budget.
		fmt.Fprintf(w, "  Users     %d Dataverse application users\n", len(s.ApplicationUsers))
		for _, u := range s.ApplicationUsers {
			left := "budget not known yet"
			if u.RemainingExecutionSeconds != nil {
				left = fmt.Sprintf("%s of execution time left in the window", seconds(*u.RemainingExecutionSeconds))
			}
			held := ""
			if u.ThrottledForSeconds > 0 {
				held = fmt.Sprintf(", held %s by Retry-After", seconds(u.ThrottledForSeconds))
			}
			fmt.Fprintf(w, "    %s  %d requests (throttled %d), %d concurrent, %s%s\n", u.ClientID, u.Requests, u.Throttled, u.Concurrency, left, held)
		}
	}
	if !s.UpdatedAt.IsZero() {
		fmt.Fprintf(w, "  Reported  %s ago\n", ago(now, s.UpdatedAt))
	}
}

// renderLoading draws a progress bar for each table that loads.
func renderLoading(w io.Writer, tables []api.ConnectorTableStatus, rates map[string]float64) {
	var loading []api.ConnectorTableStatus
	for _, t := range tables {
		if t.Phase == api.PhaseInitialLoad || t.Phase == api.PhaseResync || t.Phase == api.PhasePending {
			loading = append(loading, t)
		}
	}
	if len(loading) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Loading")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range loading {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Table, progressBar(t.LoadDone, t.LoadTotal, 30), loadDetail(t, rates[t.Table]))
	}
	_ = tw.Flush()
}

// renderTables is the table of tables with their counters, then each table's reason, owed work and
// recoveries. The counters add up every revision's agent since the connector was first activated.
func renderTables(w io.Writer, tables []api.ConnectorTableStatus) {
	if len(tables) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tDESTINATION\tPHASE\tLAG\tRECEIVED\tWRITTEN\tDEAD-LETTERED\tSKIPPED\tREPLAY AGE")
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Table, t.Destination, t.Phase, seconds(t.LagSeconds),
			t.Received, t.Written, t.DeadLettered, t.Skipped, replayAge(t))
	}
	_ = tw.Flush()
	for _, t := range tables {
		if t.Reason != "" {
			fmt.Fprintf(w, "  %s: %s\n", t.Table, oneLine(t.Reason, maxMessage))
		}
		for _, o := range t.Owed {
			fmt.Fprintf(w, "  %s owes %s\n", t.Table, o)
		}
		for _, r := range t.Recoveries {
			fmt.Fprintf(w, "  %s recovery: %s\n", t.Table, r)
		}
	}
}

// renderLastErrors lists the five newest errors, each whole: a cut message can lose what matters (a refused
// write names the missing privilege at its end).
func renderLastErrors(w io.Writer, errs []api.ErrorEntry, now time.Time) {
	if len(errs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Last errors")
	for i, e := range errs {
		if i == 5 {
			fmt.Fprintf(w, "  … %d more\n", len(errs)-5)
			break
		}
		where := ""
		if e.Table != "" {
			where = e.Table + ": "
		}
		fmt.Fprintf(w, "  %s (%s ago) %s%s\n", e.At.Local().Format("2006-01-02 15:04:05"), ago(now, e.At), where, oneLine(e.Message, maxMessage))
	}
}

// progressBar draws done of total in width cells.
func progressBar(done, total int64, width int) string {
	frac := 0.0
	if total > 0 {
		frac = math.Min(1, float64(done)/float64(total))
	}
	full := int(frac * float64(width))
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "]"
}

func loadDetail(t api.ConnectorTableStatus, rate float64) string {
	if t.Phase == api.PhasePending {
		return "waiting for the tables its lookups point at"
	}
	parts := []string{fmt.Sprintf("%s / %s", count(t.LoadDone), count(t.LoadTotal))}
	if t.LoadTotal > 0 {
		parts = append(parts, fmt.Sprintf("%3.0f%%", 100*math.Min(1, float64(t.LoadDone)/float64(t.LoadTotal))))
	}
	if rate > 0 {
		parts = append(parts, fmt.Sprintf("%s rec/s", count(int64(rate))))
		if left := t.LoadTotal - t.LoadDone; left > 0 {
			parts = append(parts, "~"+duration(time.Duration(float64(left)/rate*float64(time.Second)))+" left")
		}
	}
	if t.Phase == api.PhaseResync && t.Reason != "" {
		parts = append(parts, "re-sync: "+t.Reason)
	}
	return strings.Join(parts, "  ")
}

// replayAge is the age of the stored replay position against the retention window.
func replayAge(t api.ConnectorTableStatus) string {
	if t.ReplayAt.IsZero() {
		return "-"
	}
	s := fmt.Sprintf("%s of %s", hours(time.Duration(t.ReplayAgeSeconds*float64(time.Second))), hours(time.Duration(t.RetentionSeconds*float64(time.Second))))
	if t.RetentionSeconds > 0 && t.ReplayAgeSeconds > t.RetentionSeconds {
		s += " (expired: re-sync)"
	}
	return s
}

// count writes n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func seconds(s float64) string {
	if s <= 0 {
		return "0s"
	}
	if s < 60 {
		return fmt.Sprintf("%.1fs", s)
	}
	return duration(time.Duration(s * float64(time.Second)))
}

// duration rounds to what a person reads: 3s, 4m10s, 5h2m, 3d4h.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strings.TrimSuffix(d.Round(time.Second).String(), "0s")
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}

// hours writes an age against the retention window in the window's unit: 12s, 5m3s, 80h.
func hours(d time.Duration) string {
	if d < time.Hour {
		return duration(d)
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return duration(max(0, now.Sub(t)))
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// renderOutOfBand lists, per table, the rows changed in Dataverse by someone other than the agent.
func renderOutOfBand(w io.Writer, tables []api.ConnectorTableStatus, now time.Time) {
	if !slices.ContainsFunc(tables, func(t api.ConnectorTableStatus) bool { return t.OutOfBand != nil }) {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Out-of-band edits (synced rows changed in Dataverse by someone else)")
	for _, t := range tables {
		o := t.OutOfBand
		if o == nil {
			continue
		}
		policy := "reported only (repair_out_of_band_edits = false)"
		if o.Repair {
			policy = "rewritten from Salesforce (repair_out_of_band_edits = true)"
		}
		fmt.Fprintf(w, "  %s: %s found, %s repaired, %s; checked %s ago\n", t.Table, count(o.Detected), count(o.Repaired), policy, ago(now, o.CheckedAt))
		for _, e := range o.Examples {
			who := e.ModifiedBy
			if e.ModifiedByName != "" {
				who = e.ModifiedByName
			}
			repaired := ""
			if e.Repaired {
				repaired = " [repaired]"
			}
			fmt.Fprintf(w, "    %s %s (%s) by %s: %s%s\n", e.ModifiedAt.Local().Format("2006-01-02 15:04:05"), e.RecordID, e.Key, who,
				strings.Join(e.Columns, ", "), repaired)
		}
	}
}

// renderReconciliations shows each table's last reconciliation.
func renderReconciliations(w io.Writer, tables []api.ConnectorTableStatus, now time.Time) {
	if !slices.ContainsFunc(tables, func(t api.ConnectorTableStatus) bool { return t.Reconcile != nil }) {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Last reconciliation")
	for _, t := range tables {
		r := t.Reconcile
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "  %s: %s\n", t.Table, reconcileLine(r, now))
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", oneLine(r.Error, maxMessage))
		}
		for _, d := range r.Examples {
			line := fmt.Sprintf("    %s %s", d.Kind, d.Key)
			if d.RecordID != "" {
				line += " (" + d.RecordID + ")"
			}
			if len(d.Columns) > 0 {
				line += ": " + strings.Join(d.Columns, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
}

// reconcileLine is one reconciliation in a line: the outcome, both row counts, the differences and what
// was healed, when and why it ran, what it cost.
func reconcileLine(r *api.ReconcileResult, now time.Time) string {
	var outcome string
	switch {
	case r.FinishedAt.IsZero():
		outcome = "running"
	case r.Error != "":
		outcome = "failed"
	case r.Match:
		outcome = "match"
	default:
		outcome = "differed"
	}
	parts := []string{fmt.Sprintf("%s: %s rows in Salesforce, %s in Dataverse", outcome, count(r.SourceRows), count(r.DestinationRows))}
	if !r.Match || r.Missing+r.Different+r.Extra+r.Kept > 0 {
		parts = append(parts, fmt.Sprintf("missing %d, different %d, extra %d, kept %d; healed %d, not healed %d", r.Missing, r.Different, r.Extra, r.Kept, r.Healed, r.Unhealed))
	}
	when := r.FinishedAt
	if when.IsZero() {
		when = r.StartedAt
	}
	trigger := "scheduled"
	if r.Trigger == api.ReconcileRequested {
		trigger = fmt.Sprintf("requested (#%d)", r.RequestID)
	}
	parts = append(parts, fmt.Sprintf("%s %s ago", trigger, ago(now, when)),
		fmt.Sprintf("%d Salesforce calls, %d Dataverse requests", r.SalesforceCalls, r.DataverseCalls))
	return strings.Join(parts, " · ")
}
