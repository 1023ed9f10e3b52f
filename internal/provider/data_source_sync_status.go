package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	_ datasource.DataSource              = (*syncStatusDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*syncStatusDataSource)(nil)
)

// NewSyncStatusDataSource returns the crmsync_sync_status data source.
func NewSyncStatusDataSource() datasource.DataSource { return &syncStatusDataSource{} }

type syncStatusDataSource struct {
	data *providerData
}

type syncStatusModel struct {
	ConnectorID        types.String  `tfsdk:"connector_id"`
	Name               types.String  `tfsdk:"name"`
	Active             types.Bool    `tfsdk:"active"`
	State              types.String  `tfsdk:"state"`
	Reason             types.String  `tfsdk:"reason"`
	LatestRevision     types.Int64   `tfsdk:"latest_revision"`
	DeployedRevision   types.Int64   `tfsdk:"deployed_revision"`
	LagSeconds         types.Float64 `tfsdk:"lag_seconds"`
	MaxReplayAge       types.Float64 `tfsdk:"max_replay_age_seconds"`
	RetentionSeconds   types.Float64 `tfsdk:"retention_seconds"`
	InitialLoadDone    types.Bool    `tfsdk:"initial_load_complete"`
	DeadLetters        types.Int64   `tfsdk:"dead_letters"`
	SalesforceCalls    types.Int64   `tfsdk:"salesforce_calls"`
	DataverseRequests  types.Int64   `tfsdk:"dataverse_requests"`
	DataverseThrottled types.Int64   `tfsdk:"dataverse_throttled"`
	OutOfBandEdits     types.Int64   `tfsdk:"out_of_band_edits"`
	OutOfBandRepaired  types.Int64   `tfsdk:"out_of_band_edits_repaired"`
	Backup             types.Object  `tfsdk:"backup"`
	ReconcileRequest   types.Object  `tfsdk:"reconcile_request"`
	Agent              types.Object  `tfsdk:"agent"`
	Tables             types.List    `tfsdk:"tables"`
	LastErrors         types.List    `tfsdk:"last_errors"`
	UpdatedAt          types.String  `tfsdk:"updated_at"`
}

// Results of a table's last reconciliation, in the reconcile object's result.
const (
	reconcileMatch    = "match"    // both sides held the same rows with the same values
	reconcileDiffered = "differed" // differences were found (and healed, see healed)
	reconcileError    = "error"    // it could not finish (see error)
	reconcileRunning  = "running"  // it has not finished yet
)

// changeEventRetention is how long Salesforce keeps change events (72 h), reported when no table says.
const changeEventRetention = 72 * time.Hour

var (
	agentInfoType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"id":           types.StringType,
		"host":         types.StringType,
		"pid":          types.Int64Type,
		"revision":     types.Int64Type,
		"heartbeat_at": types.StringType,
		"started_at":   types.StringType,
	}}
	tableStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"table":              types.StringType,
		"destination":        types.StringType,
		"phase":              types.StringType,
		"reason":             types.StringType,
		"load_done":          types.Int64Type,
		"load_total":         types.Int64Type,
		"load_percent":       types.Float64Type,
		"received":           types.Int64Type,
		"written":            types.Int64Type,
		"dead_lettered":      types.Int64Type,
		"skipped":            types.Int64Type,
		"lag_seconds":        types.Float64Type,
		"replay_age_seconds": types.Float64Type,
		"retention_seconds":  types.Float64Type,
		"last_error":         types.StringType,
		"out_of_band":        outOfBandType,
		"reconcile":          reconcileType,
	}}
	outOfBandEditType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"record_id":        types.StringType,
		"key":              types.StringType,
		"columns":          types.ListType{ElemType: types.StringType},
		"modified_by":      types.StringType,
		"modified_by_name": types.StringType,
		"modified_at":      types.StringType,
		"repaired":         types.BoolType,
	}}
	outOfBandType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"detected":   types.Int64Type,
		"repaired":   types.Int64Type,
		"repair":     types.BoolType,
		"checked_at": types.StringType,
		"since":      types.StringType,
		"examples":   types.ListType{ElemType: outOfBandEditType},
	}}
	reconcileDifferenceType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"kind":      types.StringType,
		"record_id": types.StringType,
		"key":       types.StringType,
		"columns":   types.ListType{ElemType: types.StringType},
	}}
	reconcileType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"trigger":            types.StringType,
		"request_id":         types.Int64Type,
		"started_at":         types.StringType,
		"finished_at":        types.StringType,
		"result":             types.StringType,
		"match":              types.BoolType,
		"source_rows":        types.Int64Type,
		"destination_rows":   types.Int64Type,
		"mismatches":         types.Int64Type,
		"missing":            types.Int64Type,
		"different":          types.Int64Type,
		"extra":              types.Int64Type,
		"kept":               types.Int64Type,
		"healed":             types.Int64Type,
		"unhealed":           types.Int64Type,
		"ranges":             types.Int64Type,
		"differing_ranges":   types.Int64Type,
		"salesforce_calls":   types.Int64Type,
		"dataverse_requests": types.Int64Type,
		"error":              types.StringType,
		"examples":           types.ListType{ElemType: reconcileDifferenceType},
	}}
	backupTableType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"table":          types.StringType,
		"source_table":   types.StringType,
		"rows":           types.Int64Type,
		"estimated_rows": types.Int64Type,
		"complete":       types.BoolType,
	}}
	backupStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"id":             types.StringType,
		"trigger":        types.StringType,
		"state":          types.StringType,
		"error":          types.StringType,
		"blocking":       types.BoolType,
		"rows":           types.Int64Type,
		"estimated_rows": types.Int64Type,
		"bytes":          types.Int64Type,
		"tables":         types.ListType{ElemType: backupTableType},
		"path":           types.StringType,
		"created_at":     types.StringType,
		"updated_at":     types.StringType,
	}}
	reconcileRequestType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"request_id":   types.Int64Type,
		"requested_at": types.StringType,
	}}
	errorEntryType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"at":      types.StringType,
		"table":   types.StringType,
		"message": types.StringType,
	}}
)

func (d *syncStatusDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_sync_status"
}

func (d *syncStatusDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	num := func(desc string) schema.Int64Attribute {
		return schema.Int64Attribute{Computed: true, MarkdownDescription: desc}
	}
	float := func(desc string) schema.Float64Attribute {
		return schema.Float64Attribute{Computed: true, MarkdownDescription: desc}
	}
	boolean := func(desc string) schema.BoolAttribute {
		return schema.BoolAttribute{Computed: true, MarkdownDescription: desc}
	}
	stringList := func(desc string) schema.ListAttribute {
		return schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "What a connector's agent reports, through the control plane: state, revisions, lag, per-table " +
			"counters and initial-load progress, replay-position age against the 72 h Change Data Capture retention, dead " +
			"letters and the last errors; and the safeguards: the progress of a backup, rows edited in Dataverse behind the " +
			"sync's back (out-of-band edits) and the last reconciliation of each table. Use it in a `check` block to have every " +
			"plan and apply assert the sync is healthy. See the guide " +
			"[Backups, rollback and drift](../guides/backups-rollback-and-drift.md).",
		Attributes: map[string]schema.Attribute{
			"connector_id": schema.StringAttribute{Required: true, MarkdownDescription: "ID of the connector."},
			"name":         computed("Connector name."),
			"active":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the connector is activated."},
			"state": computed("`inactive`, `backing_up` (the first activation's backup runs; the agent is deployed after it), " +
				"`deploying`, `initial_load`, `streaming`, `resyncing`, `degraded` (some tables failed on an error that needs a person, " +
				"such as a missing privilege, while the others sync) or `failed`; `streaming` is the steady state. A permanent error " +
				"shows within 30 seconds, with the whole reason in `reason`, and clears by itself once it is fixed."),
			"reason":            computed("Why the connector is in its state, when it says (for example the failure, or a stuck rollout)."),
			"latest_revision":   num("The connector's latest configuration revision."),
			"deployed_revision": num("The revision the running agent runs (0 when none runs); behind `latest_revision` during a rollout."),
			"lag_seconds":       float("Change Data Capture lag: age of the oldest change not yet written to Dataverse, the largest over the tables."),
			"max_replay_age_seconds": float("Age of the oldest stored replay position over the tables. Past `retention_seconds` the " +
				"change stream cannot resume and the table is fully re-synced."),
			"retention_seconds":     float("Change event retention of Salesforce (72 h)."),
			"initial_load_complete": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether every table finished its initial load (all tables streaming)."},
			"dead_letters":          num("Records Dataverse refused (or that could not be mapped), stored for retry."),
			"salesforce_calls":      num("Salesforce API calls the connector's agents made since its first activation (every revision and restart added up)."),
			"dataverse_requests":    num("Dataverse Web API requests the connector's agents made since its first activation."),
			"dataverse_throttled":   num("Dataverse requests answered 429 (service protection) and retried, since the first activation."),
			"out_of_band_edits": num("Synced rows found changed in Dataverse by someone other than the agent, over every table, since " +
				"the connector's first activation (a row edited twice counts twice). Details per table in `tables[*].out_of_band`."),
			"out_of_band_edits_repaired": num("Of `out_of_band_edits`, the rows rewritten from Salesforce (tables whose mapping sets " +
				"`repair_out_of_band_edits`)."),
			"backup": schema.SingleNestedAttribute{
				Computed: true,
				MarkdownDescription: "The connector's newest backup that is not complete (running, waiting to retry, or the first " +
					"activation's backup the agent waits for), with its progress; null when there is none. Complete backups are " +
					"listed by `crmsync backup list`.",
				Attributes: map[string]schema.Attribute{
					"id":             computed("Backup ID (`bak_…`)."),
					"trigger":        computed("`first_activation` or `on_demand`."),
					"state":          computed("`pending`, `running` or `retrying`."),
					"error":          computed("Why the last attempt failed, while `retrying`."),
					"blocking":       boolean("Whether the backup holds back the agent of the first activation."),
					"rows":           num("Rows exported so far."),
					"estimated_rows": num("Rows the tables held when the backup started (0 when unknown), for progress."),
					"bytes":          num("Compressed size exported so far."),
					"tables": schema.ListNestedAttribute{
						Computed:            true,
						MarkdownDescription: "Per destination table.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"table":          computed("Dataverse table."),
							"source_table":   computed("Salesforce object it is synced from."),
							"rows":           num("Rows exported so far."),
							"estimated_rows": num("Rows the table held when the export started (0 when unknown)."),
							"complete":       boolean("Whether the table is exported."),
						}},
					},
					"path":       computed("The backup's directory on the control plane's host."),
					"created_at": computed("When it started (RFC 3339)."),
					"updated_at": computed("Its last progress (RFC 3339)."),
				},
			},
			"reconcile_request": schema.SingleNestedAttribute{
				Computed: true,
				MarkdownDescription: "The on-demand reconciliation (`crmsync reconcile`) asked for and not yet taken up by the agent; " +
					"null when none is pending.",
				Attributes: map[string]schema.Attribute{
					"request_id":   num("Request number; each table's `reconcile.request_id` reaches it once done."),
					"requested_at": computed("When it was asked for (RFC 3339)."),
				},
			},
			"agent": schema.SingleNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The agent holding the connector's lease; null when none runs.",
				Attributes: map[string]schema.Attribute{
					"id":           computed("Agent ID."),
					"host":         computed("Host the agent runs on."),
					"pid":          num("Process ID."),
					"revision":     num("Revision of its lease."),
					"heartbeat_at": computed("Last heartbeat (RFC 3339)."),
					"started_at":   computed("When it started (RFC 3339)."),
				},
			},
			"tables": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Per-table status, ordered as the agent reports them.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"table":              computed("Salesforce object."),
					"destination":        computed("Dataverse table."),
					"phase":              computed("`pending`, `initial_load`, `streaming`, `resyncing` or `failed`."),
					"reason":             computed("Why a load or re-sync runs, or why the table failed."),
					"load_done":          num("Records written by the current or last load."),
					"load_total":         num("Records the load expects (0 when unknown)."),
					"load_percent":       float("`load_done` as a percentage of `load_total` (100 when streaming)."),
					"received":           num("Records and changes received since the connector's first activation (every agent, every revision, added up)."),
					"written":            num("Records written to Dataverse, since the first activation."),
					"dead_lettered":      num("Records dead-lettered, since the first activation."),
					"skipped":            num("Changes skipped (no mapped field changed, or older than what was written)."),
					"lag_seconds":        float("Now minus the commit time of the last applied change."),
					"replay_age_seconds": float("Age of the stored replay position."),
					"retention_seconds":  float("Retention the replay position is measured against (72 h)."),
					"last_error":         computed("The table's last error, if any."),
					"out_of_band": schema.SingleNestedAttribute{
						Computed: true,
						MarkdownDescription: "Synced rows of the table changed in Dataverse by someone other than the agent since it " +
							"wrote them, as the agent checks every `tuning.out_of_band_interval`; null until the first check.",
						Attributes: map[string]schema.Attribute{
							"detected":   num("Such rows found since the connector's first activation (a row edited twice counts twice)."),
							"repaired":   num("Those rewritten from Salesforce."),
							"repair":     boolean("Whether the table mapping asks for repairs (`repair_out_of_band_edits`)."),
							"checked_at": computed("When the agent last checked (RFC 3339)."),
							"since":      computed("The Dataverse `modifiedon` the checks have looked at up to (RFC 3339)."),
							"examples": schema.ListNestedAttribute{
								Computed:            true,
								MarkdownDescription: "The most recent ones, newest first (at most 10).",
								NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
									"record_id":        computed("Salesforce Id of the record."),
									"key":              computed("Dataverse primary key of the row."),
									"columns":          stringList("Mapped columns whose Dataverse value differs from what Salesforce holds."),
									"modified_by":      computed("ID of the Dataverse user who changed the row (`systemuserid`)."),
									"modified_by_name": computed("That user's name, when known."),
									"modified_at":      computed("When the row was changed (RFC 3339)."),
									"repaired":         boolean("Whether the row was rewritten from Salesforce."),
								}},
							},
						},
					},
					"reconcile": schema.SingleNestedAttribute{
						Computed: true,
						MarkdownDescription: "The table's last reconciliation (row counts and checksums over the mapped columns of both " +
							"sides, drilling down only into the key ranges that differ); null until one ran.",
						Attributes: map[string]schema.Attribute{
							"trigger":     computed("`schedule` (every `tuning.reconcile_interval`) or `request` (`crmsync reconcile`)."),
							"request_id":  num("The on-demand request it answered (0 for a scheduled one)."),
							"started_at":  computed("When it started (RFC 3339)."),
							"finished_at": computed("When it finished (RFC 3339); null while it runs."),
							"result": computed("`" + reconcileMatch + "` (both sides held the same rows and values), `" + reconcileDiffered +
								"` (differences were found: see `mismatches` and `healed`), `" + reconcileError + "` (see `error`) or `" +
								reconcileRunning + "`."),
							"match":              boolean("Whether both sides held the same rows with the same values, before healing."),
							"source_rows":        num("Live Salesforce records the mapping converts."),
							"destination_rows":   num("Dataverse rows."),
							"mismatches":         num("`missing` + `different` + `extra`."),
							"missing":            num("Records with no Dataverse row."),
							"different":          num("Rows with another value in a mapped column."),
							"extra":              num("Synced rows of no live record."),
							"kept":               num("Rows of no live record left alone (not created by the sync, or kept by the delete behaviour)."),
							"healed":             num("Rows re-fetched from Salesforce and written, or deleted, with Dataverse accepting the write."),
							"unhealed":           num("Differences whose rewrite Dataverse refused: the records are dead-lettered with the reason and stay different."),
							"ranges":             num("Key ranges hashed on each side."),
							"differing_ranges":   num("Key ranges whose hashes differed (only they were drilled into)."),
							"salesforce_calls":   num("Salesforce API calls the reconciliation used, healing included."),
							"dataverse_requests": num("Dataverse requests the reconciliation used, healing included."),
							"error":              computed("Why it could not finish, if it could not."),
							"examples": schema.ListNestedAttribute{
								Computed:            true,
								MarkdownDescription: "Some of the records found different.",
								NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
									"kind":      computed("`missing`, `different` or `extra`."),
									"record_id": computed("Salesforce Id (null for extra rows)."),
									"key":       computed("Dataverse primary key."),
									"columns":   stringList("The columns that differ (for `different`)."),
								}},
							},
						},
					},
				}},
			},
			"last_errors": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Recent errors, newest last.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"at":      computed("When (RFC 3339)."),
					"table":   computed("Table concerned, if any."),
					"message": computed("The error."),
				}},
			},
			"updated_at": computed("When the agent last reported (RFC 3339)."),
		},
	}
}

func (d *syncStatusDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *syncStatusDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg syncStatusModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	c := clientOf(d.data, &resp.Diagnostics, "Reading crmsync_sync_status")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = d.data.mask(ctx)
	id := cfg.ConnectorID.ValueString()
	st, err := c.Status(ctx, id)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_sync_status (%s)", id), describeAPIError(err))
		return
	}
	out, diags := syncStatusFromAPI(st)
	resp.Diagnostics.Append(diags...)
	out.ConnectorID = cfg.ConnectorID
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}
