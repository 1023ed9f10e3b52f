package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

var (
	_ resource.Resource                     = (*connectorResource)(nil)
	_ resource.ResourceWithConfigure        = (*connectorResource)(nil)
	_ resource.ResourceWithImportState      = (*connectorResource)(nil)
	_ resource.ResourceWithConfigValidators = (*connectorResource)(nil)
	_ resource.ResourceWithValidateConfig   = (*connectorResource)(nil)
	_ resource.ResourceWithModifyPlan       = (*connectorResource)(nil)
)

// Names of the write-only secrets in the API's secrets_set.
const (
	secretSalesforceClientSecret = "salesforce.client_secret"
	secretSalesforcePrivateKey   = "salesforce.private_key"
	secretDataverseClientSecret  = "dataverse.client_secret"
)

// Salesforce authentication flows.
const (
	authJWTBearer         = "jwt_bearer"
	authClientCredentials = "client_credentials"
)

// defaultSalesforceAPIVersion is the REST API version the agent uses when none is configured.
const defaultSalesforceAPIVersion = "62.0"

// NewConnectorResource returns the crmsync_connector resource.
func NewConnectorResource() resource.Resource { return &connectorResource{} }

type connectorResource struct {
	data *providerData
}

type connectorModel struct {
	ID         types.String     `tfsdk:"id"`
	Name       types.String     `tfsdk:"name"`
	TeamID     types.String     `tfsdk:"team_id"`
	Salesforce *salesforceModel `tfsdk:"salesforce"`
	Dataverse  *dataverseModel  `tfsdk:"dataverse"`
	Tuning     *tuningModel     `tfsdk:"tuning"`
}

// tuningModel is the agent's batching, concurrency and safeguard intervals. A null attribute takes the agent's
// default; durations are Go duration strings.
type tuningModel struct {
	BatchSize         types.Int64  `tfsdk:"batch_size"`
	FlushInterval     types.String `tfsdk:"flush_interval"`
	WriteConcurrency  types.Int64  `tfsdk:"write_concurrency"`
	PageSize          types.Int64  `tfsdk:"page_size"`
	StatusInterval    types.String `tfsdk:"status_interval"`
	OutOfBandInterval types.String `tfsdk:"out_of_band_interval"`
	ReconcileInterval types.String `tfsdk:"reconcile_interval"`
}

// Bounds of the tuning attributes: the table of bounds in package api, the one the control plane's API and
// the agent's configuration enforce, so a plan refuses what apply (or the agent) would. Zero, which the API
// reads as "the default", is left to a null attribute instead: the API does not return it, so a configured
// zero would show as a diff on every plan.
var (
	batchSizeBound         = api.BatchSizeBound
	writeConcurrencyBound  = api.WriteConcurrencyBound
	pageSizeBound          = api.PageSizeBound
	flushIntervalBound     = api.FlushIntervalBound
	statusIntervalBound    = api.StatusIntervalBound
	outOfBandIntervalBound = api.OutOfBandIntervalBound
	reconcileIntervalBound = api.ReconcileIntervalBound
)

type salesforceModel struct {
	LoginURL         types.String `tfsdk:"login_url"`
	InstanceURL      types.String `tfsdk:"instance_url"`
	APIVersion       types.String `tfsdk:"api_version"`
	PubSubAddr       types.String `tfsdk:"pubsub_addr"`
	PubSubPlaintext  types.Bool   `tfsdk:"pubsub_plaintext"`
	Auth             types.String `tfsdk:"auth"`
	ClientID         types.String `tfsdk:"client_id"`
	Username         types.String `tfsdk:"username"`
	ClientSecret     types.String `tfsdk:"client_secret"`
	ClientSecretEnv  types.String `tfsdk:"client_secret_env"`
	ClientSecretFile types.String `tfsdk:"client_secret_file"`
	// ClientSecretWO and PrivateKeyWO are write-only: set in the configuration, never in plan or state (null
	// there); their *Version says when to send them again.
	ClientSecretWO        types.String `tfsdk:"client_secret_wo"`
	ClientSecretWOVersion types.Int64  `tfsdk:"client_secret_wo_version"`
	PrivateKey            types.String `tfsdk:"private_key"`
	PrivateKeyEnv         types.String `tfsdk:"private_key_env"`
	PrivateKeyFile        types.String `tfsdk:"private_key_file"`
	PrivateKeyWO          types.String `tfsdk:"private_key_wo"`
	PrivateKeyWOVersion   types.Int64  `tfsdk:"private_key_wo_version"`
	CAFile                types.String `tfsdk:"ca_file"`
}

type dataverseModel struct {
	EnvironmentURL        types.String `tfsdk:"environment_url"`
	AuthorityURL          types.String `tfsdk:"authority_url"`
	TenantID              types.String `tfsdk:"tenant_id"`
	ClientID              types.String `tfsdk:"client_id"`
	ClientSecret          types.String `tfsdk:"client_secret"`
	ClientSecretEnv       types.String `tfsdk:"client_secret_env"`
	ClientSecretFile      types.String `tfsdk:"client_secret_file"`
	ClientSecretWO        types.String `tfsdk:"client_secret_wo"`
	ClientSecretWOVersion types.Int64  `tfsdk:"client_secret_wo_version"`
	CAFile                types.String `tfsdk:"ca_file"`
	// AdditionalUsers are more application users to write with; nil when the attribute is null.
	AdditionalUsers []applicationUserModel `tfsdk:"additional_application_users"`
}

// applicationUserModel is one more Dataverse application user; its secret takes the same four forms as the
// connector's own.
type applicationUserModel struct {
	ClientID              types.String `tfsdk:"client_id"`
	ClientSecret          types.String `tfsdk:"client_secret"`
	ClientSecretEnv       types.String `tfsdk:"client_secret_env"`
	ClientSecretFile      types.String `tfsdk:"client_secret_file"`
	ClientSecretWO        types.String `tfsdk:"client_secret_wo"`
	ClientSecretWOVersion types.Int64  `tfsdk:"client_secret_wo_version"`
}

func (r *connectorResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_connector"
}

func (r *connectorResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	envVar := stringvalidator.RegexMatches(envVarPattern, "must be an environment variable name such as CRMSYNC_DATAVERSE_SECRET")
	resp.Schema = schema.Schema{
		MarkdownDescription: "A crmsync connector: one Salesforce org, one Dataverse environment, how the sync agent authenticates to " +
			"each, and the Dataverse team that owns the rows it writes. Table mappings (`crmsync_table_mapping`) say what is " +
			"synced; `crmsync_activation` starts it.\n\n" +
			"Each secret (the Salesforce client secret and private key, the Dataverse client secret) can be given four ways; only " +
			"the first two keep it out of Terraform state and plans:\n\n" +
			"- a **reference**, `*_env` or `*_file`: the agent reads the secret on its own host, so it never passes through " +
			"Terraform or the control plane's API. Prefer it where you can place the secret on the agent's host (inside a directory " +
			"or under a variable prefix the control plane allows: `crmsync serve --allow-ref-dir`, `--allow-ref-env-prefix`); it " +
			"works with every Terraform and OpenTofu version.\n" +
			"- **write-only**, `*_wo` with `*_wo_version` (Terraform 1.11 and later, OpenTofu 1.11 and later): Terraform sends the " +
			"value to the control plane, which stores it encrypted, and keeps it in neither the plan nor the state. It accepts " +
			"ephemeral values (an `ephemeral` resource of a secrets manager's provider, or a variable with `ephemeral = true`). " +
			"The value is sent when the connector is created and whenever `*_wo_version` changes: bump the version to rotate.\n" +
			"- **inline**, `client_secret` or `private_key`: sensitive, but stored in Terraform state in clear. Kept for older " +
			"CLIs and existing configurations; the plan warns about it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "Connector ID assigned by the control plane (`con_…`).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Unique name of the connector, for example `salesforce-prod`. Can be changed in place.",
				Required:            true,
				Validators: []validator.String{
					stringvalidator.LengthBetween(1, 64),
					stringvalidator.RegexMatches(connectorNamePattern, "must be letters, digits, '.', '_' or '-', starting with a letter or digit"),
				},
			},
			"team_id": schema.StringAttribute{
				MarkdownDescription: "GUID of the Dataverse team that owns the synced rows: every row the agent creates or fully rewrites " +
					"is assigned to it (`ownerid`), and the team must hold create, read, write and append privileges on each " +
					"destination table (and assign, to take rows over). Changing it re-syncs every table so the rows already in " +
					"Dataverse are reassigned to the new team; for an active connector the new team's privileges are checked at plan " +
					"(a team without them fails the plan) and again when the change is applied.",
				Required:   true,
				Validators: []validator.String{guidValidator()},
			},
			"salesforce": schema.SingleNestedAttribute{
				MarkdownDescription: "How the agent reaches and authenticates to the Salesforce org.",
				Required:            true,
				Attributes: map[string]schema.Attribute{
					"login_url": schema.StringAttribute{
						MarkdownDescription: "OAuth login host: `https://login.salesforce.com`, `https://test.salesforce.com` for a sandbox org, " +
							"or the org's My Domain URL. Changing it forces a new connector, because another login host means another org: " +
							"the stored change-stream positions and load checkpoints belong to the old one.",
						Required:      true,
						Validators:    []validator.String{httpURL()},
						PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
					},
					"instance_url": schema.StringAttribute{
						MarkdownDescription: "The org's instance (My Domain) URL. Optional: the token answer names it; set it for the " +
							"client-credentials flow, whose token endpoint lives on the My Domain host.",
						Optional:   true,
						Validators: []validator.String{httpURL()},
					},
					"api_version": schema.StringAttribute{
						MarkdownDescription: "Salesforce REST API version. Defaults to `" + defaultSalesforceAPIVersion + "`.",
						Optional:            true,
						Computed:            true,
						Default:             stringdefault.StaticString(defaultSalesforceAPIVersion),
						Validators:          []validator.String{stringvalidator.RegexMatches(apiVersionPattern, `must look like "62.0"`)},
					},
					"pubsub_addr": schema.StringAttribute{
						MarkdownDescription: "Pub/Sub API `host:port` for Change Data Capture. Defaults to `" + api.DefaultPubSubAddr + "`.",
						Optional:            true,
					},
					"pubsub_plaintext": schema.BoolAttribute{
						MarkdownDescription: "Connect to the Pub/Sub API without TLS. Only for local emulators on loopback; defaults to `false`.",
						Optional:            true,
						Computed:            true,
						Default:             booldefault.StaticBool(false),
					},
					"auth": schema.StringAttribute{
						MarkdownDescription: "OAuth flow: `jwt_bearer` (a connected app's certificate, `username` and a private key) or " +
							"`client_credentials` (a connected app's client secret, with `instance_url`).",
						Required:   true,
						Validators: []validator.String{stringvalidator.OneOf(authJWTBearer, authClientCredentials)},
					},
					"client_id": schema.StringAttribute{
						MarkdownDescription: "Consumer key of the connected app.",
						Required:            true,
						Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
					},
					"username": schema.StringAttribute{
						MarkdownDescription: "Integration user the JWT bearer flow signs in as. Required with `auth = \"jwt_bearer\"`.",
						Optional:            true,
					},
					"client_secret": schema.StringAttribute{
						MarkdownDescription: "Consumer secret of the connected app, inline: sensitive, but **stored in Terraform state**. " +
							"Prefer `client_secret_wo` or a reference (`client_secret_env`, `client_secret_file`); the plan warns.",
						Optional:  true,
						Sensitive: true,
					},
					"client_secret_wo": schema.StringAttribute{
						MarkdownDescription: "Consumer secret of the connected app, write-only (Terraform 1.11+, OpenTofu 1.11+): sent to the control " +
							"plane, kept in neither plan nor state, ephemeral values accepted. Sent at create and whenever " +
							"`client_secret_wo_version` changes.",
						Optional:   true,
						Sensitive:  true,
						WriteOnly:  true,
						Validators: []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("client_secret_wo_version"))},
					},
					"client_secret_wo_version": schema.Int64Attribute{
						MarkdownDescription: "Version of `client_secret_wo`: change it (for example increment it) to send a new value.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.AlsoRequires(path.MatchRelative().AtParent().AtName("client_secret_wo"))},
					},
					"client_secret_env": schema.StringAttribute{
						MarkdownDescription: "Name of an environment variable holding the consumer secret on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{envVar},
					},
					"client_secret_file": schema.StringAttribute{
						MarkdownDescription: "Path of a file holding the consumer secret on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{absolutePath()},
					},
					"private_key": schema.StringAttribute{
						MarkdownDescription: "PEM private key that signs JWT bearer assertions, inline: sensitive, but **stored in Terraform " +
							"state**. Prefer `private_key_file`, `private_key_env` or `private_key_wo`; the plan warns.",
						Optional:   true,
						Sensitive:  true,
						Validators: []validator.String{pemPrivateKey()},
					},
					"private_key_wo": schema.StringAttribute{
						MarkdownDescription: "PEM private key that signs JWT bearer assertions, write-only (Terraform 1.11+, OpenTofu 1.11+): " +
							"sent to the control plane, kept in neither plan nor state, ephemeral values accepted. Sent at create and " +
							"whenever `private_key_wo_version` changes.",
						Optional:  true,
						Sensitive: true,
						WriteOnly: true,
						Validators: []validator.String{pemPrivateKey(),
							stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("private_key_wo_version"))},
					},
					"private_key_wo_version": schema.Int64Attribute{
						MarkdownDescription: "Version of `private_key_wo`: change it (for example increment it) to send a new key.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.AlsoRequires(path.MatchRelative().AtParent().AtName("private_key_wo"))},
					},
					"private_key_env": schema.StringAttribute{
						MarkdownDescription: "Name of an environment variable holding the PEM private key on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{envVar},
					},
					"private_key_file": schema.StringAttribute{
						MarkdownDescription: "Path of the PEM private key file on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{absolutePath()},
					},
					"ca_file": schema.StringAttribute{
						MarkdownDescription: "Path of a PEM CA bundle, on the agent's host, that signed Salesforce's certificates (private endpoints, emulators).",
						Optional:            true,
						Validators:          []validator.String{absolutePath()},
					},
				},
			},
			"dataverse": schema.SingleNestedAttribute{
				MarkdownDescription: "How the agent reaches and authenticates to the Dataverse environment (Microsoft Entra ID client credentials).",
				Required:            true,
				Attributes: map[string]schema.Attribute{
					"environment_url": schema.StringAttribute{
						MarkdownDescription: "Environment URL, for example `https://acme.crm.dynamics.com`. Changing it forces a new connector, " +
							"because another environment is another database: the rows already synced stay in the old one and the new one " +
							"needs a full initial load.",
						Required:      true,
						Validators:    []validator.String{httpURL()},
						PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
					},
					"authority_url": schema.StringAttribute{
						MarkdownDescription: "Microsoft Entra ID authority. Defaults to `https://login.microsoftonline.com`.",
						Optional:            true,
						Validators:          []validator.String{httpURL()},
					},
					"tenant_id": schema.StringAttribute{
						MarkdownDescription: "Microsoft Entra ID tenant (directory) ID.",
						Required:            true,
						Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
					},
					"client_id": schema.StringAttribute{
						MarkdownDescription: "Application (client) ID (a GUID) of the app registration, registered as an application user in the environment.",
						Required:            true,
						Validators:          []validator.String{guidValidator()},
					},
					"client_secret": schema.StringAttribute{
						MarkdownDescription: "Client secret of the app registration, inline: sensitive, but **stored in Terraform state**. " +
							"Prefer `client_secret_wo` or a reference (`client_secret_env`, `client_secret_file`); the plan warns.",
						Optional:  true,
						Sensitive: true,
					},
					"client_secret_wo": schema.StringAttribute{
						MarkdownDescription: "Client secret of the app registration, write-only (Terraform 1.11+, OpenTofu 1.11+): sent to the " +
							"control plane, kept in neither plan nor state, ephemeral values accepted. Sent at create and whenever " +
							"`client_secret_wo_version` changes.",
						Optional:   true,
						Sensitive:  true,
						WriteOnly:  true,
						Validators: []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("client_secret_wo_version"))},
					},
					"client_secret_wo_version": schema.Int64Attribute{
						MarkdownDescription: "Version of `client_secret_wo`: change it (for example increment it) to send a new value.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.AlsoRequires(path.MatchRelative().AtParent().AtName("client_secret_wo"))},
					},
					"client_secret_env": schema.StringAttribute{
						MarkdownDescription: "Name of an environment variable holding the client secret on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{envVar},
					},
					"client_secret_file": schema.StringAttribute{
						MarkdownDescription: "Path of a file holding the client secret on the agent's host.",
						Optional:            true,
						Validators:          []validator.String{absolutePath()},
					},
					"ca_file": schema.StringAttribute{
						MarkdownDescription: "Path of a PEM CA bundle, on the agent's host, that signed the environment's and authority's certificates.",
						Optional:            true,
						Validators:          []validator.String{absolutePath()},
					},
					"additional_application_users": additionalUsersAttribute(envVar),
				},
			},
			"tuning": schema.SingleNestedAttribute{
				MarkdownDescription: "How the agent batches, paces and checks its work. Optional: every attribute left out takes the " +
					"agent's default, chosen by measurement. Durations are Go duration strings such as `100ms`, `90s`, `5m` or `6h`; " +
					"the control plane returns them in Go's short form (`1m30s` for `90s`), which is the form to write for an import " +
					"to plan no change. A change is a new connector revision: the agent is redeployed with it.",
				Optional: true,
				Attributes: map[string]schema.Attribute{
					"batch_size": schema.Int64Attribute{
						MarkdownDescription: fmt.Sprintf("Rows per Dataverse write (`UpsertMultiple` targets or `$batch` operations), %d to %d. "+
							"Defaults to %d.", batchSizeBound.Min, batchSizeBound.Max, api.DefaultBatchSize),
						Optional:   true,
						Validators: []validator.Int64{intBetween(batchSizeBound)},
					},
					"flush_interval": schema.StringAttribute{
						MarkdownDescription: fmt.Sprintf("The longest a change waits to be written, from %s to %s. Defaults to `%s`. A change is written as soon as "+
							"its table's writer is free (group commit: what arrives during a write makes the next window), within the change "+
							"windows' share of the Dataverse request budget (10 requests/s per application user); this bounds the wait for "+
							"that share.",
							shortDuration(flushIntervalBound.Min), shortDuration(flushIntervalBound.Max), shortDuration(api.DefaultFlushInterval)),
						Optional:   true,
						Validators: []validator.String{durationIn(flushIntervalBound)},
					},
					"write_concurrency": schema.Int64Attribute{
						MarkdownDescription: fmt.Sprintf("Dataverse writes in flight per table, %d to %d. Defaults to %d.",
							writeConcurrencyBound.Min, writeConcurrencyBound.Max, api.DefaultWriteConcurrency),
						Optional:   true,
						Validators: []validator.Int64{intBetween(writeConcurrencyBound)},
					},
					"page_size": schema.Int64Attribute{
						MarkdownDescription: fmt.Sprintf("Bulk API result page size (`maxRecords`) of initial loads and re-syncs, %d to %d; a "+
							"restarted load re-reads at most one page. Defaults to %d.", pageSizeBound.Min, pageSizeBound.Max, api.DefaultPageSize),
						Optional:   true,
						Validators: []validator.Int64{intBetween(pageSizeBound)},
					},
					"status_interval": schema.StringAttribute{
						MarkdownDescription: fmt.Sprintf("How often the agent reports its status, from %s to %s. Defaults to `%s`.",
							shortDuration(statusIntervalBound.Min), shortDuration(statusIntervalBound.Max), shortDuration(api.DefaultStatusInterval)),
						Optional:   true,
						Validators: []validator.String{durationIn(statusIntervalBound)},
					},
					"out_of_band_interval": schema.StringAttribute{
						MarkdownDescription: fmt.Sprintf("How often each streaming table is checked for synced rows changed in Dataverse by "+
							"someone other than the agent (out-of-band edits, reported in `crmsync_sync_status` and repaired where the table "+
							"mapping sets `repair_out_of_band_edits`), from %s to %s, or `off`. Defaults to `%s`; a check costs one Dataverse "+
							"request per table when nothing changed.",
							shortDuration(outOfBandIntervalBound.Min), shortDuration(outOfBandIntervalBound.Max), shortDuration(api.DefaultOutOfBandInterval)),
						Optional:   true,
						Validators: []validator.String{durationIn(outOfBandIntervalBound)},
					},
					"reconcile_interval": schema.StringAttribute{
						MarkdownDescription: fmt.Sprintf("How often each streaming table is reconciled (row counts and checksums of both sides, "+
							"differences healed; results in `crmsync_sync_status`), from %s to %s, or `off` (on-demand reconciliations, "+
							"`crmsync reconcile`, still run). Defaults to `%s`: a reconciliation reads both sides in full.",
							shortDuration(reconcileIntervalBound.Min), shortDuration(reconcileIntervalBound.Max), shortDuration(api.DefaultReconcileInterval)),
						Optional:   true,
						Validators: []validator.String{durationIn(reconcileIntervalBound)},
					},
				},
			},
		},
	}
}

func (r *connectorResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *connectorResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan, config connectorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...) // write-only values are only in the configuration
	c := clientOf(r.data, &resp.Diagnostics, "Creating a crmsync_connector")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx, append(plan.secrets(), config.secrets()...)...)
	tflog.Debug(ctx, "creating connector", map[string]any{"name": plan.Name.ValueString()})
	spec := plan.toSpec()
	addWriteOnly(&spec, &config, &plan, nil)
	conn, err := c.CreateConnector(ctx, spec)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("creating crmsync_connector (%s)", plan.Name.ValueString()), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "created connector", map[string]any{"id": conn.ID, "revision": conn.Revision})
	state := plan
	state.fromAPI(conn, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *connectorResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state connectorModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Reading a crmsync_connector")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx, state.secrets()...)
	conn, err := c.GetConnector(ctx, state.ID.ValueString())
	if isNotFound(err) {
		tflog.Warn(ctx, "connector no longer exists; removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_connector (%s)", state.ID.ValueString()), describeAPIError(err))
		return
	}
	prior := state
	state.fromAPI(conn, &prior)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *connectorResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state, config connectorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	c := clientOf(r.data, &resp.Diagnostics, "Updating a crmsync_connector")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx, append(append(plan.secrets(), state.secrets()...), config.secrets()...)...)
	id := state.ID.ValueString()
	spec := plan.toSpec()
	addWriteOnly(&spec, &config, &plan, &state)
	conn, err := c.UpdateConnector(ctx, id, spec)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("updating crmsync_connector (%s)", id), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "updated connector", map[string]any{"id": id, "revision": conn.Revision})
	newState := plan
	newState.fromAPI(conn, &plan)
	resp.Diagnostics.Append(resp.State.Set(ctx, &newState)...)
}

func (r *connectorResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state connectorModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	c := clientOf(r.data, &resp.Diagnostics, "Deleting a crmsync_connector")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = r.data.mask(ctx, state.secrets()...)
	id := state.ID.ValueString()
	// The control plane deactivates the connector first; the rows already synced stay in Dataverse.
	if err := c.DeleteConnector(ctx, id); err != nil && !isNotFound(err) {
		resp.Diagnostics.AddError(fmt.Sprintf("deleting crmsync_connector (%s)", id), describeAPIError(err))
		return
	}
	tflog.Info(ctx, "deleted connector", map[string]any{"id": id})
}

// ImportState imports a connector by its ID. Inline secrets cannot be imported (the API never returns them):
// the first plan after import sets them again; credential references import cleanly.
func (r *connectorResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// additionalUsersAttribute is dataverse.additional_application_users: a list of app registrations, each with
// its secret in exactly one of the four forms of the connector's own.
func additionalUsersAttribute(envVar validator.String) schema.ListNestedAttribute {
	sibling := func(name string) path.Expression { return path.MatchRelative().AtParent().AtName(name) }
	return schema.ListNestedAttribute{
		MarkdownDescription: fmt.Sprintf("More Dataverse application users the agent writes with, besides `client_id` (up to %d, "+
			"16 in all). Dataverse keeps its service-protection limits (requests, execution time and concurrent requests per "+
			"5-minute window) per user, so each user adds about one user's throughput: about 200 records/s sustained each "+
			"during a long load. The agent sends each write as the user with the most budget left and moves a throttled "+
			"user's share to the others. Each user is an app registration of the same tenant, added to the environment as "+
			"an application user and a member of the owning team (activation's preflight checks each one). Leave it out "+
			"for one user.", api.MaxAdditionalUsers),
		Optional:   true,
		Validators: []validator.List{listvalidator.SizeBetween(1, api.MaxAdditionalUsers)},
		NestedObject: schema.NestedAttributeObject{
			Attributes: map[string]schema.Attribute{
				"client_id": schema.StringAttribute{
					MarkdownDescription: "Application (client) ID (a GUID) of the app registration; each user is named once.",
					Required:            true,
					Validators:          []validator.String{guidValidator()},
				},
				"client_secret": schema.StringAttribute{
					MarkdownDescription: "Client secret, inline: sensitive, but **stored in Terraform state**. Prefer `client_secret_wo` " +
						"or a reference; the plan warns. Exactly one of `client_secret`, `client_secret_wo`, `client_secret_env` and " +
						"`client_secret_file` is set.",
					Optional:  true,
					Sensitive: true,
					Validators: []validator.String{stringvalidator.ExactlyOneOf(sibling("client_secret_wo"), sibling("client_secret_env"),
						sibling("client_secret_file"))},
				},
				"client_secret_wo": schema.StringAttribute{
					MarkdownDescription: "Client secret, write-only (Terraform 1.11+, OpenTofu 1.11+): kept in neither plan nor state. " +
						"Sent at create and whenever `client_secret_wo_version` changes.",
					Optional:   true,
					Sensitive:  true,
					WriteOnly:  true,
					Validators: []validator.String{stringvalidator.AlsoRequires(sibling("client_secret_wo_version"))},
				},
				"client_secret_wo_version": schema.Int64Attribute{
					MarkdownDescription: "Version of `client_secret_wo`: change it to send a new value.",
					Optional:            true,
					Validators:          []validator.Int64{int64validator.AlsoRequires(sibling("client_secret_wo"))},
				},
				"client_secret_env": schema.StringAttribute{
					MarkdownDescription: "Name of an environment variable holding the client secret on the agent's host.",
					Optional:            true,
					Validators:          []validator.String{envVar},
				},
				"client_secret_file": schema.StringAttribute{
					MarkdownDescription: "Path of a file holding the client secret on the agent's host.",
					Optional:            true,
					Validators:          []validator.String{absolutePath()},
				},
			},
		},
	}
}
