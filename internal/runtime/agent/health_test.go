package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
)

// TestAPermanentErrorFailsTheTableWithTheFullReasonAndClearsWhenFixed: the team loses its create and write
// privileges on contacts while the connector streams. Within the bound (30 s) the Contact table reports failed with the
// missing privilege by name, the agent reports degraded (Account still syncs), and the metric says so;
// retrying goes on, and once the privilege is back the table streams again on its own and nothing is lost.
// Regression: the agent retried "403 … missing prvWriteContact" forever while status said streaming with an
// empty reason.
func TestAPermanentErrorFailsTheTableWithTheFullReasonAndClearsWhenFixed(t *testing.T) {
	e := newEnv(t, 50, 10)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	team := e.sb.Info.Dataverse.TeamID
	if err := e.sb.Dataverse.RevokeTeamPrivileges(team, "prvCreateContact", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Generate("Contact", 5, ""); err != nil { // creates: full rows bound to the team
		t.Fatal(err)
	}
	revoked := time.Now()
	waitFor(t, 30*time.Second, "the Contact table to report the permanent error", func() bool {
		s := r.a.Status()
		ts := tableStatus(s, "Contact")
		return ts.Phase == agent.PhaseFailed && strings.Contains(ts.Reason, "missing privilege prvCreateContact on contact") && s.State == api.StateDegraded
	})
	t.Logf("reported failed %s after the revocation: %q", time.Since(revoked).Round(time.Millisecond), tableStatus(r.a.Status(), "Contact").Reason)
	// The metrics say so too.
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(r.a.ConnectorName(), r.a.Status))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	failedPhase := false
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if f.GetName() == "crmsync_table_phase" && labels["table"] == "Contact" && labels["phase"] == agent.PhaseFailed && m.GetGauge().GetValue() == 1 {
				failedPhase = true
			}
		}
	}
	if !failedPhase {
		t.Error(`crmsync_table_phase{table="Contact",phase="failed"} is not 1 while the table failed`)
	}
	if ts := tableStatus(r.a.Status(), "Account"); ts.Phase != agent.PhaseStreaming {
		t.Errorf("Account, which still syncs, reports %s: %s", ts.Phase, ts.Reason)
	}
	// While failed, Account changes still flow.
	if _, err := e.sb.Salesforce.Mutate("Account", 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Dataverse.GrantTeamPrivileges(team, "", "prvCreateContact", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the Contact table to recover on its own", func() bool {
		s := r.a.Status()
		return tableStatus(s, "Contact").Phase == agent.PhaseStreaming && s.State == api.StateStreaming
	})
	e.settle(t, r, time.Minute)
	e.compareAll(t, nil)
	reconciled(t, r.a.Status())
}
