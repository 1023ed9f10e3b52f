package provider

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

var (
	_ datasource.DataSource              = (*connectorDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*connectorDataSource)(nil)
)

// NewConnectorDataSource returns the crmsync_connector data source.
func NewConnectorDataSource() datasource.DataSource { return &connectorDataSource{} }

type connectorDataSource struct {
	data *providerData
}

type connectorDataModel struct {
	Name       types.String         `tfsdk:"name"`
	ID         types.String         `tfsdk:"id"`
	TeamID     types.String         `tfsdk:"team_id"`
	Revision   types.Int64          `tfsdk:"revision"`
	SecretsSet types.Set            `tfsdk:"secrets_set"`
	Salesforce *salesforceDataModel `tfsdk:"salesforce"`
	Dataverse  *dataverseDataModel  `tfsdk:"dataverse"`
	CreatedAt  types.String         `tfsdk:"created_at"`
	UpdatedAt  types.String         `tfsdk:"updated_at"`
}

type salesforceDataModel struct {
	LoginURL         types.String `tfsdk:"login_url"`
	InstanceURL      types.String `tfsdk:"instance_url"`
	APIVersion       types.String `tfsdk:"api_version"`
	PubSubAddr       types.String `tfsdk:"pubsub_addr"`
	Auth             types.String `tfsdk:"auth"`
	ClientID         types.String `tfsdk:"client_id"`
	Username         types.String `tfsdk:"username"`
	ClientSecretEnv  types.String `tfsdk:"client_secret_env"`
	ClientSecretFile types.String `tfsdk:"client_secret_file"`
	PrivateKeyEnv    types.String `tfsdk:"private_key_env"`
	PrivateKeyFile   types.String `tfsdk:"private_key_file"`
}

type dataverseDataModel struct {
	EnvironmentURL   types.String    `tfsdk:"environment_url"`
	AuthorityURL     types.String    `tfsdk:"authority_url"`
	TenantID         types.String    `tfsdk:"tenant_id"`
	ClientID         types.String    `tfsdk:"client_id"`
	ClientSecretEnv  types.String    `tfsdk:"client_secret_env"`
	ClientSecretFile types.String    `tfsdk:"client_secret_file"`
	AdditionalUsers  []userDataModel `tfsdk:"additional_application_users"`
}

type userDataModel struct {
	ClientID         types.String `tfsdk:"client_id"`
	ClientSecretEnv  types.String `tfsdk:"client_secret_env"`
	ClientSecretFile types.String `tfsdk:"client_secret_file"`
}

func (d *connectorDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_connector"
}

func (d *connectorDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a connector by name, for configurations that add tables to, or watch, a connector managed " +
			"elsewhere. Inline secrets are never returned; `secrets_set` says which are stored.",
		Attributes: map[string]schema.Attribute{
			"name":     schema.StringAttribute{Required: true, MarkdownDescription: "Connector name."},
			"id":       str("Connector ID."),
			"team_id":  str("GUID of the Dataverse team that owns the synced rows."),
			"revision": schema.Int64Attribute{Computed: true, MarkdownDescription: "The connector's latest configuration revision."},
			"secrets_set": schema.SetAttribute{Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Inline secrets stored by the control plane, for example `dataverse.client_secret`."},
			"salesforce": schema.SingleNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Salesforce settings (no secrets).",
				Attributes: map[string]schema.Attribute{
					"login_url":          str("OAuth login host."),
					"instance_url":       str("Instance (My Domain) URL."),
					"api_version":        str("REST API version."),
					"pubsub_addr":        str("Pub/Sub API address."),
					"auth":               str("OAuth flow."),
					"client_id":          str("Connected app consumer key."),
					"username":           str("Integration user (JWT bearer)."),
					"client_secret_env":  str("Environment variable of the consumer secret."),
					"client_secret_file": str("File of the consumer secret."),
					"private_key_env":    str("Environment variable of the private key."),
					"private_key_file":   str("File of the private key."),
				},
			},
			"dataverse": schema.SingleNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Dataverse settings (no secrets).",
				Attributes: map[string]schema.Attribute{
					"environment_url":    str("Environment URL."),
					"authority_url":      str("Microsoft Entra ID authority."),
					"tenant_id":          str("Tenant ID."),
					"client_id":          str("Application (client) ID."),
					"client_secret_env":  str("Environment variable of the client secret."),
					"client_secret_file": str("File of the client secret."),
					"additional_application_users": schema.ListNestedAttribute{
						Computed:            true,
						MarkdownDescription: "More application users the agent writes with (no secrets; an inline one is in `secrets_set`).",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"client_id":          str("Application (client) ID."),
							"client_secret_env":  str("Environment variable of the client secret."),
							"client_secret_file": str("File of the client secret."),
						}},
					},
				},
			},
			"created_at": str("When the connector was created (RFC 3339)."),
			"updated_at": str("When it last changed (RFC 3339)."),
		},
	}
}

func (d *connectorDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *connectorDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg connectorDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	c := clientOf(d.data, &resp.Diagnostics, "Reading the crmsync_connector data source")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = d.data.mask(ctx)
	name := cfg.Name.ValueString()
	conn, err := c.FindConnector(ctx, name)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_connector (%s)", name), describeAPIError(err))
		return
	}
	out, diags := connectorDataFromAPI(ctx, conn)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}

func connectorDataFromAPI(ctx context.Context, c *api.Connector) (connectorDataModel, diag.Diagnostics) {
	secrets := append([]string{}, c.SecretsSet...)
	sort.Strings(secrets)
	set, diags := types.SetValueFrom(ctx, types.StringType, secrets)
	sf, dv := c.Salesforce, c.Dataverse
	return connectorDataModel{
		Name:       types.StringValue(c.Name),
		ID:         types.StringValue(c.ID),
		TeamID:     types.StringValue(c.TeamID),
		Revision:   types.Int64Value(c.Revision),
		SecretsSet: set,
		Salesforce: &salesforceDataModel{
			LoginURL:         types.StringValue(sf.LoginURL),
			InstanceURL:      stringOrNull(sf.InstanceURL),
			APIVersion:       stringOrNull(sf.APIVersion),
			PubSubAddr:       stringOrNull(sf.PubSubAddr),
			Auth:             types.StringValue(sf.Auth),
			ClientID:         types.StringValue(sf.ClientID),
			Username:         stringOrNull(sf.Username),
			ClientSecretEnv:  stringOrNull(sf.ClientSecretEnv),
			ClientSecretFile: stringOrNull(sf.ClientSecretFile),
			PrivateKeyEnv:    stringOrNull(sf.PrivateKeyEnv),
			PrivateKeyFile:   stringOrNull(sf.PrivateKeyFile),
		},
		Dataverse: &dataverseDataModel{
			EnvironmentURL:   types.StringValue(dv.EnvironmentURL),
			AuthorityURL:     stringOrNull(dv.AuthorityURL),
			TenantID:         types.StringValue(dv.TenantID),
			ClientID:         types.StringValue(dv.ClientID),
			ClientSecretEnv:  stringOrNull(dv.ClientSecretEnv),
			ClientSecretFile: stringOrNull(dv.ClientSecretFile),
			AdditionalUsers:  usersData(dv.AdditionalUsers),
		},
		CreatedAt: timeString(c.CreatedAt),
		UpdatedAt: timeString(c.UpdatedAt),
	}, diags
}

func usersData(users []api.DataverseApplicationUser) []userDataModel {
	out := []userDataModel{}
	for _, u := range users {
		out = append(out, userDataModel{ClientID: types.StringValue(u.ClientID),
			ClientSecretEnv: stringOrNull(u.ClientSecretEnv), ClientSecretFile: stringOrNull(u.ClientSecretFile)})
	}
	return out
}
