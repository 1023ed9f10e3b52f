package controlplane

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

func TestStatusFollowsTheConnectorThroughItsLife(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = 30 * time.Second })
	ctx := t.Context()
	c := e.createConnector(t, "life")
	e.createMapping(t, c.ID, "Contact")
	expect := func(step, state, reason string) api.ConnectorStatus {
		t.Helper()
		st, err := e.client.Status(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != state || !strings.Contains(st.Reason, reason) {
			t.Errorf("%s: state %s (%s), want %s (…%s…)", step, st.State, st.Reason, state, reason)
		}
		return *st
	}
	expect("created", api.StateInactive, "never activated")
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	expect("activated", api.StateDeploying, "waiting for an agent")
	l, err := e.client.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "agent-1", Host: "worker-1", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	expect("leased", api.StateDeploying, "has not reported yet")
	now := e.clock.Now()
	report := func(state string, tables ...api.TableStatus) {
		t.Helper()
		if _, err := e.client.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: state, Revision: l.Revision, StartedAt: now,
			Tables: tables, SalesforceCalls: 12, DataverseCalls: 34, Throttled: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	report(api.PhaseInitialLoad, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseInitialLoad, LoadDone: 400, LoadTotal: 1000,
		ReplayAt: now.Add(-2 * time.Hour), LagSeconds: 3.5, LastError: "throttled", LastErrorAt: now})
	st := expect("loading", api.StateInitialLoad, "")
	if st.Agent == nil || st.Agent.Host != "worker-1" || st.Agent.PID != 4242 || st.DeployedRevision != 2 || st.LatestRevision != 2 {
		t.Errorf("agent %+v, deployed %d, latest %d", st.Agent, st.DeployedRevision, st.LatestRevision)
	}
	if len(st.Tables) != 1 || st.Tables[0].ReplayAgeSeconds != 7200 || st.Tables[0].RetentionSeconds != 72*3600 || st.Tables[0].LoadDone != 400 {
		t.Errorf("tables %+v", st.Tables)
	}
	if st.SalesforceCalls != 12 || st.DataverseCalls != 34 || st.LagSeconds != 3.5 || len(st.LastErrors) != 1 || st.LastErrors[0].Table != "Contact" {
		t.Errorf("counters %+v", st)
	}
	report(api.PhaseStreaming, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming})
	expect("streaming", api.StateStreaming, "")
	report(api.PhaseResync, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseResync, Reason: "replay ID expired"})
	expect("resyncing", api.StateResyncing, "")
	// Some tables stuck on an error that needs a person: degraded, naming each with its whole reason.
	long := "Dataverse refuses the writes: missing privilege prvWriteContact on contact (HTTP 403): " + strings.Repeat("detail ", 60) + "END"
	report(api.StateDegraded, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseFailed, Reason: long},
		api.TableStatus{Table: "Account", Destination: "account", Phase: api.PhaseStreaming})
	expect("degraded", api.StateDegraded, "Contact: "+long)
	report(api.PhaseStreaming, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming})
	expect("recovered", api.StateStreaming, "")
	report(api.PhaseResync, api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseResync, Reason: "replay ID expired"})

	// A config change: the agent runs the old revision for a while, then it is stuck.
	spec := api.MappingSpec{SourceTable: "Contact", UsePredefined: true, ExcludeColumns: []string{"fax"}}
	ms, err := e.client.ListMappings(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UpdateMapping(ctx, ms[0].ID, spec); err != nil {
		t.Fatal(err)
	}
	expect("rolling", api.StateDeploying, "rolling to revision 3 (agent on revision 2)")
	for range 5 { // keep the lease alive while time passes
		e.clock.Advance(25 * time.Second)
		report(api.PhaseStreaming)
	}
	expect("stuck", api.StateFailed, "agent stuck on revision 2 of 3")

	// The agent moves on to the latest revision and then reports a failure.
	if err := e.client.ReleaseLease(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if l, err = e.client.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "agent-2", Host: "worker-1"}); err != nil {
		t.Fatal(err)
	}
	if l.Revision != 3 || l.Config.Revision != 3 || len(l.Config.Tables[0].ExcludeColumns) != 1 {
		t.Errorf("the new lease carries revision %d: %+v", l.Revision, l.Config.Tables)
	}
	if _, err := e.client.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: api.PhaseFailed, Reason: "the Dataverse team lacks prvWritecontact", Revision: 3}}); err != nil {
		t.Fatal(err)
	}
	expect("failed", api.StateFailed, "prvWritecontact")

	// The agent goes silent.
	e.clock.Advance(31 * time.Second)
	expect("silent after a failure", api.StateFailed, "prvWritecontact")
	if _, err := e.client.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: api.PhaseStreaming, Revision: 3}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(31 * time.Second)
	expect("silent", api.StateDeploying, "stopped heartbeating")

	if _, err := e.client.SetActivation(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	st = expect("deactivated", api.StateInactive, "deactivated at")
	if st.DeployedRevision != 0 {
		t.Errorf("deployed revision %d without a live agent", st.DeployedRevision)
	}
}

func TestHeartbeatTellsTheAgentWhatIsDesired(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "desire")
	m := e.createMapping(t, c.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	l, err := e.client.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := e.client.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", Revision: l.Revision}})
	if err != nil || !hb.Active || hb.DesiredRevision != l.Revision {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	if _, err := e.client.UpdateMapping(ctx, m.ID, api.MappingSpec{SourceTable: "Contact", UsePredefined: true, DeleteBehaviour: "ignore"}); err != nil {
		t.Fatal(err)
	}
	if hb, err = e.client.Heartbeat(ctx, l.ID, api.Heartbeat{}); err != nil || hb.DesiredRevision != l.Revision+1 {
		t.Errorf("after a change: %+v, %v; want desired revision %d", hb, err, l.Revision+1)
	}
	if _, err := e.client.SetActivation(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if hb, err = e.client.Heartbeat(ctx, l.ID, api.Heartbeat{}); err != nil || hb.Active {
		t.Errorf("after deactivation: %+v, %v; want inactive", hb, err)
	}
}

func TestMetricsCountRequestsAndConnectorsByState(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.createConnector(t, "m-a")
	e.createConnector(t, "m-b")
	e.createMapping(t, a.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	body := get(t, e, "/metrics")
	for _, want := range []string{
		`crmsync_api_requests_total{code="201",route="POST /v1/connectors"} 2`,
		`crmsync_api_request_duration_seconds_count{code="200",route="PUT /v1/connectors/{id}/activation"} 1`,
		`crmsync_connectors{state="deploying"} 1`,
		`crmsync_connectors{state="inactive"} 1`,
		`crmsync_connectors{state="streaming"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
