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
	live := hasLease && lease.ExpiresAt.After(now)
	rep, reportedAt, err := s.cfg.Store.LastStatus(ctx, conn.ID)
	if err != nil {
		return out, err
	}
	_, dead, err := s.cfg.Store.ListDeadLetters(ctx, conn.ID, store.DeadLetterFilter{Limit: 1})
	if err != nil {
		return out, err
	}
	out.DeadLetters = dead
	if rep != nil {
		out.UpdatedAt = reportedAt
		out.SalesforceCalls, out.DataverseCalls, out.Throttled, out.Calls = rep.SalesforceCalls, rep.DataverseCalls, rep.Throttled, rep.Calls
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
	reportedNow := rep != nil && hasLease && !reportedAt.Before(lease.StartedAt)

	switch {
	case !act.Active:
		out.State = api.StateInactive
		switch {
		case live:
			out.Reason = fmt.Sprintf("deactivated; agent %s is stopping", lease.ID)
		case act.DeactivatedAt != nil:
			out.Reason = "deactivated at " + act.DeactivatedAt.Format(time.RFC3339)
		default:
			out.Reason = "never activated"
		}
	case !live:
		switch {
		case reportedNow && rep.State == api.PhaseFailed:
			out.State, out.Reason = api.StateFailed, failedReason(rep)
		case hasLease:
			out.State = api.StateDeploying
			out.Reason = fmt.Sprintf("agent %s on %s stopped heartbeating %s ago; waiting for an agent to take over",
				lease.ID, lease.Host, now.Sub(lease.HeartbeatAt).Round(time.Second))
		default:
			out.State, out.Reason = api.StateDeploying, "waiting for an agent to take the connector's lease"
		}
	case lease.Revision < conn.Revision && now.Sub(conn.UpdatedAt) > s.stuckAfter():
		out.State = api.StateFailed
		out.Reason = fmt.Sprintf("agent stuck on revision %d of %d", lease.Revision, conn.Revision)
	case !reportedNow:
		out.State = api.StateDeploying
		out.Reason = fmt.Sprintf("agent %s started revision %d and has not reported yet", lease.ID, lease.Revision)
	case rep.State == api.PhaseFailed:
		out.State, out.Reason = api.StateFailed, failedReason(rep)
	case rep.State == api.StateDegraded:
		out.State, out.Reason = api.StateDegraded, failedReason(rep)
	case lease.Revision < conn.Revision:
		out.State = api.StateDeploying
		out.Reason = fmt.Sprintf("rolling to revision %d (agent on revision %d)", conn.Revision, lease.Revision)
	case rep.State == api.PhaseInitialLoad || rep.State == api.PhaseStreaming || rep.State == api.PhaseResync:
		out.State, out.Reason = rep.State, rep.Reason
		if out.State == api.PhaseResync {
			out.State = api.StateResyncing
		}
	default:
		out.State = api.StateDeploying
		out.Reason = fmt.Sprintf("agent is %s", rep.State)
		if rep.Reason != "" {
			out.Reason += ": " + rep.Reason
		}
	}
	if err := s.safeguardStatus(ctx, &out, act); err != nil {
		return out, err
	}
	return out, nil
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
