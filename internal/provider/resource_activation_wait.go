package provider

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

// waitForAgent polls the connector's status until its agent runs at least revision (and, for
// waitForInitialLoad, every table streams), the agent fails at that revision, or timeout passes. The errors
// list everything that is not done.
func waitForAgent(ctx context.Context, c *client.Client, id string, revision int64, waitFor string, timeout time.Duration, users int) (*api.ConnectorStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *api.ConnectorStatus
	var lastProgress string
	err := poll(ctx, func() (bool, error) {
		st, err := c.Status(ctx, id)
		if err != nil {
			if isUnreachable(err) {
				tflog.Warn(ctx, "reading the connector status failed; retrying", map[string]any{"error": err.Error()})
				return false, nil
			}
			return false, err
		}
		last = st
		if p := progressLine(st, revision, users); p != lastProgress {
			lastProgress = p
			tflog.Info(ctx, "waiting for the crmsync agent: "+p, map[string]any{"connector_id": id, "state": st.State, "deployed_revision": st.DeployedRevision})
		}
		if (st.State == api.StateFailed || st.State == api.StateDegraded) && st.DeployedRevision >= revision {
			return false, fmt.Errorf("the agent of connector %s %s at revision %d: %s", id, st.State, st.DeployedRevision, notDone(st, revision, waitFor))
		}
		return agentDone(st, revision, waitFor), nil
	})
	if err == nil {
		return last, nil
	}
	if ctx.Err() != nil && last != nil && last.State == api.StateBackingUp {
		return nil, fmt.Errorf("timed out after %s waiting for the backup before the first sync of connector %s: the agent is "+
			"deployed only once it is complete. Not done:\n%s\n"+
			"The connector stays active and the backup goes on: apply again to keep waiting, or raise timeouts; `crmsync backup list` "+
			"shows its progress. To go without it, deactivate the connector (which cancels the backup) and activate it again: "+
			"a later activation takes no backup", timeout, id, notDone(last, revision, waitFor))
	}
	if ctx.Err() != nil && last != nil {
		return nil, fmt.Errorf("timed out after %s waiting for the agent of connector %s (wait_for = %q). Not done:\n%s\n"+
			"The connector stays active; raise timeouts, or look at `crmsync status %s`", timeout, id, waitFor, notDone(last, revision, waitFor), id)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("timed out after %s waiting for the agent of connector %s: the status could not be read", timeout, id)
	}
	return nil, err
}

// waitAgentGone waits until no agent holds a live lease on the connector (the activation's deployed revision
// is 0), which after a deactivation means the agent drained and stopped.
func waitAgentGone(ctx context.Context, c *client.Client, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return poll(ctx, func() (bool, error) {
		act, err := c.GetActivation(ctx, id)
		if isNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if act.DeployedRevision != 0 {
			tflog.Debug(ctx, "waiting for the agent to stop", map[string]any{"connector_id": id, "revision": act.DeployedRevision})
		}
		return act.DeployedRevision == 0, nil
	})
}

// agentDone reports whether the status satisfies wait_for.
func agentDone(st *api.ConnectorStatus, revision int64, waitFor string) bool {
	if st.Agent == nil || st.DeployedRevision < revision {
		return false
	}
	switch st.State {
	case api.StateStreaming:
	case api.StateInitialLoad, api.StateResyncing:
		if waitFor == waitForInitialLoad {
			return false
		}
	default:
		return false
	}
	if waitFor == waitForInitialLoad {
		for _, t := range st.Tables {
			if t.Phase != api.PhaseStreaming {
				return false
			}
		}
	}
	return true
}

// notDone lists, one per line, what keeps the status from satisfying wait_for, followed by the last errors.
func notDone(st *api.ConnectorStatus, revision int64, waitFor string) string {
	var lines []string
	switch {
	case st.State == api.StateBackingUp && st.Backup != nil:
		lines = append(lines, backupNotDone(st.Backup))
	case st.Agent == nil:
		lines = append(lines, fmt.Sprintf("no agent runs the connector (state %s%s)", st.State, reasonSuffix(st.Reason)))
	case st.DeployedRevision < revision:
		lines = append(lines, fmt.Sprintf("the agent runs revision %d, not %d (state %s%s)", st.DeployedRevision, revision, st.State, reasonSuffix(st.Reason)))
	case st.State != api.StateStreaming && st.State != api.StateInitialLoad && st.State != api.StateResyncing:
		lines = append(lines, fmt.Sprintf("the connector is %s%s", st.State, reasonSuffix(st.Reason)))
	}
	for _, t := range st.Tables {
		switch {
		case t.Phase == api.PhaseFailed:
			lines = append(lines, fmt.Sprintf("table %s failed%s", t.Table, reasonSuffix(cmp.Or(t.Reason, t.LastError))))
		case waitFor == waitForInitialLoad && t.Phase != api.PhaseStreaming:
			lines = append(lines, fmt.Sprintf("table %s is %s: %s", t.Table, t.Phase, loadProgress(t.TableStatus, 0)))
		}
	}
	for _, e := range st.LastErrors {
		table := ""
		if e.Table != "" {
			table = " (" + e.Table + ")"
		}
		lines = append(lines, fmt.Sprintf("error at %s%s: %s", e.At.UTC().Format(time.RFC3339), table, e.Message))
	}
	if len(lines) == 0 {
		lines = append(lines, fmt.Sprintf("the connector is %s", st.State))
	}
	return "  - " + strings.Join(lines, "\n  - ")
}

// backupNotDone says why a first activation's backup holds the agent back, with its progress.
func backupNotDone(b *api.Backup) string {
	if b.State == api.BackupRetrying {
		return fmt.Sprintf("the backup before the first sync (%s) failed and will be retried: %s (%s)", b.ID, b.Error, backupProgress(b))
	}
	return fmt.Sprintf("the backup before the first sync (%s) is %s: %s; the agent is deployed once it is complete", b.ID, b.State, backupProgress(b))
}

// backupProgress is a backup's progress: rows exported of the rows the tables held when it started, per table.
func backupProgress(b *api.Backup) string {
	var estimated int64
	tables := make([]string, 0, len(b.Tables))
	for _, t := range b.Tables {
		estimated += t.Estimated
		switch {
		case t.Complete:
			tables = append(tables, fmt.Sprintf("%s %d rows, done", t.Table, t.Rows))
		case t.Estimated > 0:
			tables = append(tables, fmt.Sprintf("%s %d of about %d rows", t.Table, t.Rows, t.Estimated))
		default:
			tables = append(tables, fmt.Sprintf("%s %d rows", t.Table, t.Rows))
		}
	}
	sort.Strings(tables)
	out := fmt.Sprintf("%d rows exported", b.Rows)
	if estimated > 0 {
		out = fmt.Sprintf("%d of about %d rows exported (%.0f%%)", b.Rows, estimated, min(100, 100*float64(b.Rows)/float64(estimated)))
	}
	if len(tables) > 0 {
		out += " [" + strings.Join(tables, ", ") + "]"
	}
	return out
}

// progressLine is the one-line progress logged while waiting; users is the connector's number of Dataverse
// application users, for the loads' expected duration.
func progressLine(st *api.ConnectorStatus, revision int64, users int) string {
	if st.State == api.StateBackingUp && st.Backup != nil {
		return fmt.Sprintf("%s, backup %s %s: %s", st.State, st.Backup.ID, st.Backup.State, backupProgress(st.Backup))
	}
	parts := []string{fmt.Sprintf("%s, revision %d of %d", st.State, st.DeployedRevision, revision)}
	tables := append([]api.ConnectorTableStatus(nil), st.Tables...)
	sort.Slice(tables, func(i, j int) bool { return tables[i].Table < tables[j].Table })
	for _, t := range tables {
		parts = append(parts, fmt.Sprintf("%s %s %s", t.Table, t.Phase, loadProgress(t.TableStatus, users)))
	}
	return strings.Join(parts, "; ")
}

// loadProgress says how far a table's load is; while it runs (users > 0), what the whole load is expected to
// take at the budget of users Dataverse application users and the Salesforce calls it uses (api.LoadCost), and
// the time left at the rate the agent measures.
func loadProgress(t api.TableStatus, users int) string {
	if t.LoadTotal <= 0 {
		return fmt.Sprintf("%d records loaded", t.LoadDone)
	}
	out := fmt.Sprintf("%d of %d records loaded (%.0f%%)", t.LoadDone, t.LoadTotal, 100*float64(t.LoadDone)/float64(t.LoadTotal))
	if users <= 0 || (t.Phase != api.PhaseInitialLoad && t.Phase != api.PhaseResync) {
		return out
	}
	est := api.LoadCost(t.LoadTotal, users)
	out += fmt.Sprintf(" (the whole load: %d Salesforce API calls, writes %s)", est.SalesforceCalls, est.Pace())
	if t.LoadRate > 0 && t.LoadETASeconds > 0 {
		out += fmt.Sprintf(", measured %.0f records/s: %s left", t.LoadRate, api.AboutDuration(time.Duration(t.LoadETASeconds*float64(time.Second))))
	}
	return out
}

// assessHealth says whether an active connector's agent is healthy. The control plane already reports a
// failed agent, and an agent stuck on an older revision past its rollout window, as failed, and an agent
// some of whose tables failed on an error that needs a person as degraded; what it reports
// as deploying is a rollout in progress (an apply that changes a mapping returns before the agent has moved,
// and the plan right after it must be empty), unless no agent has taken the connector within grace of its
// activation.
func assessHealth(st *api.ConnectorStatus, activatedAt *time.Time, now time.Time, grace time.Duration) string {
	switch {
	case st.State == api.StateFailed:
		return "the agent failed" + reasonSuffix(st.Reason)
	case st.State == api.StateDegraded:
		return "the agent is degraded (some tables failed)" + reasonSuffix(st.Reason)
	case st.State == api.StateDeploying && st.Agent == nil && activatedAt != nil && now.Sub(*activatedAt) > grace:
		return fmt.Sprintf("no agent has taken the connector since its activation %s ago", now.Sub(*activatedAt).Round(time.Second)) + reasonSuffix(st.Reason)
	}
	return healthy
}

// poll calls check every pollInterval (backing off to 5 s) until it reports done, fails, or ctx ends.
func poll(ctx context.Context, check func() (bool, error)) error {
	backoff := retry.Policy{Base: pollInterval, Max: max(pollInterval, 5*time.Second)}
	for n := 0; ; n++ {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if err := retry.Sleep(ctx, backoff.Delay(n)); err != nil {
			return err
		}
	}
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
