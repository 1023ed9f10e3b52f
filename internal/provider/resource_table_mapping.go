package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

var (
	_ resource.Resource                   = (*tableMappingResource)(nil)
	_ resource.ResourceWithConfigure      = (*tableMappingResource)(nil)
	_ resource.ResourceWithImportState    = (*tableMappingResource)(nil)
	_ resource.ResourceWithValidateConfig = (*tableMappingResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*tableMappingResource)(nil)
)

// NewTableMappingResource returns the crmsync_table_mapping resource.
func NewTableMappingResource() resource.Resource { return &tableMappingResource{} }

type tableMappingResource struct {
	data *providerData
}

type tableMappingModel struct {
	ID               types.String `tfsdk:"id"`
	ConnectorID      types.String `tfsdk:"connector_id"`
	SourceTable      types.String `tfsdk:"source_table"`
	DestinationTable types.String `tfsdk:"destination_table"`
	UsePredefined    types.Bool   `tfsdk:"use_predefined_mappings"`
	Columns          types.Map    `tfsdk:"columns"`         // of columnOverrideModel
	ExcludeColumns   types.Set    `tfsdk:"exclude_columns"` // of string
	DeleteBehaviour  types.String `tfsdk:"delete_behaviour"`
	RepairOutOfBand  types.Bool   `tfsdk:"repair_out_of_band_edits"`
	EffectiveColumns types.Map    `tfsdk:"effective_columns"` // of effectiveColumnModel, by destination
}

type columnOverrideModel struct {
	Source   types.String `tfsdk:"source"`
	Truncate types.Bool   `tfsdk:"truncate"`
}

type effectiveColumnModel struct {
	Source          types.String `tfsdk:"source"`
	Destination     types.String `tfsdk:"destination"`
	SourceType      types.String `tfsdk:"source_type"`
	DestinationType types.String `tfsdk:"destination_type"`
	Predefined      types.Bool   `tfsdk:"predefined"`
}

var (
	columnOverrideType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"source":   types.StringType,
		"truncate": types.BoolType,
	}}
	effectiveColumnType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"source":           types.StringType,
		"destination":      types.StringType,
		"source_type":      types.StringType,
		"destination_type": types.StringType,
		"predefined":       types.BoolType,
	}}
)

func (r *tableMappingResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_table_mapping"
}

func (r *tableMappingResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "One synced table of a connector: a Salesforce object copied into a Dataverse table, starting from the " +
			"predefined column mappings (Contact → contact, Account → account), with column overrides keyed by destination column, " +
			"exclusions, and what a Salesforce delete does.\n\n" +
			"Mapping problems fail or warn during `plan`, at the attribute at fault: rules that need only the configuration " +
			"(unknown standard columns, incompatible types, required columns left unmapped, Virtual or EntityName destinations, " +
			"text longer than its destination) run without network; rules that need the live Salesforce describe and Dataverse " +
			"metadata (custom fields and columns) ask the control plane, and degrade to a warning when it cannot answer. When the " +
			"connector is active, that live check also re-runs the preflight checks the change affects (the team's privileges on " +
			"the tables, the change topic) and fails the plan with the ones that fail, as the apply would be refused. The plan " +
			"also warns about consequences: added columns or tables re-sync existing records (with an estimate), removed ones stop " +
			"being updated.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Table mapping ID assigned by the control plane (`map_…`).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"connector_id": schema.StringAttribute{
				MarkdownDescription: "ID of the connector this table belongs to. Changing it forces a new mapping, because a mapping's " +
					"checkpoints and change-stream position belong to its connector.",
				Required:      true,
				Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"source_table": schema.StringAttribute{
				MarkdownDescription: "Salesforce object to sync, for example `Contact` or `Account` (Change Data Capture must be enabled " +
					"for it). Changing it forces a new mapping: another object has its own records, checkpoints and change stream.",
				Required:      true,
				Validators:    []validator.String{apiNameValidator()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"destination_table": schema.StringAttribute{
				MarkdownDescription: "Dataverse table (logical name) the rows are written to. Defaults to the predefined pairing " +
					"(`Contact` → `contact`, `Account` → `account`), otherwise the lower-cased object name. Changing it forces a new " +
					"mapping: the rows already written stay in the old table and the new one needs a full initial load.",
				Optional:   true,
				Computed:   true,
				Validators: []validator.String{tableNameValidator()},
				PlanModifiers: []planmodifier.String{
					defaultDestinationTable{},
					stringplanmodifier.RequiresReplace(),
				},
			},
			"use_predefined_mappings": schema.BoolAttribute{
				MarkdownDescription: "Start from the predefined column mappings of the table (see the `crmsync_predefined_mappings` " +
					"data source). Defaults to `true`. With `false` only the primary key and `columns` are synced.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"columns": schema.MapNestedAttribute{
				MarkdownDescription: "Column overrides keyed by destination column (Dataverse logical name): each adds a column to the " +
					"mapping or replaces the source of a predefined one. A map, so the order of columns never causes a diff. Removing " +
					"every override resets the table to its predefined mappings.",
				Optional:   true,
				Validators: []validator.Map{mapvalidator.KeysAre(logicalNameValidator())},
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"source": schema.StringAttribute{
							MarkdownDescription: "Salesforce field (API name) that feeds the column, for example `Region__c`.",
							Required:            true,
							Validators:          []validator.String{apiNameValidator()},
						},
						"truncate": schema.BoolAttribute{
							MarkdownDescription: "Cut text longer than the destination column's maximum length instead of " +
								"dead-lettering the record. Defaults to `false`; without it a source longer than its destination is a plan warning.",
							Optional: true,
							Computed: true,
							Default:  booldefault.StaticBool(false),
						},
					},
				},
			},
			"exclude_columns": schema.SetAttribute{
				MarkdownDescription: "Destination columns (logical names) removed from the predefined mappings, for example `[\"fax\"]`.",
				Optional:            true,
				ElementType:         types.StringType,
				Validators:          []validator.Set{setvalidator.ValueStringsAre(logicalNameValidator())},
			},
			"delete_behaviour": schema.StringAttribute{
				MarkdownDescription: "What a Salesforce delete does to the Dataverse row: `delete` (the default, as the original " +
					"connector does), `deactivate` (set it inactive) or `ignore` (leave it).",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(mapping.DeleteRow),
				Validators: []validator.String{stringvalidator.OneOf(mapping.DeleteRow, mapping.DeleteDeactivate, mapping.DeleteIgnore)},
			},
			"repair_out_of_band_edits": schema.BoolAttribute{
				MarkdownDescription: "Rewrite, from Salesforce, synced rows that someone other than the agent changed in Dataverse. " +
					"Defaults to `false`. The agent checks each streaming table for such out-of-band edits every " +
					"`tuning.out_of_band_interval` of the connector (1 minute by default) and reports them either way, with who changed " +
					"which columns and when (the `crmsync_sync_status` data source's `tables[*].out_of_band`); with `true` it also " +
					"rewrites those rows with the values Salesforce holds, as soon as they are found. Edits of columns the mapping does not " +
					"write, and rows that are not a synced record's, are neither reported nor touched. Changing it re-syncs nothing (the " +
					"agent is redeployed at the new revision).",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"effective_columns": schema.MapNestedAttribute{
				MarkdownDescription: "The column mappings the agent applies, keyed by destination column: the predefined mappings with " +
					"the overrides and exclusions applied, as the control plane computes them (the primary key included). Known at plan " +
					"time when the connector already exists, so a plan shows exactly which columns a change adds, re-feeds or drops.",
				Computed: true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"source":           schema.StringAttribute{Computed: true, MarkdownDescription: "Salesforce field."},
						"destination":      schema.StringAttribute{Computed: true, MarkdownDescription: "Dataverse column (logical name)."},
						"source_type":      schema.StringAttribute{Computed: true, MarkdownDescription: "Salesforce field type (describe type), when known."},
						"destination_type": schema.StringAttribute{Computed: true, MarkdownDescription: "Dataverse attribute type, when known."},
						"predefined":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the column comes from the predefined mappings."},
					},
				},
			},
		},
	}
}

func (r *tableMappingResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *tableMappingResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan tableMappingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	c := clientOf(r.data, &resp.Diagnostics, "Creating a crmsync_table_mapping")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	spec, diags := plan.toSpec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	connectorID := plan.ConnectorID.ValueString()
	m, err := c.CreateMapping(ctx, connectorID, spec)
	if err != nil {
		detail := describeAPIError(err)
		if errors.Is(err, client.ErrConflict) {
			if existing := findMappingBySource(ctx, c, connectorID, spec.SourceTable); existing != nil {
				detail += fmt.Sprintf("\n\n%s is already mapped by table mapping %s. Import it instead: terraform import <address> %s",
					spec.SourceTable, existing.ID, existing.ID)
			}
		}
		resp.Diagnostics.AddAttributeError(path.Root("source_table"), fmt.Sprintf("creating crmsync_table_mapping (%s %s)", connectorID, spec.SourceTable), detail)
		return
	}
	tflog.Info(ctx, "created table mapping", map[string]any{"id": m.ID, "source_table": m.SourceTable, "revision": m.Revision})
	state := plan
	resp.Diagnostics.Append(state.fromAPI(ctx, m, &plan)...)
	state.keepPlannedEffective(plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *tableMappingResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state tableMappingModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Reading a crmsync_table_mapping")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	m, err := c.GetMapping(ctx, state.ID.ValueString())
	if isNotFound(err) {
		tflog.Warn(ctx, "table mapping no longer exists; removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_table_mapping (%s)", state.ID.ValueString()), describeAPIError(err))
		return
	}
	prior := state
	resp.Diagnostics.Append(state.fromAPI(ctx, m, &prior)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *tableMappingResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state tableMappingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Updating a crmsync_table_mapping")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	spec, diags := plan.toSpec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	m, err := c.UpdateMapping(ctx, id, spec)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("updating crmsync_table_mapping (%s)", id), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "updated table mapping", map[string]any{"id": id, "revision": m.Revision})
	newState := plan
	resp.Diagnostics.Append(newState.fromAPI(ctx, m, &plan)...)
	newState.keepPlannedEffective(plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &newState)...)
}

func (r *tableMappingResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state tableMappingModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Deleting a crmsync_table_mapping")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	id := state.ID.ValueString()
	if err := c.DeleteMapping(ctx, id); err != nil && !isNotFound(err) {
		resp.Diagnostics.AddError(fmt.Sprintf("deleting crmsync_table_mapping (%s)", id), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "deleted table mapping", map[string]any{"id": id})
}

// ImportState imports a table mapping by its ID (`map_…`) or by `<connector_id>/<source_table>`.
func (r *tableMappingResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	connectorID, source, ok := strings.Cut(req.ID, "/")
	if !ok {
		resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
		return
	}
	c := clientOf(r.data, &resp.Diagnostics, "Importing a crmsync_table_mapping")
	if c == nil {
		return
	}
	m := findMappingBySource(ctx, c, connectorID, source)
	if m == nil {
		resp.Diagnostics.AddError(fmt.Sprintf("importing crmsync_table_mapping (%s)", req.ID),
			fmt.Sprintf("Connector %s has no table mapping of %s. Import by mapping ID (map_…) or <connector_id>/<source_table>.", connectorID, source))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), m.ID)...)
}

// findMappingBySource returns the connector's mapping of a source table, or nil.
func findMappingBySource(ctx context.Context, c *client.Client, connectorID, source string) *api.TableMapping {
	ms, err := c.ListMappings(ctx, connectorID)
	if err != nil {
		return nil
	}
	for i := range ms {
		if strings.EqualFold(ms[i].SourceTable, source) {
			return &ms[i]
		}
	}
	return nil
}

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
		if !state.RepairOutOfBand.ValueBool() && plan.RepairOutOfBand.ValueBool() {
			resp.Diagnostics.AddAttributeWarning(path.Root("repair_out_of_band_edits"), "Edits made in Dataverse will be overwritten",
				repairOnMessage(plan.SourceTable.ValueString(), plan.DestinationTable.ValueString()))
		}
		if plan.sameColumns(state) {
			return // no change to the columns: nothing to validate live, no consequence
		}
	} else if plan.RepairOutOfBand.ValueBool() {
		resp.Diagnostics.AddAttributeWarning(path.Root("repair_out_of_band_edits"), "Edits made in Dataverse will be overwritten",
			repairOnMessage(plan.SourceTable.ValueString(), plan.DestinationTable.ValueString()))
	}
	tc, known, diags := plan.tableConfig(ctx)
	resp.Diagnostics.Append(diags...)
	if !known || resp.Diagnostics.HasError() {
		return
	}
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
		// Without the control plane's answer, assume the connector's other tables stay as they are: a
		// predefined lookup column present before is still backed by its table.
		synced := mapping.SiblingsOf(tc)
		for _, p := range mapping.Predefined(tc.SourceTable) {
			if p.RequiresSynced != "" && containsDestination(before, p.Destination) {
				synced[p.RequiresSynced] = mapping.TableConfig{SourceTable: p.RequiresSynced}.Destination()
			}
		}
		after = effectiveOf(mapping.Effective(tc, synced))
	}
	added, removed := columnChanges(before, after)
	if len(added) > 0 {
		resp.Diagnostics.AddWarning("Columns added: existing records will be re-synced", columnsAddedMessage(tc, added, live.estimate, live.active))
	}
	if len(removed) > 0 {
		resp.Diagnostics.AddWarning("Columns no longer synced", columnsRemovedMessage(tc, removed))
	}
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
		out.estimate.Records = res.EstimatedRecords
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

// tableConfig converts the configured (or planned) mapping to the rules' TableConfig. known is false when a
// value it needs is not known yet (the rules then wait for apply).
func (m *tableMappingModel) tableConfig(ctx context.Context) (tc mapping.TableConfig, known bool, diags diag.Diagnostics) {
	if m.SourceTable.IsUnknown() || m.DestinationTable.IsUnknown() || m.UsePredefined.IsUnknown() ||
		m.Columns.IsUnknown() || m.ExcludeColumns.IsUnknown() || m.DeleteBehaviour.IsUnknown() || m.RepairOutOfBand.IsUnknown() {
		return tc, false, nil
	}
	tc = mapping.TableConfig{
		SourceTable:          m.SourceTable.ValueString(),
		DestinationTable:     m.DestinationTable.ValueString(),
		UsePredefined:        m.UsePredefined.IsNull() || m.UsePredefined.ValueBool(),
		DeleteBehaviour:      m.DeleteBehaviour.ValueString(),
		RepairOutOfBandEdits: m.RepairOutOfBand.ValueBool(),
	}
	if !m.Columns.IsNull() {
		var cols map[string]types.Object
		diags.Append(m.Columns.ElementsAs(ctx, &cols, false)...)
		tc.Columns = make(map[string]mapping.ColumnOverride, len(cols))
		for dest, obj := range cols {
			if obj.IsUnknown() {
				return tc, false, diags
			}
			var o columnOverrideModel
			diags.Append(obj.As(ctx, &o, basetypes.ObjectAsOptions{})...)
			if o.Source.IsUnknown() || o.Truncate.IsUnknown() {
				return tc, false, diags
			}
			tc.Columns[dest] = mapping.ColumnOverride{Source: o.Source.ValueString(), Truncate: o.Truncate.ValueBool()}
		}
	}
	if !m.ExcludeColumns.IsNull() {
		var ex []types.String
		diags.Append(m.ExcludeColumns.ElementsAs(ctx, &ex, false)...)
		for _, e := range ex {
			if e.IsUnknown() {
				return tc, false, diags
			}
			tc.ExcludeColumns = append(tc.ExcludeColumns, e.ValueString())
		}
		sort.Strings(tc.ExcludeColumns) // a set: any stable order
	}
	return tc, !diags.HasError(), diags
}

// toSpec converts a planned model (every value known) to the API's mapping spec.
func (m *tableMappingModel) toSpec(ctx context.Context) (mapping.TableConfig, diag.Diagnostics) {
	tc, known, diags := m.tableConfig(ctx)
	if !known && !diags.HasError() {
		diags.AddError("Table mapping not fully known", "A value of the table mapping is still unknown at apply. This is a bug in the crmsync provider; please report it.")
	}
	return tc, diags
}

// fromAPI sets the model from a stored mapping. Empty and absent collections are the same to the API, so an
// empty map or set configured explicitly (prior) is kept as configured rather than turned into null.
func (m *tableMappingModel) fromAPI(ctx context.Context, tm *api.TableMapping, prior *tableMappingModel) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(tm.ID)
	m.ConnectorID = types.StringValue(tm.ConnectorID)
	m.SourceTable = types.StringValue(tm.SourceTable)
	m.DestinationTable = types.StringValue(tm.Destination())
	m.UsePredefined = types.BoolValue(tm.UsePredefined)
	behaviour := tm.DeleteBehaviour
	if behaviour == "" {
		behaviour = mapping.DeleteRow
	}
	m.DeleteBehaviour = types.StringValue(behaviour)
	m.RepairOutOfBand = types.BoolValue(tm.RepairOutOfBandEdits)

	if len(tm.Columns) == 0 && (prior == nil || prior.Columns.IsNull() || prior.Columns.IsUnknown() || len(prior.Columns.Elements()) > 0) {
		m.Columns = types.MapNull(columnOverrideType)
	} else {
		cols := make(map[string]attr.Value, len(tm.Columns))
		for dest, o := range tm.Columns {
			cols[dest] = types.ObjectValueMust(columnOverrideType.AttrTypes, map[string]attr.Value{
				"source":   types.StringValue(o.Source),
				"truncate": types.BoolValue(o.Truncate),
			})
		}
		v, d := types.MapValue(columnOverrideType, cols)
		diags.Append(d...)
		m.Columns = v
	}

	if len(tm.ExcludeColumns) == 0 && (prior == nil || prior.ExcludeColumns.IsNull() || prior.ExcludeColumns.IsUnknown() || len(prior.ExcludeColumns.Elements()) > 0) {
		m.ExcludeColumns = types.SetNull(types.StringType)
	} else {
		ex := append([]string{}, tm.ExcludeColumns...) // a nil slice would make a null set
		v, d := types.SetValueFrom(ctx, types.StringType, ex)
		diags.Append(d...)
		m.ExcludeColumns = v
	}

	v, d := effectiveMap(tm.EffectiveColumns)
	diags.Append(d...)
	m.EffectiveColumns = v
	return diags
}

// effectiveMap keys effective columns by destination: a map, so a change shows as the columns it adds and
// drops rather than as every later column of a list shifting.
func effectiveMap(cols []mapping.Column) (types.Map, diag.Diagnostics) {
	vals := make(map[string]attr.Value, len(cols))
	for _, c := range cols {
		vals[c.Destination] = effectiveColumnValue(c)
	}
	return types.MapValue(effectiveColumnType, vals)
}

// keepPlannedEffective keeps effective columns predicted at plan time. The control plane computes them with
// the same rules, so they differ only when another mapping of the connector changed in the same apply; then
// the next refresh brings the new list, instead of apply failing on a result inconsistent with its plan.
func (m *tableMappingModel) keepPlannedEffective(plan tableMappingModel) {
	if !plan.EffectiveColumns.IsUnknown() && !plan.EffectiveColumns.IsNull() {
		m.EffectiveColumns = plan.EffectiveColumns
	}
}

// effectiveColumns returns the stored effective columns (from state).
func (m *tableMappingModel) effectiveColumns(ctx context.Context) ([]effectiveColumn, diag.Diagnostics) {
	if m.EffectiveColumns.IsNull() || m.EffectiveColumns.IsUnknown() {
		return nil, nil
	}
	var cols map[string]effectiveColumnModel
	diags := m.EffectiveColumns.ElementsAs(ctx, &cols, false)
	dests := slices.Sorted(maps.Keys(cols))
	out := make([]effectiveColumn, len(dests))
	for i, d := range dests {
		out[i] = effectiveColumn{Source: cols[d].Source.ValueString(), Destination: d}
	}
	// The effective columns do not carry truncate: take it from the overrides, as the control plane does.
	if !m.Columns.IsNull() && !m.Columns.IsUnknown() {
		var overrides map[string]columnOverrideModel
		diags.Append(m.Columns.ElementsAs(ctx, &overrides, false)...)
		truncate := map[string]bool{}
		for d, o := range overrides {
			truncate[strings.ToLower(d)] = o.Truncate.ValueBool()
		}
		for i := range out {
			out[i].Truncate = truncate[out[i].Destination]
		}
	}
	return out, diags
}

// sameColumns reports whether the parts of two models that decide what is synced, and how, are equal
// (repair_out_of_band_edits aside: it changes what the agent does about edits made in Dataverse, not what it
// copies, so it needs no live validation and has no consequence for the synced columns).
func (m *tableMappingModel) sameColumns(o *tableMappingModel) bool {
	return m.ConnectorID.Equal(o.ConnectorID) && m.SourceTable.Equal(o.SourceTable) && m.DestinationTable.Equal(o.DestinationTable) &&
		m.UsePredefined.Equal(o.UsePredefined) && m.Columns.Equal(o.Columns) && m.ExcludeColumns.Equal(o.ExcludeColumns) &&
		m.DeleteBehaviour.Equal(o.DeleteBehaviour)
}
