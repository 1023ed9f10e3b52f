package provider

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/mapping"
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
	tm := &api.TableMapping{ID: "map_1", ConnectorID: "con_1", MappingSpec: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true},
		EffectiveColumns: []api.EffectiveColumn{{Source: "Id", Destination: "contactid", SourceType: "id", Predefined: true, Key: true}}}
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
	}
	msg := preflightFailedMessage("con_1", checks, "fallback")
	for _, want := range []string{"2 preflight check(s) failed", "team_privileges: missing prvCreateContact, prvWriteContact",
		"change_topics: /data/ContactChangeEvent is not enabled", "Passed with a caveat", "data_size"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
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
		{api.ConnectorStatus{State: api.StateDeploying}, &recent, healthy},
		{api.ConnectorStatus{State: api.StateDeploying}, &long, "no agent has taken the connector since its activation 1h0m0s ago"},
	}
	for i, tc := range cases {
		if got := assessHealth(&tc.st, tc.activatedAt, now, 2*time.Minute); got != tc.want {
			t.Errorf("case %d: %q, want %q", i, got, tc.want)
		}
	}
}
