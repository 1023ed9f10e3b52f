package provider

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
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

// planned is what Create and Update need before they call the control plane: its client, the context that
// masks secrets in logs, and the planned mapping; ok is false when diags holds why not.
func (r *tableMappingResource) planned(ctx context.Context, plan tableMappingModel, action string, diags *diag.Diagnostics) (context.Context, *client.Client, mapping.TableConfig, bool) {
	c := clientOf(r.data, diags, action)
	if diags.HasError() || c == nil {
		return ctx, nil, mapping.TableConfig{}, false
	}
	ctx = r.data.mask(ctx)
	spec, d := plan.toSpec(ctx)
	diags.Append(d...)
	return ctx, c, spec, !diags.HasError()
}

// storeWritten stores in state the mapping the control plane answered a create or an update with, keeping
// the effective columns predicted at plan time (keepPlannedEffective).
func storeWritten(ctx context.Context, plan tableMappingModel, m *api.TableMapping, st *tfsdk.State) diag.Diagnostics {
	state := plan
	diags := state.fromAPI(ctx, m, &plan)
	state.keepPlannedEffective(plan)
	return append(diags, st.Set(ctx, &state)...)
}

func (r *tableMappingResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan tableMappingModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	ctx, c, spec, ok := r.planned(ctx, plan, "Creating a crmsync_table_mapping", &resp.Diagnostics)
	if !ok {
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
	resp.Diagnostics.Append(storeWritten(ctx, plan, m, &resp.State)...)
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
	ctx, c, spec, ok := r.planned(ctx, plan, "Updating a crmsync_table_mapping", &resp.Diagnostics)
	if !ok {
		return
	}
	id := state.ID.ValueString()
	m, err := c.UpdateMapping(ctx, id, spec)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("updating crmsync_table_mapping (%s)", id), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "updated table mapping", map[string]any{"id": id, "revision": m.Revision})
	resp.Diagnostics.Append(storeWritten(ctx, plan, m, &resp.State)...)
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
