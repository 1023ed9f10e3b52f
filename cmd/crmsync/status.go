package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// defaultEndpoint is where `crmsync serve` listens by default.
const defaultEndpoint = "http://127.0.0.1:8787"

func newStatusCommand() *cobra.Command {
	var (
		endpoint  string
		tokenFile string
		caFile    string
		watch     bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "status [CONNECTOR]",
		Short: "Show the sync state of connectors: progress, lag, counters, errors",
		Long: `Shows what the control plane knows of its connectors.

Without CONNECTOR: one line per connector (state, deployed/latest revision, lag, dead letters). With a
connector name or ID: a progress bar per table during the initial load (records done of the estimated total,
rate, time left), then a table of each table's phase, lag, counters and the age of its stored replay
position against the 72 h retention, and the last errors.

--watch redraws every second until interrupted; --json prints the API's status JSON instead (one document
per line with --watch). The endpoint and token default to CRMSYNC_ENDPOINT and CRMSYNC_TOKEN.

Exit status, for cron jobs and CI steps: 0 when every connector shown is healthy (not degraded or failed;
inactive, deploying, loading and streaming are healthy), 1 when one is degraded or failed, 2 when the
command could not run (bad arguments, no token, an unknown connector, the control plane unreachable or
refusing the token). --watch exits 0 when interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" {
				endpoint = os.Getenv("CRMSYNC_ENDPOINT")
			}
			if endpoint == "" {
				endpoint = defaultEndpoint
			}
			token, err := apiToken(tokenFile)
			if err != nil {
				return err
			}
			c, err := client.New(client.Config{Endpoint: endpoint, Token: token, CAFile: caFile, Timeout: 15 * time.Second,
				UserAgent: "crmsync-status/" + version.Version})
			if err != nil {
				return err
			}
			v := &statusView{c: c, out: cmd.OutOrStdout(), json: asJSON, history: map[string][]progressSample{}}
			if len(args) == 1 {
				if v.connectorID, err = resolveConnector(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			if !watch {
				healthy, err := v.frame(cmd.Context(), false)
				if err != nil {
					return err
				}
				if !healthy {
					return errUnhealthy
				}
				return nil
			}
			return v.watch(cmd.Context(), isTerminal(cmd.OutOrStdout()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "control plane URL (default: $CRMSYNC_ENDPOINT, else "+defaultEndpoint+")")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API token (default: $CRMSYNC_TOKEN)")
	f.StringVar(&caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	f.BoolVar(&watch, "watch", false, "redraw every second until interrupted")
	f.BoolVar(&asJSON, "json", false, "print the API's status JSON")
	return cmd
}

// resolveConnector accepts a connector ID or name.
func resolveConnector(ctx context.Context, c *client.Client, arg string) (string, error) {
	if strings.HasPrefix(arg, "con_") {
		conn, err := c.GetConnector(ctx, arg)
		if err == nil {
			return conn.ID, nil
		}
		if !errors.Is(err, client.ErrNotFound) {
			return "", err
		}
	}
	conn, err := c.FindConnector(ctx, arg)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return "", usageError("no connector has the ID or name %q", arg)
		}
		return "", err
	}
	return conn.ID, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressSample is one observation of a table's load progress, for the rate.
type progressSample struct {
	at   time.Time
	done int64
}

// statusView fetches and prints status frames.
type statusView struct {
	c           *client.Client
	out         io.Writer
	json        bool
	connectorID string
	// history keeps recent load progress per table ("<connector>/<table>") across --watch frames.
	history map[string][]progressSample
}

func (v *statusView) watch(ctx context.Context, tty bool) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if tty && !v.json {
			fmt.Fprint(v.out, "\033[H\033[2J") // home and clear: redraw in place
		}
		if _, err := v.frame(ctx, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A control plane that restarts is worth waiting for in a watch.
			fmt.Fprintf(v.out, "error: %v\n", err)
		}
		if !tty && !v.json {
			fmt.Fprintln(v.out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// frame fetches and prints one view; healthy is false when a connector shown is degraded or failed.
func (v *statusView) frame(ctx context.Context, watching bool) (healthy bool, err error) {
	now := time.Now()
	if v.connectorID != "" {
		st, err := v.c.Status(ctx, v.connectorID)
		if err != nil {
			return false, err
		}
		if v.json {
			return isHealthy(*st), writeJSONLine(v.out, st, !watching)
		}
		renderConnector(v.out, *st, v.rates(*st), now)
		return isHealthy(*st), nil
	}
	conns, err := v.c.ListConnectors(ctx)
	if err != nil {
		return false, err
	}
	list := make([]api.ConnectorStatus, 0, len(conns))
	healthy = true
	for _, conn := range conns {
		st, err := v.c.Status(ctx, conn.ID)
		if err != nil {
			return false, err
		}
		list = append(list, *st)
		healthy = healthy && isHealthy(*st)
	}
	if v.json {
		return healthy, writeJSONLine(v.out, struct {
			Connectors []api.ConnectorStatus `json:"connectors"`
		}{list}, !watching)
	}
	renderList(v.out, list, now)
	return healthy, nil
}

// isHealthy is the status command's exit test: a connector is unhealthy when degraded or failed.
func isHealthy(st api.ConnectorStatus) bool {
	return st.State != api.StateDegraded && st.State != api.StateFailed
}

func writeJSONLine(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// rateWindow is how far back --watch looks for a table's load rate.
const rateWindow = 15 * time.Second

// rates returns each loading table's rate in records per second: the agent's own measure over the last 5
// minutes (Dataverse's service-protection window, so a budget-bound load's waits count) when it reports one;
// else over the last frames in --watch, else the average since the agent started (a resumed load counts rows
// done before, so it reads high).
func (v *statusView) rates(st api.ConnectorStatus) map[string]float64 {
	out := map[string]float64{}
	for _, t := range st.Tables {
		if t.LoadRate > 0 {
			out[t.Table] = t.LoadRate
			continue
		}
		key := st.ConnectorID + "/" + t.Table
		h := v.history[key]
		if len(h) == 0 || !st.UpdatedAt.Equal(h[len(h)-1].at) {
			h = append(h, progressSample{at: st.UpdatedAt, done: t.LoadDone})
		}
		for len(h) > 2 && st.UpdatedAt.Sub(h[0].at) > rateWindow {
			h = h[1:]
		}
		v.history[key] = h
		first, last := h[0], h[len(h)-1]
		if el := last.at.Sub(first.at).Seconds(); el > 0 && last.done >= first.done {
			out[t.Table] = float64(last.done-first.done) / el
		} else if st.Agent != nil && !st.Agent.StartedAt.IsZero() {
			if el := st.UpdatedAt.Sub(st.Agent.StartedAt).Seconds(); el > 0 {
				out[t.Table] = float64(t.LoadDone) / el
			}
		}
	}
	return out
}

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
