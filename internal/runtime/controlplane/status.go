package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

var allStates = []string{api.StateInactive, api.StateDeploying, api.StateInitialLoad, api.StateStreaming, api.StateResyncing, api.StateDegraded, api.StateFailed}

// stuckAfter is how long an agent may run an older revision than the latest before status calls it stuck:
// an agent drains and restarts within a few lease periods.
func (s *Server) stuckAfter() time.Duration { return max(2*time.Minute, 4*s.cfg.LeaseTTL) }

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	conn, err := s.cfg.Store.GetConnector(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	st, err := s.connectorStatus(r.Context(), conn)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// connectorStatus combines the activation, the current lease and the agent's last report into the
// connector's state:
//   - inactive: not activated (an agent may still be draining);
//   - deploying: active, but no agent holds a live lease yet, or it has not reported at this lease, or it
//     runs an older revision than the latest (for less than stuckAfter);
//   - initial_load, streaming, resyncing: what the agent reports;
//   - failed: the agent reports a failure, or it stays on an older revision past stuckAfter, or its lease
//     lapsed after it reported a failure;
//   - degraded: the agent reports some tables failed on an error that needs a person while others sync.
func (s *Server) connectorStatus(ctx context.Context, conn api.Connector) (api.ConnectorStatus, error) {
	now := s.cfg.Now().UTC()
	out := api.ConnectorStatus{ConnectorID: conn.ID, Name: conn.Name, LatestRevision: conn.Revision, Tables: []api.ConnectorTableStatus{}}
	act, err := s.cfg.Store.GetActivation(ctx, conn.ID)
	if err != nil {
		return out, err
	}
	out.Active, out.DeployedRevision, out.Activation = act.Active, act.DeployedRevision, &act
	lease, err := s.cfg.Store.CurrentAgent(ctx, conn.ID)
	hasLease := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return out, err
	}
	if hasLease {
		agent := lease.AgentInfo
		out.Agent = &agent
	}
	rep, reportedAt, err := s.cfg.Store.LastStatus(ctx, conn.ID)
	if err != nil {
		return out, err
	}
	if _, out.DeadLetters, err = s.cfg.Store.ListDeadLetters(ctx, conn.ID, store.DeadLetterFilter{Limit: 1}); err != nil {
		return out, err
	}
	if rep != nil {
		addReport(&out, rep, reportedAt, now)
	}
	in := stateInputs{conn: conn, act: act, lease: lease, hasLease: hasLease, live: hasLease && lease.ExpiresAt.After(now),
		rep: rep, reportedNow: rep != nil && hasLease && !reportedAt.Before(lease.StartedAt), now: now, stuckAfter: s.stuckAfter()}
	out.State, out.Reason = in.state()
	if err := s.safeguardStatus(ctx, &out, act); err != nil {
		return out, err
	}
	return out, nil
}

// addReport fills the status from the agents' last report: counters, tables (with the age of their replay
// position), the largest lag and the last errors, newest first.
func addReport(out *api.ConnectorStatus, rep *api.Status, reportedAt, now time.Time) {
	out.UpdatedAt = reportedAt
	out.SalesforceCalls, out.DataverseCalls, out.Throttled, out.Calls = rep.SalesforceCalls, rep.DataverseCalls, rep.Throttled, rep.Calls
	out.ApplicationUsers = rep.ApplicationUsers
	for _, t := range rep.Tables {
		ct := api.ConnectorTableStatus{TableStatus: t, RetentionSeconds: RetentionWindow.Seconds()}
		if !t.ReplayAt.IsZero() {
			ct.ReplayAgeSeconds = max(0, now.Sub(t.ReplayAt).Seconds())
		}
		out.Tables = append(out.Tables, ct)
		out.LagSeconds = max(out.LagSeconds, t.LagSeconds)
		if t.LastError != "" {
			out.LastErrors = append(out.LastErrors, api.ErrorEntry{At: t.LastErrorAt, Table: t.Table, Message: t.LastError})
		}
	}
	if rep.State == api.PhaseFailed && rep.Reason != "" {
		out.LastErrors = append(out.LastErrors, api.ErrorEntry{At: reportedAt, Message: rep.Reason})
	}
	sort.SliceStable(out.LastErrors, func(i, j int) bool { return out.LastErrors[i].At.After(out.LastErrors[j].At) })
}

// stateInputs is what a connector's state is derived from.
type stateInputs struct {
	conn     api.Connector
	act      api.Activation
	lease    store.LeaseInfo
	hasLease bool
	live     bool // the lease has not expired
	rep      *api.Status
	// reportedNow: the last report was made under the current lease.
	reportedNow bool
	now         time.Time
	stuckAfter  time.Duration
}

// state is the connector's state and why (see connectorStatus).
func (in stateInputs) state() (string, string) {
	lease, rep := in.lease, in.rep
	switch {
	case !in.act.Active:
		return api.StateInactive, in.inactiveReason()
	case !in.live:
		return in.lapsed()
	case lease.Revision < in.conn.Revision && in.now.Sub(in.conn.UpdatedAt) > in.stuckAfter:
		return api.StateFailed, fmt.Sprintf("agent stuck on revision %d of %d", lease.Revision, in.conn.Revision)
	case !in.reportedNow:
		return api.StateDeploying, fmt.Sprintf("agent %s started revision %d and has not reported yet", lease.ID, lease.Revision)
	case rep.State == api.PhaseFailed:
		return api.StateFailed, failedReason(rep)
	case rep.State == api.StateDegraded:
		return api.StateDegraded, failedReason(rep)
	case lease.Revision < in.conn.Revision:
		return api.StateDeploying, fmt.Sprintf("rolling to revision %d (agent on revision %d)", in.conn.Revision, lease.Revision)
	case rep.State == api.PhaseResync:
		return api.StateResyncing, rep.Reason
	case rep.State == api.PhaseInitialLoad || rep.State == api.PhaseStreaming:
		return rep.State, rep.Reason
	}
	reason := fmt.Sprintf("agent is %s", rep.State)
	if rep.Reason != "" {
		reason += ": " + rep.Reason
	}
	return api.StateDeploying, reason
}

func (in stateInputs) inactiveReason() string {
	switch {
	case in.live:
		return fmt.Sprintf("deactivated; agent %s is stopping", in.lease.ID)
	case in.act.DeactivatedAt != nil:
		return "deactivated at " + in.act.DeactivatedAt.Format(time.RFC3339)
	}
	return "never activated"
}

// lapsed is the state of an active connector whose agent holds no live lease.
func (in stateInputs) lapsed() (string, string) {
	switch {
	case in.reportedNow && in.rep.State == api.PhaseFailed:
		return api.StateFailed, failedReason(in.rep)
	case in.hasLease:
		return api.StateDeploying, fmt.Sprintf("agent %s on %s stopped heartbeating %s ago; waiting for an agent to take over",
			in.lease.ID, in.lease.Host, in.now.Sub(in.lease.HeartbeatAt).Round(time.Second))
	}
	return api.StateDeploying, "waiting for an agent to take the connector's lease"
}

// failedReason is the agent's reason, or every failed table's, whole.
func failedReason(st *api.Status) string {
	if st.Reason != "" {
		return st.Reason
	}
	var out []string
	for _, t := range st.Tables {
		if t.Phase == api.PhaseFailed {
			out = append(out, t.Table+": "+t.Reason)
		}
	}
	if len(out) == 0 {
		return "the agent reports a failure"
	}
	return strings.Join(out, "; ")
}
