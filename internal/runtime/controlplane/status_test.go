package controlplane

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
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
	l, err := e.acquire(t, "agent-1", api.LeaseRequest{ConnectorID: c.ID, Host: "worker-1", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	expect("leased", api.StateDeploying, "has not reported yet")
	now := e.clock.Now()
	report := func(state string, tables ...api.TableStatus) {
		t.Helper()
		if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: state, Revision: l.Revision, StartedAt: now,
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
	spec := mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, ExcludeColumns: []string{"fax"}}
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
	if err := e.by(l.ID).ReleaseLease(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if l, err = e.acquire(t, "agent-2", api.LeaseRequest{ConnectorID: c.ID, Host: "worker-1"}); err != nil {
		t.Fatal(err)
	}
	if l.Revision != 3 || l.Config.Revision != 3 || len(l.Config.Tables[0].ExcludeColumns) != 1 {
		t.Errorf("the new lease carries revision %d: %+v", l.Revision, l.Config.Tables)
	}
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: api.PhaseFailed, Reason: "the Dataverse team lacks prvWritecontact", Revision: 3}}); err != nil {
		t.Fatal(err)
	}
	expect("failed", api.StateFailed, "prvWritecontact")

	// The agent goes silent.
	e.clock.Advance(31 * time.Second)
	expect("silent after a failure", api.StateFailed, "prvWritecontact")
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: api.PhaseStreaming, Revision: 3}}); err != nil {
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
	l, err := e.acquire(t, "a", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", Revision: l.Revision}})
	if err != nil || !hb.Active || hb.DesiredRevision != l.Revision {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	if _, err := e.client.UpdateMapping(ctx, m.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, DeleteBehaviour: "ignore"}); err != nil {
		t.Fatal(err)
	}
	if hb, err = e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{}); err != nil || hb.DesiredRevision != l.Revision+1 {
		t.Errorf("after a change: %+v, %v; want desired revision %d", hb, err, l.Revision+1)
	}
	if _, err := e.client.SetActivation(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if hb, err = e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{}); err != nil || hb.Active {
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
		`crmsync_http_requests_total{code="201",route="POST /v1/connectors"} 2`,
		`crmsync_http_request_duration_seconds_count{code="200",route="PUT /v1/connectors/{id}/activation"} 1`,
		`crmsync_connectors{state="deploying"} 1`,
		`crmsync_connectors{state="inactive"} 1`,
		`crmsync_connectors{state="streaming"} 0`,
		`crmsync_connector_state{connector="m-a",state="deploying"} 1`,
		`crmsync_connector_state{connector="m-b",state="inactive"} 1`,
		`crmsync_connector_active{connector="m-a"} 1`,
		`crmsync_agent_up{connector="m-a"} 0`,
		`crmsync_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The agent's crmsync_api_calls_total and the control plane's crmsync_api_requests_total were
	// easily confused; the HTTP API's are crmsync_http_*, the sync's crmsync_sync_api_*.
	for _, gone := range []string{"crmsync_api_requests_total", "crmsync_api_request_duration_seconds", "crmsync_api_calls_total"} {
		if strings.Contains(body, gone) {
			t.Errorf("metrics still serve %s", gone)
		}
	}
}

// Agents started by serve have no --listen, so no lag, dead-letter or throughput metric existed;
// the control plane exported crmsync_connectors{state} only. It exports every connector's sync, from the
// agents' reports, labelled by connector and table, under names the Prometheus linter accepts.
func TestMetricsCoverEveryConnectorsSyncFromTheAgentsReports(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.createConnector(t, "m-sync")
	e.createMapping(t, a.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	l, err := e.acquire(t, "a", api.LeaseRequest{ConnectorID: a.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	var hist api.Histogram
	for _, v := range []float64{0.03, 0.2, 0.2, 0.7, 12} {
		hist.Observe(v)
	}
	now := e.clock.Now()
	st := api.Status{State: api.PhaseStreaming, Revision: l.Revision, SalesforceCalls: 7, DataverseCalls: 9, Throttled: 2,
		Calls: map[string]int64{"salesforce.bulk.create": 1, "salesforce.pubsub.subscribe": 1, "dataverse.requests": 9, "dataverse.upsert_multiple": 9, "dataverse.throttled": 2, "dataverse.retries": 3},
		Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming, LoadDone: 500, LoadTotal: 500,
			Received: 510, Written: 505, DeadLettered: 3, DeadLetterEvents: 4, Skipped: 2, LagSeconds: 1.5, ReplayAt: now.Add(-time.Hour),
			LatencyHistogram: &hist, OutOfBand: &api.OutOfBandStatus{Detected: 4, Repaired: 1},
			Reconcile: &api.ReconcileResult{StartedAt: now.Add(-time.Minute), FinishedAt: now.Add(-30 * time.Second), Missing: 1, Healed: 1}}}}
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: st}); err != nil {
		t.Fatal(err)
	}
	if err := e.by(l.ID).AddDeadLetters(ctx, l.ID, []api.DeadLetter{{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert", Code: "x", Reason: "r", At: now, FirstAt: now}}); err != nil {
		t.Fatal(err)
	}
	body := get(t, e, "/metrics")
	for _, want := range []string{
		`crmsync_connector_state{connector="m-sync",state="streaming"} 1`,
		`crmsync_agent_up{connector="m-sync"} 1`,
		`crmsync_agent_heartbeat_age_seconds{connector="m-sync"} 0`,
		`crmsync_records_total{connector="m-sync",outcome="written",table="Contact"} 505`,
		`crmsync_records_dead_lettered{connector="m-sync",table="Contact"} 3`,
		`crmsync_dead_letter_events_total{connector="m-sync",table="Contact"} 4`,
		`crmsync_load_rows_done{connector="m-sync",table="Contact"} 500`,
		`crmsync_load_rows_estimated{connector="m-sync",table="Contact"} 500`,
		`crmsync_table_phase{connector="m-sync",phase="streaming",table="Contact"} 1`,
		`crmsync_cdc_lag_seconds{connector="m-sync",table="Contact"} 1.5`,
		`crmsync_cdc_latency_seconds_bucket{connector="m-sync",table="Contact",le="0.05"} 1`,
		`crmsync_cdc_latency_seconds_bucket{connector="m-sync",table="Contact",le="0.25"} 3`,
		`crmsync_cdc_latency_seconds_bucket{connector="m-sync",table="Contact",le="+Inf"} 5`,
		`crmsync_cdc_latency_seconds_count{connector="m-sync",table="Contact"} 5`,
		`crmsync_replay_age_seconds{connector="m-sync",table="Contact"} 3600`,
		`crmsync_replay_retention_seconds{connector="m-sync",table="Contact"} 259200`,
		`crmsync_dead_letters{connector="m-sync",table="Contact"} 1`,
		`crmsync_out_of_band_edits_total{connector="m-sync",table="Contact"} 4`,
		`crmsync_out_of_band_edits_repaired_total{connector="m-sync",table="Contact"} 1`,
		`crmsync_reconcile_differences{connector="m-sync",kind="missing",table="Contact"} 1`,
		`crmsync_reconcile_match{connector="m-sync",table="Contact"} 0`,
		`crmsync_sync_api_calls_total{connector="m-sync",kind="bulk.create",side="salesforce"} 1`,
		`crmsync_sync_api_calls_total{connector="m-sync",kind="upsert_multiple",side="dataverse"} 9`,
		`crmsync_sync_api_throttled_total{connector="m-sync",side="dataverse"} 2`,
		`crmsync_sync_api_retries_total{connector="m-sync",side="dataverse"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `kind="requests"`) {
		t.Error("the Dataverse request total is counted as a kind of call (it is their sum)")
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "crmsync_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
