package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

var (
	_ resource.Resource                = (*activationResource)(nil)
	_ resource.ResourceWithConfigure   = (*activationResource)(nil)
	_ resource.ResourceWithImportState = (*activationResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*activationResource)(nil)
)

// What an activation waits for.
const (
	waitForRunning     = "running"      // the agent runs the connector's latest revision
	waitForInitialLoad = "initial_load" // ... and every table finished its initial load
)

// healthy is the health of an activation whose agent runs the latest revision.
const healthy = "healthy"

// Defaults of the timeouts block.
const (
	defaultActivateTimeout   = 20 * time.Minute
	defaultDeactivateTimeout = 5 * time.Minute
)

// rolloutGrace is how long after an activation a plan accepts that no agent has taken the connector yet
// (the supervisor starts one within seconds; a remote agent may take longer to start).
var rolloutGrace = 2 * time.Minute

// pollInterval bounds how often an apply polls the connector status while it waits.
var pollInterval = time.Second

// NewActivationResource returns the crmsync_activation resource.
func NewActivationResource() resource.Resource { return &activationResource{} }

type activationResource struct {
	data *providerData
}

type activationModel struct {
	ID                    types.String   `tfsdk:"id"`
	ConnectorID           types.String   `tfsdk:"connector_id"`
	WaitFor               types.String   `tfsdk:"wait_for"`
	BackupBeforeFirstSync types.Bool     `tfsdk:"backup_before_first_sync"`
	Backup                types.Object   `tfsdk:"backup"`
	Health                types.String   `tfsdk:"health"`
	DeployedRevision      types.Int64    `tfsdk:"deployed_revision"`
	Preflight             types.List     `tfsdk:"preflight"`
	Timeouts              timeouts.Value `tfsdk:"timeouts"`
}

var preflightCheckType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"name":    types.StringType,
	"ok":      types.BoolType,
	"warning": types.BoolType,
	"message": types.StringType,
}}

// firstSyncBackupType is the activation's backup: what a reviewer needs to find it again and roll back to it.
// Once complete, none of it changes, so a refresh never turns it into noise.
var firstSyncBackupType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"id":           types.StringType,
	"state":        types.StringType,
	"rows":         types.Int64Type,
	"bytes":        types.Int64Type,
	"tables":       types.MapType{ElemType: types.Int64Type},
	"path":         types.StringType,
	"completed_at": types.StringType,
}}

func (r *activationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_activation"
}

func (r *activationResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Activates a connector: runs the preflight checks (credentials, change topics, team privileges, " +
			"mappings against the live schemas, API budget, data size), on the connector's first activation backs up the destination " +
			"tables (`backup_before_first_sync`), deploys an agent at the connector's latest revision and waits until it runs (with " +
			"`wait_for = \"initial_load\"`, until every table finished its initial load), logging " +
			"progress. Destroying it deactivates the connector: the agent drains and stops; the data stays in Dataverse.\n\n" +
			"Drift: a connector deactivated out of band disappears from state, so the plan activates it again; an agent that " +
			"failed (or some of whose tables failed), or that still runs an older revision well after a change, shows as an update of `health` that redeploys it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The connector ID (an activation is identified by its connector).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"connector_id": schema.StringAttribute{
				MarkdownDescription: "ID of the connector to activate. Changing it forces a new activation: the old connector is " +
					"deactivated and the new one activated.",
				Required:      true,
				Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"backup_before_first_sync": schema.BoolAttribute{
				MarkdownDescription: "Back up the destination tables before the connector's first sync. Defaults to `true`. On the " +
					"connector's first activation the control plane exports, before any write, the current rows of every destination " +
					"table (the key, every column the connector writes, `modifiedon` and the owner) into gzip-compressed files with a " +
					"manifest under its data directory (`DATA_DIR/backups/<connector id>/<backup id>/`), so that " +
					"`crmsync backup restore` can roll Dataverse back to them. The agent is deployed only once the backup is complete, " +
					"and apply waits for both (bounded by `timeouts`). Only the first activation takes this backup: a later activation " +
					"(after a deactivation, or a replacement of this resource for the same connector) takes none, and changing the value " +
					"afterwards has no effect. With `false` nothing is backed up; `crmsync backup create` takes a backup at any time. " +
					"See the guide [Backups, rollback and drift](../guides/backups-rollback-and-drift.md).",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
			"backup": schema.SingleNestedAttribute{
				MarkdownDescription: "The backup taken before the connector's first sync; null when none was (`backup_before_first_sync = false`, " +
					"or a control plane without backups). Restore it with `crmsync backup restore <id>` once the connector is deactivated.",
				Computed:      true,
				PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
				Attributes: map[string]schema.Attribute{
					"id":     schema.StringAttribute{Computed: true, MarkdownDescription: "Backup ID (`bak_…`), as `crmsync backup list` shows it."},
					"state":  schema.StringAttribute{Computed: true, MarkdownDescription: "`pending`, `running`, `retrying`, `complete` or `cancelled`."},
					"rows":   schema.Int64Attribute{Computed: true, MarkdownDescription: "Rows exported, over every table."},
					"bytes":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Compressed size of the exported files."},
					"tables": schema.MapAttribute{Computed: true, ElementType: types.Int64Type, MarkdownDescription: "Rows exported per destination table."},
					"path":   schema.StringAttribute{Computed: true, MarkdownDescription: "The backup's directory on the control plane's host."},
					"completed_at": schema.StringAttribute{Computed: true, MarkdownDescription: "When the backup completed (RFC 3339); null " +
						"until then."},
				},
			},
			"wait_for": schema.StringAttribute{
				MarkdownDescription: "What create and update wait for: `running` (the default: the agent runs the connector's latest " +
					"revision) or `initial_load` (also every table finished its initial load, so the data is in Dataverse when apply " +
					"returns). Bounded by `timeouts`. Not stored by the control plane: an imported activation starts with `running`.",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(waitForRunning),
				Validators: []validator.String{stringvalidator.OneOf(waitForRunning, waitForInitialLoad)},
			},
			"health": schema.StringAttribute{
				MarkdownDescription: "`healthy` when the agent runs the connector's latest revision; otherwise why not (the agent failed, " +
					"some of its tables failed on an error that needs a person such as a missing privilege, or it is stuck on an older revision). A plan shows an unhealthy activation as an update back to `healthy`, which " +
					"re-runs the preflight checks and redeploys the agent.",
				Computed: true,
			},
			"deployed_revision": schema.Int64Attribute{
				MarkdownDescription: "The connector revision the agent runs, as last read.",
				Computed:            true,
			},
			"preflight": schema.ListNestedAttribute{
				MarkdownDescription: "The preflight checks of the last activation, with their outcome (warnings passed with a caveat).",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"name":    schema.StringAttribute{Computed: true, MarkdownDescription: "Check name, for example `team_privileges`."},
						"ok":      schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the check passed."},
						"warning": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether it passed with a caveat."},
						"message": schema.StringAttribute{Computed: true, MarkdownDescription: "What the check found."},
					},
				},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true,
				CreateDescription: "How long create waits for the agent (default 20m).",
				UpdateDescription: "How long update waits for the agent (default 20m).",
				DeleteDescription: "How long destroy waits for the agent to stop (default 5m).",
			}),
		},
	}
}

func (r *activationResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *activationResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan activationModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	c := clientOf(r.data, &resp.Diagnostics, "Creating a crmsync_activation")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	timeout, diags := plan.Timeouts.Create(ctx, defaultActivateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	state := r.activate(ctx, c, plan, timeout, "creating", &resp.Diagnostics)
	if state != nil {
		resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
	}
}

func (r *activationResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state activationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Reading a crmsync_activation")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	id := state.ConnectorID.ValueString()
	if id == "" { // imported: only the ID is set
		id = state.ID.ValueString()
	}
	// One request: the connector's status carries its activation.
	st, err := c.Status(ctx, id)
	if isNotFound(err) || err == nil && (!st.Active || st.Activation == nil) {
		tflog.Warn(ctx, "connector is not active (deactivated or deleted out of band); removing the activation from state", map[string]any{"connector_id": id})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_activation (%s)", id), describeAPIError(err))
		return
	}
	act := st.Activation
	health := assessHealth(st, act.ActivatedAt, time.Now(), rolloutGrace)
	if health != healthy {
		tflog.Warn(ctx, "activation is unhealthy", map[string]any{"connector_id": id, "health": health})
	}
	state.ID = types.StringValue(id)
	state.ConnectorID = types.StringValue(id)
	if state.WaitFor.IsNull() || state.WaitFor.IsUnknown() {
		state.WaitFor = types.StringValue(waitForRunning)
	}
	state.Health = types.StringValue(health)
	state.DeployedRevision = types.Int64Value(st.DeployedRevision)
	// The control plane stores the option the first activation used; the configured value only matters for
	// that one activation, so it is taken from the control plane on import only (otherwise a later change of
	// the configuration, which has no effect, would show as a diff forever).
	if state.BackupBeforeFirstSync.IsNull() || state.BackupBeforeFirstSync.IsUnknown() {
		state.BackupBeforeFirstSync = types.BoolValue(act.BackupBeforeFirstSync)
	}
	var d diag.Diagnostics
	state.Backup, d = firstSyncBackup(act.Backup)
	resp.Diagnostics.Append(d...)
	state.Preflight, d = preflightList(act.Preflight)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *activationResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan activationModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	c := clientOf(r.data, &resp.Diagnostics, "Updating a crmsync_activation")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	timeout, diags := plan.Timeouts.Update(ctx, defaultActivateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	var prior activationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if h := prior.Health.ValueString(); h != "" && h != healthy {
		// Activating an active connector changes nothing on the control plane, so a redeploy is a
		// deactivation (the agent drains and stops) followed by an activation that re-runs the preflight.
		id := plan.ConnectorID.ValueString()
		tflog.Info(ctx, "redeploying an unhealthy connector", map[string]any{"connector_id": id, "health": h})
		summary := fmt.Sprintf("updating crmsync_activation (%s)", id)
		if _, err := c.SetActivation(ctx, id, false); err != nil {
			resp.Diagnostics.AddError(summary, "Deactivating before the redeploy failed: "+describeAPIError(err))
			return
		}
		// The running agent must be gone first: a failed or stuck agent keeps its lease (and its revision)
		// across a quick deactivate-activate.
		if err := waitAgentGone(ctx, c, id, timeout/2); err != nil {
			resp.Diagnostics.AddError(summary, fmt.Sprintf("The connector is deactivated for the redeploy, but its agent did not stop: %s. "+
				"Stop it (or let its lease expire) and apply again.", err))
			return
		}
	}
	state := r.activate(ctx, c, plan, timeout, "updating", &resp.Diagnostics)
	if state != nil {
		resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
	}
}

func (r *activationResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state activationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Deleting a crmsync_activation")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx)
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeactivateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ConnectorID.ValueString()
	summary := fmt.Sprintf("deleting crmsync_activation (%s)", id)
	if _, err := c.SetActivation(ctx, id, false); err != nil {
		if !isNotFound(err) {
			resp.Diagnostics.AddError(summary, describeAPIError(err))
		}
		return
	}
	tflog.Info(ctx, "deactivated connector; waiting for its agent to stop", map[string]any{"connector_id": id})
	if err := waitAgentGone(ctx, c, id, timeout); err != nil {
		resp.Diagnostics.AddWarning(summary,
			fmt.Sprintf("The connector is deactivated, but its agent had not stopped within %s: %s. It stops at its next heartbeat.", timeout, err))
	}
}

// ImportState imports the activation of a connector by the connector's ID.
func (r *activationResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("connector_id"), req.ID)...)
}

// ModifyPlan turns an unhealthy agent into a planned update: the plan shows health going back to healthy, and
// apply re-runs the preflight checks and redeploys.
func (r *activationResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var state activationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var backupOpt types.Bool
	var connectorID types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("backup_before_first_sync"), &backupOpt)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("connector_id"), &connectorID)...)
	if connectorID.Equal(state.ConnectorID) && !backupOpt.IsUnknown() && !state.BackupBeforeFirstSync.IsNull() &&
		!backupOpt.Equal(state.BackupBeforeFirstSync) {
		resp.Diagnostics.AddAttributeWarning(path.Root("backup_before_first_sync"), "backup_before_first_sync has no effect now",
			fmt.Sprintf("Connector %s was activated already: only its first activation backs up the destination tables, so changing "+
				"backup_before_first_sync changes nothing on the control plane. Take a backup at any time with `crmsync backup create`.",
				state.ConnectorID.ValueString()))
	}
	if state.Health.IsNull() || state.Health.ValueString() == healthy {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("health"), types.StringValue(healthy))...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("deployed_revision"), types.Int64Unknown())...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("preflight"), types.ListUnknown(preflightCheckType))...)
	resp.Diagnostics.AddAttributeWarning(path.Root("health"), "The connector's agent is not healthy",
		fmt.Sprintf("Connector %s: %s. Applying re-runs the preflight checks, redeploys the agent at the latest revision and waits for it.",
			state.ConnectorID.ValueString(), state.Health.ValueString()))
}

// activate activates the connector, waits for the agent as wait_for asks, and returns the new state (nil on
// error, with the diagnostics added).
func (r *activationResource) activate(ctx context.Context, c *client.Client, plan activationModel, timeout time.Duration, verb string, diags *diag.Diagnostics) *activationModel {
	id := plan.ConnectorID.ValueString()
	summary := fmt.Sprintf("%s crmsync_activation (%s)", verb, id)
	backupOpt := plan.BackupBeforeFirstSync.IsNull() || plan.BackupBeforeFirstSync.IsUnknown() || plan.BackupBeforeFirstSync.ValueBool()
	act, err := c.Activate(ctx, id, api.ActivationRequest{Active: true, BackupBeforeFirstSync: &backupOpt})
	if err != nil {
		if errors.Is(err, client.ErrPreflightFailed) {
			diags.AddError(summary, preflightFailedMessage(id, preflightChecks(err), describeAPIError(err)))
			return nil
		}
		diags.AddError(summary, describeAPIError(err))
		return nil
	}
	for _, ch := range act.Preflight {
		if ch.Warning {
			diags.AddWarning(fmt.Sprintf("Preflight check %s passed with a caveat", ch.Name), ch.Message)
		}
	}
	if act.BackupBeforeFirstSync != backupOpt {
		// The control plane keeps the option of the connector's first activation, so a different one means this
		// is not the first: nothing is backed up now whatever the configuration says.
		diags.AddAttributeWarning(path.Root("backup_before_first_sync"), "backup_before_first_sync has no effect now",
			fmt.Sprintf("Connector %s was activated before (with backup_before_first_sync = %t): only its first activation backs up "+
				"the destination tables. Take a backup at any time with `crmsync backup create`.", id, act.BackupBeforeFirstSync))
	}
	if b := act.Backup; b != nil && b.Blocking && b.State != api.BackupComplete {
		tflog.Info(ctx, "backing up the destination tables before the first sync; the agent is deployed once the backup is complete",
			map[string]any{"connector_id": id, "backup_id": b.ID, "path": b.Path})
	}
	tflog.Info(ctx, "activated connector; waiting for its agent", map[string]any{
		"connector_id": id, "desired_revision": act.DesiredRevision, "wait_for": plan.WaitFor.ValueString(), "timeout": timeout.String()})

	users := 1 // for the loads' expected duration; a connector that cannot be read is taken to have one
	if conn, err := c.GetConnector(ctx, id); err == nil {
		users = conn.Dataverse.ApplicationUsers()
	}
	st, err := waitForAgent(ctx, c, id, act.DesiredRevision, plan.WaitFor.ValueString(), timeout, users)
	if err != nil {
		diags.AddError(summary, err.Error())
		return nil
	}
	state := plan
	state.ID = types.StringValue(id)
	state.Health = types.StringValue(healthy)
	state.DeployedRevision = types.Int64Value(st.DeployedRevision)
	// The status read last has the backup as it ended; the activation answer had it as it started.
	backup := act.Backup
	if st.Activation != nil {
		backup = st.Activation.Backup
	}
	var d diag.Diagnostics
	state.Backup, d = firstSyncBackup(backup)
	diags.Append(d...)
	state.Preflight, d = preflightList(act.Preflight)
	diags.Append(d...)
	return &state
}
