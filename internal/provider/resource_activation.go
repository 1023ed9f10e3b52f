package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
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
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
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

	st, err := waitForAgent(ctx, c, id, act.DesiredRevision, plan.WaitFor.ValueString(), timeout)
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

// waitForAgent polls the connector's status until its agent runs at least revision (and, for
// waitForInitialLoad, every table streams), the agent fails at that revision, or timeout passes. The errors
// list everything that is not done.
func waitForAgent(ctx context.Context, c *client.Client, id string, revision int64, waitFor string, timeout time.Duration) (*api.ConnectorStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *api.ConnectorStatus
	var lastProgress string
	err := poll(ctx, func() (bool, error) {
		st, err := c.Status(ctx, id)
		if err != nil {
			if isUnreachable(err) {
				tflog.Warn(ctx, "reading the connector status failed; retrying", map[string]any{"error": err.Error()})
				return false, nil
			}
			return false, err
		}
		last = st
		if p := progressLine(st, revision); p != lastProgress {
			lastProgress = p
			tflog.Info(ctx, "waiting for the crmsync agent: "+p, map[string]any{"connector_id": id, "state": st.State, "deployed_revision": st.DeployedRevision})
		}
		if (st.State == api.StateFailed || st.State == api.StateDegraded) && st.DeployedRevision >= revision {
			return false, fmt.Errorf("the agent of connector %s %s at revision %d: %s", id, st.State, st.DeployedRevision, notDone(st, revision, waitFor))
		}
		return agentDone(st, revision, waitFor), nil
	})
	if err == nil {
		return last, nil
	}
	if ctx.Err() != nil && last != nil && last.State == api.StateBackingUp {
		return nil, fmt.Errorf("timed out after %s waiting for the backup before the first sync of connector %s: the agent is "+
			"deployed only once it is complete. Not done:\n%s\n"+
			"The connector stays active and the backup goes on: apply again to keep waiting, or raise timeouts; `crmsync backup list` "+
			"shows its progress. To go without it, deactivate the connector (which cancels the backup) and activate it again: "+
			"a later activation takes no backup", timeout, id, notDone(last, revision, waitFor))
	}
	if ctx.Err() != nil && last != nil {
		return nil, fmt.Errorf("timed out after %s waiting for the agent of connector %s (wait_for = %q). Not done:\n%s\n"+
			"The connector stays active; raise timeouts, or look at `crmsync status %s`", timeout, id, waitFor, notDone(last, revision, waitFor), id)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("timed out after %s waiting for the agent of connector %s: the status could not be read", timeout, id)
	}
	return nil, err
}

// waitAgentGone waits until no agent holds a live lease on the connector (the activation's deployed revision
// is 0), which after a deactivation means the agent drained and stopped.
func waitAgentGone(ctx context.Context, c *client.Client, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return poll(ctx, func() (bool, error) {
		act, err := c.GetActivation(ctx, id)
		if isNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if act.DeployedRevision != 0 {
			tflog.Debug(ctx, "waiting for the agent to stop", map[string]any{"connector_id": id, "revision": act.DeployedRevision})
		}
		return act.DeployedRevision == 0, nil
	})
}

// agentDone reports whether the status satisfies wait_for.
func agentDone(st *api.ConnectorStatus, revision int64, waitFor string) bool {
	if st.Agent == nil || st.DeployedRevision < revision {
		return false
	}
	switch st.State {
	case api.StateStreaming:
	case api.StateInitialLoad, api.StateResyncing:
		if waitFor == waitForInitialLoad {
			return false
		}
	default:
		return false
	}
	if waitFor == waitForInitialLoad {
		for _, t := range st.Tables {
			if t.Phase != api.PhaseStreaming {
				return false
			}
		}
	}
	return true
}

// notDone lists, one per line, what keeps the status from satisfying wait_for, followed by the last errors.
func notDone(st *api.ConnectorStatus, revision int64, waitFor string) string {
	var lines []string
	switch {
	case st.State == api.StateBackingUp && st.Backup != nil:
		lines = append(lines, backupNotDone(st.Backup))
	case st.Agent == nil:
		lines = append(lines, fmt.Sprintf("no agent runs the connector (state %s%s)", st.State, reasonSuffix(st.Reason)))
	case st.DeployedRevision < revision:
		lines = append(lines, fmt.Sprintf("the agent runs revision %d, not %d (state %s%s)", st.DeployedRevision, revision, st.State, reasonSuffix(st.Reason)))
	case st.State != api.StateStreaming && st.State != api.StateInitialLoad && st.State != api.StateResyncing:
		lines = append(lines, fmt.Sprintf("the connector is %s%s", st.State, reasonSuffix(st.Reason)))
	}
	for _, t := range st.Tables {
		switch {
		case t.Phase == api.PhaseFailed:
			lines = append(lines, fmt.Sprintf("table %s failed%s", t.Table, reasonSuffix(cmp.Or(t.Reason, t.LastError))))
		case waitFor == waitForInitialLoad && t.Phase != api.PhaseStreaming:
			lines = append(lines, fmt.Sprintf("table %s is %s: %s", t.Table, t.Phase, loadProgress(t.TableStatus)))
		}
	}
	for _, e := range st.LastErrors {
		table := ""
		if e.Table != "" {
			table = " (" + e.Table + ")"
		}
		lines = append(lines, fmt.Sprintf("error at %s%s: %s", e.At.UTC().Format(time.RFC3339), table, e.Message))
	}
	if len(lines) == 0 {
		lines = append(lines, fmt.Sprintf("the connector is %s", st.State))
	}
	return "  - " + strings.Join(lines, "\n  - ")
}

// backupNotDone says why a first activation's backup holds the agent back, with its progress.
func backupNotDone(b *api.Backup) string {
	if b.State == api.BackupRetrying {
		return fmt.Sprintf("the backup before the first sync (%s) failed and will be retried: %s (%s)", b.ID, b.Error, backupProgress(b))
	}
	return fmt.Sprintf("the backup before the first sync (%s) is %s: %s; the agent is deployed once it is complete", b.ID, b.State, backupProgress(b))
}

// backupProgress is a backup's progress: rows exported of the rows the tables held when it started, per table.
func backupProgress(b *api.Backup) string {
	var estimated int64
	tables := make([]string, 0, len(b.Tables))
	for _, t := range b.Tables {
		estimated += t.Estimated
		switch {
		case t.Complete:
			tables = append(tables, fmt.Sprintf("%s %d rows, done", t.Table, t.Rows))
		case t.Estimated > 0:
			tables = append(tables, fmt.Sprintf("%s %d of about %d rows", t.Table, t.Rows, t.Estimated))
		default:
			tables = append(tables, fmt.Sprintf("%s %d rows", t.Table, t.Rows))
		}
	}
	sort.Strings(tables)
	out := fmt.Sprintf("%d rows exported", b.Rows)
	if estimated > 0 {
		out = fmt.Sprintf("%d of about %d rows exported (%.0f%%)", b.Rows, estimated, min(100, 100*float64(b.Rows)/float64(estimated)))
	}
	if len(tables) > 0 {
		out += " [" + strings.Join(tables, ", ") + "]"
	}
	return out
}

// progressLine is the one-line progress logged while waiting.
func progressLine(st *api.ConnectorStatus, revision int64) string {
	if st.State == api.StateBackingUp && st.Backup != nil {
		return fmt.Sprintf("%s, backup %s %s: %s", st.State, st.Backup.ID, st.Backup.State, backupProgress(st.Backup))
	}
	parts := []string{fmt.Sprintf("%s, revision %d of %d", st.State, st.DeployedRevision, revision)}
	tables := append([]api.ConnectorTableStatus(nil), st.Tables...)
	sort.Slice(tables, func(i, j int) bool { return tables[i].Table < tables[j].Table })
	for _, t := range tables {
		parts = append(parts, fmt.Sprintf("%s %s %s", t.Table, t.Phase, loadProgress(t.TableStatus)))
	}
	return strings.Join(parts, "; ")
}

func loadProgress(t api.TableStatus) string {
	if t.LoadTotal <= 0 {
		return fmt.Sprintf("%d records loaded", t.LoadDone)
	}
	return fmt.Sprintf("%d of %d records loaded (%.0f%%)", t.LoadDone, t.LoadTotal, 100*float64(t.LoadDone)/float64(t.LoadTotal))
}

func preflightFailedMessage(id string, checks []api.PreflightCheck, fallback string) string {
	var failed, warned []string
	for _, ch := range checks {
		switch {
		case !ch.OK:
			failed = append(failed, fmt.Sprintf("  - %s: %s", ch.Name, ch.Message))
			for _, c := range ch.Caveats {
				warned = append(warned, fmt.Sprintf("  - %s: %s", ch.Name, c))
			}
		case ch.Warning:
			warned = append(warned, fmt.Sprintf("  - %s: %s", ch.Name, ch.Message))
		}
	}
	if len(failed) == 0 {
		return fallback
	}
	msg := fmt.Sprintf("Connector %s was not activated: %d preflight check(s) failed. Nothing was deployed.\n%s",
		id, len(failed), strings.Join(failed, "\n"))
	if len(warned) > 0 {
		msg += "\nCaveats, which do not block activation:\n" + strings.Join(warned, "\n")
	}
	return msg
}

// assessHealth says whether an active connector's agent is healthy. The control plane already reports a
// failed agent, and an agent stuck on an older revision past its rollout window, as failed, and an agent
// some of whose tables failed on an error that needs a person as degraded; what it reports
// as deploying is a rollout in progress (an apply that changes a mapping returns before the agent has moved,
// and the plan right after it must be empty), unless no agent has taken the connector within grace of its
// activation.
func assessHealth(st *api.ConnectorStatus, activatedAt *time.Time, now time.Time, grace time.Duration) string {
	switch {
	case st.State == api.StateFailed:
		return "the agent failed" + reasonSuffix(st.Reason)
	case st.State == api.StateDegraded:
		return "the agent is degraded (some tables failed)" + reasonSuffix(st.Reason)
	case st.State == api.StateDeploying && st.Agent == nil && activatedAt != nil && now.Sub(*activatedAt) > grace:
		return fmt.Sprintf("no agent has taken the connector since its activation %s ago", now.Sub(*activatedAt).Round(time.Second)) + reasonSuffix(st.Reason)
	}
	return healthy
}

// firstSyncBackup converts the activation's backup (null when there is none).
func firstSyncBackup(b *api.Backup) (types.Object, diag.Diagnostics) {
	if b == nil {
		return types.ObjectNull(firstSyncBackupType.AttrTypes), nil
	}
	rows := make(map[string]attr.Value, len(b.Tables))
	for _, t := range b.Tables {
		rows[t.Table] = types.Int64Value(t.Rows)
	}
	tables, diags := types.MapValue(types.Int64Type, rows)
	completed := types.StringNull()
	if b.CompletedAt != nil {
		completed = timeString(*b.CompletedAt)
	}
	obj, d := types.ObjectValue(firstSyncBackupType.AttrTypes, map[string]attr.Value{
		"id":           types.StringValue(b.ID),
		"state":        types.StringValue(b.State),
		"rows":         types.Int64Value(b.Rows),
		"bytes":        types.Int64Value(b.Bytes),
		"tables":       tables,
		"path":         types.StringValue(b.Path),
		"completed_at": completed,
	})
	diags.Append(d...)
	return obj, diags
}

func preflightList(checks []api.PreflightCheck) (types.List, diag.Diagnostics) {
	vals := make([]attr.Value, len(checks))
	for i, ch := range checks {
		vals[i] = types.ObjectValueMust(preflightCheckType.AttrTypes, map[string]attr.Value{
			"name":    types.StringValue(ch.Name),
			"ok":      types.BoolValue(ch.OK),
			"warning": types.BoolValue(ch.Warning),
			"message": types.StringValue(ch.Message),
		})
	}
	return types.ListValue(preflightCheckType, vals)
}

// poll calls check every pollInterval (backing off to 5 s) until it reports done, fails, or ctx ends.
func poll(ctx context.Context, check func() (bool, error)) error {
	backoff := retry.Policy{Base: pollInterval, Max: max(pollInterval, 5*time.Second)}
	for n := 0; ; n++ {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if err := retry.Sleep(ctx, backoff.Delay(n)); err != nil {
			return err
		}
	}
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}
