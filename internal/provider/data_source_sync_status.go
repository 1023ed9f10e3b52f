package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
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
	Agent              types.Object  `tfsdk:"agent"`
	Tables             types.List    `tfsdk:"tables"`
	LastErrors         types.List    `tfsdk:"last_errors"`
	UpdatedAt          types.String  `tfsdk:"updated_at"`
}

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
	resp.Schema = schema.Schema{
		MarkdownDescription: "What a connector's agent reports, through the control plane: state, revisions, lag, per-table " +
			"counters and initial-load progress, replay-position age against the 72 h Change Data Capture retention, dead " +
			"letters and the last errors. Use it in a `check` block to have every plan and apply assert the sync is healthy.",
		Attributes: map[string]schema.Attribute{
			"connector_id": schema.StringAttribute{Required: true, MarkdownDescription: "ID of the connector."},
			"name":         computed("Connector name."),
			"active":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the connector is activated."},
			"state": computed("`inactive`, `deploying`, `initial_load`, `streaming`, `resyncing` or `failed`; `streaming` is " +
				"the steady state."),
			"reason":            computed("Why the connector is in its state, when it says (for example the failure, or a stuck rollout)."),
			"latest_revision":   num("The connector's latest configuration revision."),
			"deployed_revision": num("The revision the running agent runs (0 when none runs); behind `latest_revision` during a rollout."),
			"lag_seconds":       float("Change Data Capture lag: age of the oldest change not yet written to Dataverse, the largest over the tables."),
			"max_replay_age_seconds": float("Age of the oldest stored replay position over the tables. Past `retention_seconds` the " +
				"change stream cannot resume and the table is fully re-synced."),
			"retention_seconds":     float("Change event retention of Salesforce (72 h)."),
			"initial_load_complete": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether every table finished its initial load (all tables streaming)."},
			"dead_letters":          num("Records Dataverse refused (or that could not be mapped), stored for retry."),
			"salesforce_calls":      num("Salesforce API calls the agent made."),
			"dataverse_requests":    num("Dataverse Web API requests the agent made."),
			"dataverse_throttled":   num("Dataverse requests answered 429 (service protection) and retried."),
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
					"received":           num("Records and changes received."),
					"written":            num("Records written to Dataverse."),
					"dead_lettered":      num("Records dead-lettered."),
					"skipped":            num("Changes skipped (no mapped field changed, or older than what was written)."),
					"lag_seconds":        float("Now minus the commit time of the last applied change."),
					"replay_age_seconds": float("Age of the stored replay position."),
					"retention_seconds":  float("Retention the replay position is measured against (72 h)."),
					"last_error":         computed("The table's last error, if any."),
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

// syncStatusFromAPI converts the API's connector status.
func syncStatusFromAPI(st *api.ConnectorStatus) (syncStatusModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	m := syncStatusModel{
		ConnectorID:        types.StringValue(st.ConnectorID),
		Name:               types.StringValue(st.Name),
		Active:             types.BoolValue(st.Active),
		State:              types.StringValue(st.State),
		Reason:             types.StringValue(st.Reason),
		LatestRevision:     types.Int64Value(st.LatestRevision),
		DeployedRevision:   types.Int64Value(st.DeployedRevision),
		LagSeconds:         types.Float64Value(st.LagSeconds),
		DeadLetters:        types.Int64Value(st.DeadLetters),
		SalesforceCalls:    types.Int64Value(st.SalesforceCalls),
		DataverseRequests:  types.Int64Value(st.DataverseCalls),
		DataverseThrottled: types.Int64Value(st.Throttled),
		UpdatedAt:          timeString(st.UpdatedAt),
	}
	if st.Agent != nil {
		m.Agent = types.ObjectValueMust(agentInfoType.AttrTypes, map[string]attr.Value{
			"id":           types.StringValue(st.Agent.ID),
			"host":         types.StringValue(st.Agent.Host),
			"pid":          types.Int64Value(int64(st.Agent.PID)),
			"revision":     types.Int64Value(st.Agent.Revision),
			"heartbeat_at": timeString(st.Agent.HeartbeatAt),
			"started_at":   timeString(st.Agent.StartedAt),
		})
	} else {
		m.Agent = types.ObjectNull(agentInfoType.AttrTypes)
	}
	var maxAge, retention float64
	loaded := len(st.Tables) > 0
	tables := make([]attr.Value, len(st.Tables))
	for i, t := range st.Tables {
		pct := 0.0
		switch {
		case t.Phase == api.PhaseStreaming:
			pct = 100
		case t.LoadTotal > 0:
			pct = min(100, 100*float64(t.LoadDone)/float64(t.LoadTotal))
		}
		if t.Phase != api.PhaseStreaming {
			loaded = false
		}
		maxAge = max(maxAge, t.ReplayAgeSeconds)
		retention = max(retention, t.RetentionSeconds)
		tables[i] = types.ObjectValueMust(tableStatusType.AttrTypes, map[string]attr.Value{
			"table":              types.StringValue(t.Table),
			"destination":        types.StringValue(t.Destination),
			"phase":              types.StringValue(t.Phase),
			"reason":             types.StringValue(t.Reason),
			"load_done":          types.Int64Value(t.LoadDone),
			"load_total":         types.Int64Value(t.LoadTotal),
			"load_percent":       types.Float64Value(pct),
			"received":           types.Int64Value(t.Received),
			"written":            types.Int64Value(t.Written),
			"dead_lettered":      types.Int64Value(t.DeadLettered),
			"skipped":            types.Int64Value(t.Skipped),
			"lag_seconds":        types.Float64Value(t.LagSeconds),
			"replay_age_seconds": types.Float64Value(t.ReplayAgeSeconds),
			"retention_seconds":  types.Float64Value(t.RetentionSeconds),
			"last_error":         types.StringValue(t.LastError),
		})
	}
	if retention == 0 {
		retention = changeEventRetention.Seconds()
	}
	m.MaxReplayAge = types.Float64Value(maxAge)
	m.RetentionSeconds = types.Float64Value(retention)
	m.InitialLoadDone = types.BoolValue(loaded)
	var d diag.Diagnostics
	m.Tables, d = types.ListValue(tableStatusType, tables)
	diags.Append(d...)
	errs := make([]attr.Value, len(st.LastErrors))
	for i, e := range st.LastErrors {
		errs[i] = types.ObjectValueMust(errorEntryType.AttrTypes, map[string]attr.Value{
			"at":      timeString(e.At),
			"table":   types.StringValue(e.Table),
			"message": types.StringValue(e.Message),
		})
	}
	m.LastErrors, d = types.ListValue(errorEntryType, errs)
	diags.Append(d...)
	return m, diags
}
