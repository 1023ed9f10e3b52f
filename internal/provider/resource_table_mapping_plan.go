package provider

import (
	"context"
	"errors"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// ValidateConfig runs the static mapping rules: they need nothing but the configuration, so they also run in
// `terraform validate` and before the provider is configured. It reports their errors only: Terraform calls
// it in its validate walk and again while planning, so a warning here would be printed twice. The warnings
// are ModifyPlan's, once, and only when the mapping is created or its columns change.
func (r *tableMappingResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg tableMappingModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	tc, known, diags := cfg.tableConfig(ctx)
	resp.Diagnostics.Append(diags...)
	if !known || resp.Diagnostics.HasError() {
		return
	}
	addProblems(&resp.Diagnostics, errorsOnly(staticProblems(tc)), tc, nil, false)
}

// ModifyPlan runs the live mapping rules through the control plane and warns about the consequences of the
// change: records to re-sync when a table or column is added, data no longer updated when one is removed.
func (r *tableMappingResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	ctx = r.data.mask(ctx)
	if req.Plan.Raw.IsNull() { // destroy
		var state tableMappingModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if !resp.Diagnostics.HasError() {
			resp.Diagnostics.AddWarning("Table no longer synced",
				tableRemovedMessage(state.SourceTable.ValueString(), state.DestinationTable.ValueString()))
		}
		return
	}
	var plan tableMappingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *tableMappingModel
	if !req.State.Raw.IsNull() {
		state = &tableMappingModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if plan.RepairOutOfBand.ValueBool() && (state == nil || !state.RepairOutOfBand.ValueBool()) {
		resp.Diagnostics.AddAttributeWarning(path.Root("repair_out_of_band_edits"), "Edits made in Dataverse will be overwritten",
			repairOnMessage(plan.SourceTable.ValueString(), plan.DestinationTable.ValueString()))
	}
	if state != nil && plan.sameColumns(state) {
		return // no change to the columns: nothing to validate live, no consequence
	}
	tc, known, diags := plan.tableConfig(ctx)
	resp.Diagnostics.Append(diags...)
	if !known || resp.Diagnostics.HasError() {
		return
	}
	r.planColumns(ctx, plan, state, tc, resp)
}

// planColumns checks a new or changed mapping's columns (live when the control plane can, else statically),
// plans its effective columns and warns about what the change syncs and stops syncing.
func (r *tableMappingResource) planColumns(ctx context.Context, plan tableMappingModel, state *tableMappingModel, tc mapping.TableConfig, resp *resource.ModifyPlanResponse) {
	replacing := state != nil && (!plan.ConnectorID.Equal(state.ConnectorID) || !plan.SourceTable.Equal(state.SourceTable) ||
		!plan.DestinationTable.Equal(state.DestinationTable))
	static := staticProblems(tc)
	live := r.liveCheck(ctx, plan.ConnectorID, tc, static, &resp.Diagnostics)
	if !live.checked {
		// The static rules' warnings, when the live rules (which cover them with the real schemas) did not run;
		// their errors were ValidateConfig's.
		addProblems(&resp.Diagnostics, warningsOnly(static), tc, nil, false)
	}
	var stateID types.String
	if state != nil && !replacing {
		stateID = state.ID
	}
	predicted := r.predictEffective(ctx, plan.ConnectorID, stateID, tc)
	if predicted != nil {
		planned, diags := effectiveMap(predicted)
		resp.Diagnostics.Append(diags...)
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("effective_columns"), planned)...)
	}
	if state == nil || replacing {
		if replacing {
			resp.Diagnostics.AddWarning("Table no longer synced", tableRemovedMessage(state.SourceTable.ValueString(), state.DestinationTable.ValueString()))
		}
		resp.Diagnostics.AddWarning("Table added: existing records will be synced", tableAddedMessage(tc, live.estimate, live.active))
		return
	}
	before, diags := state.effectiveColumns(ctx)
	resp.Diagnostics.Append(diags...)
	after := live.columns
	if predicted != nil {
		after = effectiveOf(predicted)
	}
	if after == nil {
		after = assumedEffective(tc, before)
	}
	added, removed := columnChanges(before, after)
	if len(added) > 0 {
		resp.Diagnostics.AddWarning("Columns added: existing records will be re-synced", columnsAddedMessage(tc, added, live.estimate, live.active))
	}
	if len(removed) > 0 {
		resp.Diagnostics.AddWarning("Columns no longer synced", columnsRemovedMessage(tc, removed))
	}
}

// assumedEffective are the effective columns of a changed mapping without the control plane's answer: the
// connector's other tables are assumed to stay as they are, so a predefined lookup column present before is
// still backed by its table.
func assumedEffective(tc mapping.TableConfig, before []effectiveColumn) []effectiveColumn {
	synced := mapping.SiblingsOf(tc)
	for _, p := range mapping.Predefined(tc.SourceTable) {
		if p.RequiresSynced != "" && containsDestination(before, p.Destination) {
			synced[p.RequiresSynced] = mapping.TableConfig{SourceTable: p.RequiresSynced}.Destination()
		}
	}
	return effectiveOf(mapping.Effective(tc, synced))
}

// predictEffective computes the effective columns the control plane will store for the planned mapping, with
// the rules it uses (mapping.Effective among the connector's synced tables, types from the built-in catalog),
// so the plan shows the exact column changes instead of "known after apply". It needs the connector's other
// mappings and returns nil when they cannot be listed (a connector created by this apply, no control plane).
func (r *tableMappingResource) predictEffective(ctx context.Context, connectorID, id types.String, tc mapping.TableConfig) []mapping.Column {
	if r.data == nil || r.data.Client == nil || connectorID.IsUnknown() || connectorID.IsNull() {
		return nil
	}
	ms, err := r.data.Client.ListMappings(ctx, connectorID.ValueString())
	if err != nil {
		tflog.Debug(ctx, "listing the connector's mappings failed; effective columns are known after apply", map[string]any{"error": err.Error()})
		return nil
	}
	siblings := mapping.Siblings{}
	for _, m := range ms {
		if m.ID != id.ValueString() {
			siblings[m.SourceTable] = m.Destination()
		}
	}
	return mapping.Effective(tc, siblings)
}

// liveResult is what the control plane said about a planned mapping.
type liveResult struct {
	columns  []effectiveColumn // nil when not known
	estimate estimate
	active   *bool // nil when not known
	// checked says the live rules ran and their problems were reported.
	checked bool
}

// liveCheck asks the control plane to validate the mapping against the live Salesforce describe and
// Dataverse metadata. It degrades to a warning when the control plane cannot answer: plan-time validation is
// a help, the activation preflight is the gate.
//
// Live, a name the schemas lack is an error, with the closest known name suggested: the static rules can only
// warn about it (their catalog holds standard names only), and the live error must not be dropped as a
// repeat of that warning.
func (r *tableMappingResource) liveCheck(ctx context.Context, connectorID types.String, tc mapping.TableConfig, static mapping.Problems, diags *diag.Diagnostics) liveResult {
	var out liveResult
	switch {
	case r.data == nil || r.data.Client == nil:
		out.estimate.Why = "the provider is not configured yet"
		diags.AddWarning("Live mapping validation skipped",
			"The crmsync provider's endpoint is not known during this plan, so only the static mapping rules ran; custom fields and columns are checked at apply and activation.")
		return out
	case connectorID.IsUnknown():
		out.estimate.Why = "the connector is created by this apply"
		tflog.Debug(ctx, "live mapping validation skipped: the connector does not exist yet")
		return out
	}
	c := r.data.Client
	res, err := c.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: connectorID.ValueString(), Mapping: tc, Live: true})
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && !isUnreachable(err) && len(problemsOf(apiErr)) > 0 {
			for _, p := range problemsOf(apiErr) {
				diags.AddAttributeError(problemPath(p.Path, tc), "Invalid table mapping (live check)", p.Message)
			}
			out.checked = true
			return out
		}
		why := describeAPIError(err)
		if isNotFound(err) {
			why = "connector " + connectorID.ValueString() + " does not exist (it is recreated by this apply)"
		}
		out.estimate.Why = "live validation failed"
		diags.AddWarning("Live mapping validation skipped",
			"The control plane could not validate this mapping against the live Salesforce and Dataverse schemas, so only the static rules ran: "+why)
		return out
	}
	tflog.Debug(ctx, "live mapping validation", map[string]any{"problems": len(res.Problems), "live": res.Live})
	if res.Live {
		// The static errors were reported by ValidateConfig (the plan stopped there); everything else the
		// live rules say, with the real schemas, replaces what the static rules guessed.
		reported := map[string]bool{}
		for _, p := range errorsOnly(static) {
			reported[problemKey(p)] = true
		}
		addProblems(diags, res.Problems, tc, reported, true)
		out.columns = effectiveOf(res.EffectiveColumns)
		out.checked = true
	}
	if res.EstimatedRecords != nil {
		out.estimate.Records, out.estimate.Load = res.EstimatedRecords, res.EstimatedLoad
	} else {
		out.estimate.Why = "the control plane did not count the records"
	}
	if act, err := c.GetActivation(ctx, connectorID.ValueString()); err == nil {
		out.active = &act.Active
	}
	return out
}

func containsDestination(cols []effectiveColumn, dest string) bool {
	for _, c := range cols {
		if c.Destination == dest {
			return true
		}
	}
	return false
}

// defaultDestinationTable plans the effective destination table when it is not configured, so the plan shows
// it (and RequiresReplace compares real values) instead of "known after apply".
type defaultDestinationTable struct{}

func (defaultDestinationTable) Description(context.Context) string {
	return "defaults to the predefined destination of source_table"
}

func (d defaultDestinationTable) MarkdownDescription(ctx context.Context) string {
	return d.Description(ctx)
}

func (defaultDestinationTable) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() {
		return
	}
	var source types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("source_table"), &source)...)
	if source.IsUnknown() || source.IsNull() {
		return
	}
	resp.PlanValue = types.StringValue(mapping.TableConfig{SourceTable: source.ValueString()}.Destination())
}
