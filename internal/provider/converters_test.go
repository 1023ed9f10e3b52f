package provider

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

func resourceSchema(t *testing.T, r resource.Resource) rschema.Schema {
	t.Helper()
	var resp resource.SchemaResponse
	r.Schema(context.Background(), resource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	return resp.Schema
}

// rawObject builds a value of the schema's type: the given attributes, every other one null.
func rawObject(t *testing.T, s rschema.Schema, vals map[string]tftypes.Value) tftypes.Value {
	t.Helper()
	ctx := context.Background()
	typ := s.Type().TerraformType(ctx).(tftypes.Object)
	attrs := map[string]tftypes.Value{}
	for name, at := range typ.AttributeTypes {
		if v, ok := vals[name]; ok {
			attrs[name] = v
		} else {
			attrs[name] = tftypes.NewValue(at, nil)
		}
	}
	return tftypes.NewValue(typ, attrs)
}

func str(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }

func TestDefaultDestinationTable_plansThePredefinedPairing(t *testing.T) {
	s := resourceSchema(t, NewTableMappingResource())
	for source, want := range map[string]string{"Contact": "contact", "account": "account", "Lead": "lead"} {
		plan := tfsdk.Plan{Schema: s, Raw: rawObject(t, s, map[string]tftypes.Value{"source_table": str(source)})}
		req := planmodifier.StringRequest{Path: path.Root("destination_table"), Plan: plan, ConfigValue: types.StringNull(), PlanValue: types.StringUnknown()}
		resp := planmodifier.StringResponse{PlanValue: req.PlanValue}
		defaultDestinationTable{}.PlanModifyString(context.Background(), req, &resp)
		if resp.Diagnostics.HasError() || resp.PlanValue.ValueString() != want {
			t.Errorf("%s: planned %s (%v), want %s", source, resp.PlanValue, resp.Diagnostics, want)
		}
	}
	// A configured destination is left alone; an unknown source leaves the value unknown.
	plan := tfsdk.Plan{Schema: s, Raw: rawObject(t, s, map[string]tftypes.Value{"source_table": tftypes.NewValue(tftypes.String, tftypes.UnknownValue)})}
	req := planmodifier.StringRequest{Plan: plan, ConfigValue: types.StringNull(), PlanValue: types.StringUnknown()}
	resp := planmodifier.StringResponse{PlanValue: req.PlanValue}
	defaultDestinationTable{}.PlanModifyString(context.Background(), req, &resp)
	if !resp.PlanValue.IsUnknown() {
		t.Errorf("unknown source: planned %s", resp.PlanValue)
	}
}

func TestActivationModifyPlan_unhealthyAgentPlansAnUpdateBackToHealthy(t *testing.T) {
	ctx := context.Background()
	r := NewActivationResource().(*activationResource)
	s := resourceSchema(t, r)
	vals := map[string]tftypes.Value{
		"id": str("con_1"), "connector_id": str("con_1"), "wait_for": str("running"),
		"health":            str("the agent failed: invalid_grant"),
		"deployed_revision": tftypes.NewValue(tftypes.Number, 3),
	}
	state := tfsdk.State{Schema: s, Raw: rawObject(t, s, vals)}
	req := resource.ModifyPlanRequest{State: state, Plan: tfsdk.Plan{Schema: s, Raw: state.Raw.Copy()}}
	resp := resource.ModifyPlanResponse{Plan: req.Plan}
	r.ModifyPlan(ctx, req, &resp)
	var health types.String
	var rev types.Int64
	resp.Diagnostics.Append(resp.Plan.GetAttribute(ctx, path.Root("health"), &health)...)
	resp.Diagnostics.Append(resp.Plan.GetAttribute(ctx, path.Root("deployed_revision"), &rev)...)
	if health.ValueString() != healthy || !rev.IsUnknown() {
		t.Errorf("planned health %s, revision %s; want healthy and unknown", health, rev)
	}
	if resp.Diagnostics.WarningsCount() != 1 || !strings.Contains(resp.Diagnostics.Warnings()[0].Detail(), "invalid_grant") {
		t.Errorf("want one warning naming the failure, got %v", resp.Diagnostics)
	}

	// A healthy activation plans nothing.
	vals["health"] = str(healthy)
	state = tfsdk.State{Schema: s, Raw: rawObject(t, s, vals)}
	req = resource.ModifyPlanRequest{State: state, Plan: tfsdk.Plan{Schema: s, Raw: state.Raw.Copy()}}
	resp = resource.ModifyPlanResponse{Plan: req.Plan}
	r.ModifyPlan(ctx, req, &resp)
	if !resp.Plan.Raw.Equal(state.Raw) || len(resp.Diagnostics) != 0 {
		t.Errorf("a healthy activation changed the plan: %v", resp.Diagnostics)
	}
}

func TestConnectorFromAPI_keepsInlineSecretsOnlyWhileStored(t *testing.T) {
	prior := connectorModel{
		Salesforce: &salesforceModel{PrivateKey: types.StringValue("pem")},
		Dataverse:  &dataverseModel{ClientSecret: types.StringValue("s3cret")},
	}
	c := &api.Connector{ID: "con_1", ConnectorSpec: api.ConnectorSpec{Name: "n", TeamID: teamA,
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: authJWTBearer, ClientID: "c"},
		Dataverse:  api.DataverseSettings{EnvironmentURL: "https://x.crm.dynamics.com", TenantID: "t", ClientID: "c"}},
		SecretsSet: []string{secretDataverseClientSecret}}
	var m connectorModel
	m.fromAPI(c, &prior)
	if m.Dataverse.ClientSecret.ValueString() != "s3cret" {
		t.Errorf("a stored secret was not kept: %s", m.Dataverse.ClientSecret)
	}
	if !m.Salesforce.PrivateKey.IsNull() {
		t.Errorf("a secret no longer stored was kept: %s", m.Salesforce.PrivateKey)
	}
	if m.Salesforce.APIVersion.ValueString() != defaultSalesforceAPIVersion || !m.Salesforce.InstanceURL.IsNull() {
		t.Errorf("defaults: api_version %s, instance_url %s", m.Salesforce.APIVersion, m.Salesforce.InstanceURL)
	}
	// The spec round-trips.
	if spec := m.toSpec(); spec.Dataverse.ClientSecret != "s3cret" || spec.Salesforce.LoginURL != c.Salesforce.LoginURL || spec.TeamID != teamA {
		t.Errorf("toSpec = %+v", spec)
	}
}

func TestTableMappingFromAPI_keepsEmptyCollectionsAsConfigured(t *testing.T) {
	ctx := context.Background()
	tm := &api.TableMapping{ID: "map_1", ConnectorID: "con_1", TableConfig: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true},
		EffectiveColumns: []mapping.Column{{Source: "Id", Destination: "contactid", SourceType: "id", Predefined: true, Key: true}}}
	emptyMap, _ := types.MapValue(columnOverrideType, nil)
	emptySet, _ := types.SetValue(types.StringType, nil)
	for _, prior := range []*tableMappingModel{
		nil,
		{Columns: types.MapNull(columnOverrideType), ExcludeColumns: types.SetNull(types.StringType)},
		{Columns: emptyMap, ExcludeColumns: emptySet},
	} {
		var m tableMappingModel
		if d := m.fromAPI(ctx, tm, prior); d.HasError() {
			t.Fatal(d)
		}
		wantNull := prior == nil || prior.Columns.IsNull()
		if m.Columns.IsNull() != wantNull || m.ExcludeColumns.IsNull() != wantNull {
			t.Errorf("prior %v: columns null %v, exclude null %v", prior, m.Columns.IsNull(), m.ExcludeColumns.IsNull())
		}
		if m.DestinationTable.ValueString() != "contact" || m.DeleteBehaviour.ValueString() != mapping.DeleteRow || len(m.EffectiveColumns.Elements()) != 1 {
			t.Errorf("destination %s, delete %s, %d effective columns", m.DestinationTable, m.DeleteBehaviour, len(m.EffectiveColumns.Elements()))
		}
	}
}

func TestSyncStatusFromAPI_reportsProgressAndCompletion(t *testing.T) {
	st := &api.ConnectorStatus{ConnectorID: "con_1", State: api.StateInitialLoad, LatestRevision: 3, DeployedRevision: 3,
		Tables: []api.ConnectorTableStatus{
			{TableStatus: api.TableStatus{Table: "Account", Phase: api.PhaseStreaming}, ReplayAgeSeconds: 12, RetentionSeconds: 259200},
			{TableStatus: api.TableStatus{Table: "Contact", Phase: api.PhaseInitialLoad, LoadDone: 250, LoadTotal: 1000}, ReplayAgeSeconds: 30},
		}}
	m, d := syncStatusFromAPI(st)
	if d.HasError() {
		t.Fatal(d)
	}
	if m.InitialLoadDone.ValueBool() || m.MaxReplayAge.ValueFloat64() != 30 || m.RetentionSeconds.ValueFloat64() != 259200 || !m.Agent.IsNull() {
		t.Errorf("complete %s, max replay age %s, retention %s, agent %s", m.InitialLoadDone, m.MaxReplayAge, m.RetentionSeconds, m.Agent)
	}
	pct := m.Tables.Elements()[1].(types.Object).Attributes()["load_percent"].(types.Float64).ValueFloat64()
	if pct != 25 {
		t.Errorf("load_percent %v, want 25", pct)
	}
	st.Tables[1].Phase = api.PhaseStreaming
	if m, _ = syncStatusFromAPI(st); !m.InitialLoadDone.ValueBool() {
		t.Error("every table streaming is not a complete initial load")
	}
	if m, _ = syncStatusFromAPI(&api.ConnectorStatus{State: api.StateInactive}); m.InitialLoadDone.ValueBool() || m.RetentionSeconds.ValueFloat64() != 72*3600 {
		t.Errorf("no tables: complete %s, retention %s", m.InitialLoadDone, m.RetentionSeconds)
	}
}

func TestWaitHelpers_sayWhatIsNotDone(t *testing.T) {
	agent := &api.AgentInfo{ID: "a1"}
	loading := &api.ConnectorStatus{State: api.StateInitialLoad, DeployedRevision: 4, LatestRevision: 4, Agent: agent,
		Tables:     []api.ConnectorTableStatus{{TableStatus: api.TableStatus{Table: "Contact", Phase: api.PhaseInitialLoad, LoadDone: 10, LoadTotal: 40}}},
		LastErrors: []api.ErrorEntry{{At: time.Unix(0, 0), Table: "Contact", Message: "throttled"}}}
	if !agentDone(loading, 4, waitForRunning) || agentDone(loading, 4, waitForInitialLoad) || agentDone(loading, 5, waitForRunning) {
		t.Error("agentDone disagrees with wait_for")
	}
	msg := notDone(loading, 4, waitForInitialLoad)
	for _, want := range []string{"table Contact is initial_load: 10 of 40 records loaded (25%)", "(Contact): throttled"} {
		if !strings.Contains(msg, want) {
			t.Errorf("notDone lacks %q:\n%s", want, msg)
		}
	}
	if msg := notDone(loading, 5, waitForRunning); !strings.Contains(msg, "the agent runs revision 4, not 5") {
		t.Errorf("notDone for an older revision:\n%s", msg)
	}
	if msg := notDone(&api.ConnectorStatus{State: api.StateDeploying, Reason: "waiting for an agent"}, 1, waitForRunning); !strings.Contains(msg, "no agent runs the connector (state deploying: waiting for an agent)") {
		t.Errorf("notDone without an agent:\n%s", msg)
	}
}

func TestPreflightFailedMessage_listsEveryFailingCheck(t *testing.T) {
	checks := []api.PreflightCheck{
		{Name: "salesforce_credentials", OK: true, Message: "ok"},
		{Name: "team_privileges", Message: "missing prvCreateContact, prvWriteContact"},
		{Name: "change_topics", Message: "/data/ContactChangeEvent is not enabled"},
		{Name: "data_size", OK: true, Warning: true, Message: "12 GB is above the 10 GB guidance"},
		{Name: "mappings", Message: "Contact → contact: columns.jobtitle.source: Salesforce field Contact.Titel does not exist",
			Caveats: []string{"Contact → contact: use_predefined_mappings: LastName holds up to 80 characters but lastname takes 50"}},
	}
	msg := preflightFailedMessage("con_1", checks, "fallback")
	for _, want := range []string{"3 preflight check(s) failed", "team_privileges: missing prvCreateContact, prvWriteContact",
		"change_topics: /data/ContactChangeEvent is not enabled", "Caveats, which do not block activation", "data_size"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	// The errors come first, the caveats after them, apart.
	errs, caveats, _ := strings.Cut(msg, "Caveats, which do not block activation")
	if !strings.Contains(errs, "Contact.Titel does not exist") || strings.Contains(errs, "LastName holds up to") || !strings.Contains(caveats, "LastName holds up to") {
		t.Errorf("errors and caveats are not separated:\n%s", msg)
	}
	if strings.Contains(msg, "salesforce_credentials") {
		t.Errorf("a passed check is listed:\n%s", msg)
	}
}

func TestAssessHealth(t *testing.T) {
	now := time.Now()
	long, recent := now.Add(-time.Hour), now.Add(-10*time.Second)
	cases := []struct {
		st          api.ConnectorStatus
		activatedAt *time.Time
		want        string
	}{
		{api.ConnectorStatus{State: api.StateStreaming, Agent: &api.AgentInfo{}}, &long, healthy},
		{api.ConnectorStatus{State: api.StateDeploying, Agent: &api.AgentInfo{}, DeployedRevision: 3, LatestRevision: 4, Reason: "rolling to revision 4"}, &long, healthy},
		{api.ConnectorStatus{State: api.StateFailed, Reason: "agent stuck on revision 3 of 4"}, &long, "the agent failed: agent stuck on revision 3 of 4"},
		{api.ConnectorStatus{State: api.StateDegraded, Agent: &api.AgentInfo{}, Reason: "Contact: Dataverse refuses the writes: missing privilege prvWriteContact on contact"}, &long,
			"the agent is degraded (some tables failed): Contact: Dataverse refuses the writes: missing privilege prvWriteContact on contact"},
		{api.ConnectorStatus{State: api.StateDeploying}, &recent, healthy},
		{api.ConnectorStatus{State: api.StateDeploying}, &long, "no agent has taken the connector since its activation 1h0m0s ago"},
	}
	for i, tc := range cases {
		if got := assessHealth(&tc.st, tc.activatedAt, now, 2*time.Minute); got != tc.want {
			t.Errorf("case %d: %q, want %q", i, got, tc.want)
		}
	}
}

func TestTuning_roundTripsThroughTheAPIKeepingTheConfiguredSpelling(t *testing.T) {
	configured := &tuningModel{
		BatchSize: types.Int64Value(500), FlushInterval: types.StringValue("250ms"), WriteConcurrency: types.Int64Null(),
		PageSize: types.Int64Value(10000), StatusInterval: types.StringNull(),
		OutOfBandInterval: types.StringValue("90s"), ReconcileInterval: types.StringValue("off"),
	}
	m := connectorModel{Name: types.StringValue("n"), TeamID: types.StringValue(teamA), Tuning: configured}
	spec := m.toSpec()
	want := api.Tuning{BatchSize: 500, FlushInterval: api.Duration(250 * time.Millisecond), PageSize: 10000,
		OutOfBandInterval: api.Duration(90 * time.Second)}
	if spec.Tuning == nil || spec.Tuning.ReconcileInterval >= 0 {
		t.Fatalf("tuning %+v: want reconcile_interval off (negative)", spec.Tuning)
	}
	got := *spec.Tuning
	got.ReconcileInterval = 0
	if got != want {
		t.Errorf("toSpec tuning = %+v, want %+v", got, want)
	}

	// Through JSON, as the control plane stores and returns it ("1m30s", "-1s").
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var stored api.Connector
	if err := json.Unmarshal(b, &stored.ConnectorSpec); err != nil {
		t.Fatal(err)
	}
	// Refresh and apply keep the configured spelling: no diff.
	if back := tuningFromAPI(stored.Tuning, configured); *back != *configured {
		t.Errorf("refresh changed the tuning: %+v, configured %+v", *back, *configured)
	}
	// Import (no prior) writes Go's short form.
	imported := tuningFromAPI(stored.Tuning, nil)
	if imported.OutOfBandInterval.ValueString() != "1m30s" || imported.ReconcileInterval.ValueString() != "off" ||
		imported.FlushInterval.ValueString() != "250ms" || !imported.WriteConcurrency.IsNull() || imported.BatchSize.ValueInt64() != 500 {
		t.Errorf("imported tuning %+v", *imported)
	}
	// A value changed out of band shows as itself.
	stored.Tuning.OutOfBandInterval = api.Duration(6 * time.Hour)
	if v := tuningFromAPI(stored.Tuning, configured).OutOfBandInterval.ValueString(); v != "6h" {
		t.Errorf("out-of-band change read as %q, want 6h", v)
	}

	// No tuning is null; an empty tuning block stays declared; nothing stored and a declared one removed is null.
	empty := &tuningModel{BatchSize: types.Int64Null(), FlushInterval: types.StringNull(), WriteConcurrency: types.Int64Null(),
		PageSize: types.Int64Null(), StatusInterval: types.StringNull(), OutOfBandInterval: types.StringNull(), ReconcileInterval: types.StringNull()}
	if tuningFromAPI(nil, nil) != nil || tuningFromAPI(&api.Tuning{}, empty) != empty || tuningFromAPI(nil, configured) != nil {
		t.Error("an unset tuning is not null, or a declared empty one was not kept")
	}
}

func TestTableMappingFromAPI_roundTripsRepairOutOfBandEdits(t *testing.T) {
	ctx := context.Background()
	for _, repair := range []bool{false, true} {
		tm := &api.TableMapping{ID: "map_1", ConnectorID: "con_1",
			TableConfig: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, RepairOutOfBandEdits: repair}}
		var m tableMappingModel
		if d := m.fromAPI(ctx, tm, nil); d.HasError() {
			t.Fatal(d)
		}
		if m.RepairOutOfBand.ValueBool() != repair {
			t.Errorf("repair %v read as %s", repair, m.RepairOutOfBand)
		}
		spec, d := m.toSpec(ctx)
		if d.HasError() || spec.RepairOutOfBandEdits != repair {
			t.Errorf("repair %v: spec %+v (%v)", repair, spec, d)
		}
	}
}

func TestSyncStatusFromAPI_reportsTheSafeguards(t *testing.T) {
	at := time.Date(2026, 5, 2, 10, 1, 12, 0, time.UTC)
	st := &api.ConnectorStatus{ConnectorID: "con_1", State: api.StateStreaming,
		Backup:           &api.Backup{ID: "bak_1", Trigger: api.BackupTriggerOnDemand, State: api.BackupRunning, Rows: 40, Tables: []api.BackupTable{{Table: "contact", Rows: 40, Estimated: 100}, {Table: "account", Estimated: 20}}},
		ReconcileRequest: &api.ReconcileRequest{ConnectorID: "con_1", RequestID: 3, RequestedAt: at},
		Tables: []api.ConnectorTableStatus{
			{TableStatus: api.TableStatus{Table: "Contact", Phase: api.PhaseStreaming,
				OutOfBand: &api.OutOfBandStatus{Detected: 2, Repaired: 1, Repair: true, CheckedAt: at, Examples: []api.OutOfBandEdit{
					{RecordID: "0038d0000000002AAA", Key: "d368546c-f890-5200-91d6-6a9c0bf04b2e", Columns: []string{"firstname"}, ModifiedBy: "c7bfb900", ModifiedAt: at, Repaired: true}}},
				Reconcile: &api.ReconcileResult{Trigger: api.ReconcileRequested, RequestID: 2, StartedAt: at, FinishedAt: at.Add(time.Second),
					Missing: 1, Different: 2, Healed: 2, Unhealed: 1, SalesforceCalls: 6, DataverseCalls: 3,
					Examples: []api.ReconcileDifference{{Kind: api.DiffMissing, RecordID: "0038d0000000001AAA", Key: "3d5ea74b"}}},
			}},
			{TableStatus: api.TableStatus{Table: "Account", Phase: api.PhaseStreaming,
				OutOfBand: &api.OutOfBandStatus{Detected: 1},
				Reconcile: &api.ReconcileResult{StartedAt: at, FinishedAt: at, Match: true}}},
			{TableStatus: api.TableStatus{Table: "Lead", Phase: api.PhaseStreaming}},
		}}
	m, d := syncStatusFromAPI(st)
	if d.HasError() {
		t.Fatal(d)
	}
	if m.OutOfBandEdits.ValueInt64() != 3 || m.OutOfBandRepaired.ValueInt64() != 1 {
		t.Errorf("out-of-band totals %s, %s; want 3, 1", m.OutOfBandEdits, m.OutOfBandRepaired)
	}
	backup := m.Backup.Attributes()
	if backup["estimated_rows"].(types.Int64).ValueInt64() != 120 || backup["state"].(types.String).ValueString() != api.BackupRunning {
		t.Errorf("backup %v", m.Backup)
	}
	if m.ReconcileRequest.Attributes()["requested_at"].(types.String).ValueString() != "2026-05-02T10:01:12Z" {
		t.Errorf("reconcile request %v", m.ReconcileRequest)
	}
	table := func(i int) map[string]attr.Value { return m.Tables.Elements()[i].(types.Object).Attributes() }
	oob := table(0)["out_of_band"].(types.Object).Attributes()
	edit := oob["examples"].(types.List).Elements()[0].(types.Object).Attributes()
	if edit["record_id"].(types.String).ValueString() != "0038d0000000002AAA" || edit["modified_at"].(types.String).ValueString() != "2026-05-02T10:01:12Z" ||
		!edit["modified_by_name"].(types.String).IsNull() || len(edit["columns"].(types.List).Elements()) != 1 || !oob["repair"].(types.Bool).ValueBool() {
		t.Errorf("out-of-band example %v", edit)
	}
	rec := table(0)["reconcile"].(types.Object).Attributes()
	if rec["result"].(types.String).ValueString() != reconcileDiffered || rec["mismatches"].(types.Int64).ValueInt64() != 3 ||
		rec["healed"].(types.Int64).ValueInt64() != 2 || rec["unhealed"].(types.Int64).ValueInt64() != 1 || rec["salesforce_calls"].(types.Int64).ValueInt64() != 6 {
		t.Errorf("reconcile %v", rec)
	}
	if r := table(1)["reconcile"].(types.Object).Attributes()["result"].(types.String).ValueString(); r != reconcileMatch {
		t.Errorf("a matching reconciliation reads %q", r)
	}
	if !table(2)["out_of_band"].(types.Object).IsNull() || !table(2)["reconcile"].(types.Object).IsNull() {
		t.Error("a table never checked has no null out_of_band and reconcile")
	}
	for _, tc := range []struct {
		r    api.ReconcileResult
		want string
	}{
		{api.ReconcileResult{StartedAt: at}, reconcileRunning},
		{api.ReconcileResult{StartedAt: at, FinishedAt: at, Error: "Bulk job failed"}, reconcileError},
	} {
		if got := reconcileResult(&tc.r); got != tc.want {
			t.Errorf("%+v: result %q, want %q", tc.r, got, tc.want)
		}
	}
	// Nothing to report: the top-level objects are null, the totals 0.
	if m, _ := syncStatusFromAPI(&api.ConnectorStatus{State: api.StateInactive}); !m.Backup.IsNull() || !m.ReconcileRequest.IsNull() || m.OutOfBandEdits.ValueInt64() != 0 {
		t.Errorf("an inactive connector: backup %v, request %v, edits %v", m.Backup, m.ReconcileRequest, m.OutOfBandEdits)
	}
}

func TestWaitHelpers_sayTheFirstSyncBackupHoldsTheAgentBack(t *testing.T) {
	b := &api.Backup{ID: "bak_1", State: api.BackupRunning, Blocking: true, Rows: 1500,
		Tables: []api.BackupTable{{Table: "contact", Rows: 1000, Estimated: 3000}, {Table: "account", Rows: 500, Estimated: 500, Complete: true}}}
	st := &api.ConnectorStatus{State: api.StateBackingUp, Active: true, Backup: b, Reason: "backing up the destination tables before the first sync"}
	if agentDone(st, 1, waitForRunning) {
		t.Error("a connector backing up counts as running")
	}
	line := progressLine(st, 1, 1)
	for _, want := range []string{"backing_up", "bak_1", "1500 of about 3500 rows exported (43%)", "contact 1000 of about 3000 rows", "account 500 rows, done"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line lacks %q: %s", want, line)
		}
	}
	if msg := notDone(st, 1, waitForRunning); !strings.Contains(msg, "the backup before the first sync (bak_1) is running: 1500 of about 3500") ||
		strings.Contains(msg, "no agent runs") {
		t.Errorf("notDone while backing up:\n%s", msg)
	}
	b.State, b.Error = api.BackupRetrying, "dataverse: 401 invalid_client"
	if msg := notDone(st, 1, waitForRunning); !strings.Contains(msg, "failed and will be retried: dataverse: 401 invalid_client") {
		t.Errorf("notDone with a failing backup:\n%s", msg)
	}
}

func TestFirstSyncBackup_convertsTheActivationsBackup(t *testing.T) {
	if v, d := firstSyncBackup(nil); d.HasError() || !v.IsNull() {
		t.Errorf("no backup: %v %v", v, d)
	}
	done := time.Date(2026, 5, 2, 9, 12, 44, 0, time.UTC)
	v, d := firstSyncBackup(&api.Backup{ID: "bak_1", State: api.BackupComplete, Rows: 13, Bytes: 900, Path: "/data/backups/con_1/bak_1",
		Tables: []api.BackupTable{{Table: "contact", Rows: 10}, {Table: "account", Rows: 3}}, CompletedAt: &done})
	if d.HasError() {
		t.Fatal(d)
	}
	a := v.Attributes()
	tables := a["tables"].(types.Map).Elements()
	if a["completed_at"].(types.String).ValueString() != "2026-05-02T09:12:44Z" || tables["contact"].(types.Int64).ValueInt64() != 10 ||
		tables["account"].(types.Int64).ValueInt64() != 3 || a["rows"].(types.Int64).ValueInt64() != 13 {
		t.Errorf("backup %v", v)
	}
}

func TestActivationModifyPlan_backupOptionChangeWarnsItHasNoEffect(t *testing.T) {
	ctx := context.Background()
	r := NewActivationResource().(*activationResource)
	s := resourceSchema(t, r)
	vals := map[string]tftypes.Value{
		"id": str("con_1"), "connector_id": str("con_1"), "wait_for": str("running"), "health": str(healthy),
		"backup_before_first_sync": tftypes.NewValue(tftypes.Bool, true),
	}
	state := tfsdk.State{Schema: s, Raw: rawObject(t, s, vals)}
	vals["backup_before_first_sync"] = tftypes.NewValue(tftypes.Bool, false)
	plan := tfsdk.Plan{Schema: s, Raw: rawObject(t, s, vals)}
	resp := resource.ModifyPlanResponse{Plan: plan}
	r.ModifyPlan(ctx, resource.ModifyPlanRequest{State: state, Plan: plan}, &resp)
	if resp.Diagnostics.WarningsCount() != 1 || !strings.Contains(resp.Diagnostics.Warnings()[0].Detail(), "only its first activation backs up") {
		t.Errorf("want one warning that the option has no effect, got %v", resp.Diagnostics)
	}
	// Another connector: its first activation is ahead, so the option matters and nothing is said.
	vals["connector_id"] = str("con_2")
	plan = tfsdk.Plan{Schema: s, Raw: rawObject(t, s, vals)}
	resp = resource.ModifyPlanResponse{Plan: plan}
	r.ModifyPlan(ctx, resource.ModifyPlanRequest{State: state, Plan: plan}, &resp)
	if len(resp.Diagnostics) != 0 {
		t.Errorf("a new connector's option warned: %v", resp.Diagnostics)
	}
}

// While a table loads, the activation's progress says what the whole load takes at the budget of the
// connector's Dataverse application users and the Salesforce calls it uses, and the time left at the rate the
// agent measures.
func TestProgressLineStatesTheLoadsExpectedDurationAndTimeLeft(t *testing.T) {
	st := &api.ConnectorStatus{State: api.StateInitialLoad, DeployedRevision: 1, Tables: []api.ConnectorTableStatus{
		{TableStatus: api.TableStatus{Table: "Contact", Phase: api.PhaseInitialLoad, LoadDone: 250_000, LoadTotal: 1_000_000, LoadRate: 800, LoadETASeconds: 937.5}},
		{TableStatus: api.TableStatus{Table: "Account", Phase: api.PhaseStreaming, LoadDone: 200_000, LoadTotal: 200_000}},
	}}
	line := progressLine(st, 1, 4)
	for _, want := range []string{
		"Contact initial_load 250000 of 1000000 records loaded (25%) (the whole load: 24 Salesforce API calls, writes about 21 min at the service-protection budget of 4 Dataverse application users (about 200 records/s each)), measured 800 records/s: about 16 min left",
		"Account streaming 200000 of 200000 records loaded (100%)",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "Account streaming 200000 of 200000 records loaded (100%) (") {
		t.Errorf("a streaming table's progress names a load to come:\n%s", line)
	}
}
