// Package provider implements the crmsync Terraform provider on terraform-plugin-framework.
//
// The provider talks only to the crmsync control plane API, through internal/client. Resources convert
// between their tfsdk models and the api wire types with one converter per type; plan-time mapping
// validation uses the pure rules of internal/mapping (no network) and asks the control plane for the
// live rules.
package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// Environment variables the provider falls back to when an attribute is not set.
const (
	EnvEndpoint = "CRMSYNC_ENDPOINT"
	EnvToken    = "CRMSYNC_TOKEN" //nolint:gosec // the name of the variable that holds the token, not a token
	EnvCAFile   = "CRMSYNC_CA_FILE"
)

var (
	_ provider.Provider              = (*crmsyncProvider)(nil)
	_ provider.ProviderWithFunctions = (*crmsyncProvider)(nil)
)

// New returns a constructor of the provider at the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &crmsyncProvider{version: version} }
}

type crmsyncProvider struct {
	version string
}

type providerModel struct {
	Endpoint types.String `tfsdk:"endpoint"`
	Token    types.String `tfsdk:"token"`
	CAFile   types.String `tfsdk:"ca_file"`
}

// providerData is what Configure hands to resources and data sources. Client is nil when the provider's
// configuration was not known during plan (an endpoint computed by another resource): plan-time static
// validation still runs, everything that needs the control plane says the provider is not configured.
type providerData struct {
	Client *client.Client
	// token is kept only to mask it in every RPC's logger: each RPC gets a fresh logger from Terraform.
	token string
}

// mask returns ctx with a logger that never prints the token or any of the given secrets, whatever field or
// message they end up in.
func (d *providerData) mask(ctx context.Context, secrets ...string) context.Context {
	if d != nil && d.token != "" {
		secrets = append(secrets, d.token)
	}
	return maskSecrets(ctx, secrets...)
}

// maskSecrets masks the secret field keys and every given non-empty value in ctx's logger.
func maskSecrets(ctx context.Context, secrets ...string) context.Context {
	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, secretFieldKeys...)
	var vals []string
	for _, s := range secrets {
		if s != "" {
			vals = append(vals, s)
		}
	}
	if len(vals) > 0 {
		ctx = tflog.MaskAllFieldValuesStrings(ctx, vals...)
		ctx = tflog.MaskMessageStrings(ctx, vals...)
	}
	return ctx
}

// secretFieldKeys are log field keys whose values are always masked.
var secretFieldKeys = []string{"token", "authorization", "client_secret", "private_key"}

func (p *crmsyncProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "crmsync"
	resp.Version = p.version
}

func (p *crmsyncProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Declare Salesforce to Microsoft Dataverse sync connectors, their column mappings and their activation, run by the crmsync control plane (`crmsync serve`).",
		Attributes: map[string]schema.Attribute{
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Base URL of the crmsync control plane API, for example `https://crmsync.internal:8787`, or the URLs of several control-plane replicas separated by commas (`https://cp-0:8787,https://cp-1:8787`), tried in turn: the provider moves to the next one when a replica does not answer. Falls back to the `" + EnvEndpoint + "` environment variable.",
				Optional:            true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "The control plane's operator token (one of the tokens `crmsync serve` was started with; it reaches the public API, never a secret). Falls back to the `" + EnvToken + "` environment variable, which keeps it out of configuration files.",
				Optional:            true,
				Sensitive:           true,
			},
			"ca_file": schema.StringAttribute{
				MarkdownDescription: "Path of a PEM file with the CA certificate(s) that signed the control plane's TLS certificate, added to the system pool. Falls back to `" + EnvCAFile + "`.",
				Optional:            true,
			},
		},
	}
}

// Configure builds the one API client every resource uses and checks it with an authenticated call, so a
// wrong endpoint or token fails once, clearly, instead of in every resource.
func (p *crmsyncProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.Endpoint.IsUnknown() || cfg.Token.IsUnknown() || cfg.CAFile.IsUnknown() {
		// Known only after apply (for example from another resource's output): resources still validate
		// their configuration statically during plan.
		tflog.Warn(ctx, "crmsync provider configuration is not known yet; the control plane is not contacted during this plan")
		resp.ResourceData, resp.DataSourceData = &providerData{}, &providerData{}
		return
	}
	endpoint := valueOrEnv(cfg.Endpoint, EnvEndpoint)
	token := valueOrEnv(cfg.Token, EnvToken)
	caFile := valueOrEnv(cfg.CAFile, EnvCAFile)
	ctx = maskSecrets(ctx, token)

	if endpoint == "" {
		resp.Diagnostics.AddAttributeError(path.Root("endpoint"), "Missing crmsync control plane endpoint",
			"Set endpoint in the provider block or the "+EnvEndpoint+" environment variable to the control plane's URL, for example https://crmsync.internal:8787.")
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "Missing crmsync control plane token",
			"Set token in the provider block or, better, the "+EnvToken+" environment variable to the API token `crmsync serve` was started with.")
	}
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := client.New(client.Config{
		Endpoint:  endpoint,
		Token:     token,
		CAFile:    caFile,
		UserAgent: fmt.Sprintf("terraform-provider-crmsync/%s (+terraform %s)", p.version, req.TerraformVersion),
	})
	if err != nil {
		attr := path.Root("endpoint")
		if strings.Contains(err.Error(), "ca_file") {
			attr = path.Root("ca_file")
		}
		resp.Diagnostics.AddAttributeError(attr, "Invalid crmsync provider configuration", err.Error())
		return
	}
	tflog.Debug(ctx, "checking the crmsync control plane", map[string]any{"endpoint": c.Endpoint()})
	if err := checkControlPlane(ctx, c); err != nil {
		resp.Diagnostics.AddError("Cannot use the crmsync control plane at "+c.Endpoint(), err.Error())
		return
	}
	data := &providerData{Client: c, token: token}
	resp.ResourceData, resp.DataSourceData = data, data
}

// checkControlPlane tells an unreachable control plane from a rejected token: /healthz needs no token, the
// connector list does.
func checkControlPlane(ctx context.Context, c *client.Client) error {
	if _, err := c.Health(ctx); err != nil {
		var apiErr *client.Error
		if !errors.As(err, &apiErr) {
			return fmt.Errorf("the control plane is unreachable: %w. Check that `crmsync serve` runs there and that endpoint (or %s) is right", err, EnvEndpoint)
		}
		return fmt.Errorf("the control plane's health check failed: %w", err)
	}
	if _, err := c.ListConnectors(ctx); err != nil {
		if errors.Is(err, client.ErrUnauthenticated) {
			return fmt.Errorf("the control plane rejected the token (HTTP 401): set token (or %s) to the API token `crmsync serve` was started with", EnvToken)
		}
		return fmt.Errorf("an authenticated call to the control plane failed: %w", err)
	}
	return nil
}

func valueOrEnv(v types.String, env string) string {
	if !v.IsNull() && v.ValueString() != "" {
		return v.ValueString()
	}
	return os.Getenv(env)
}

func (p *crmsyncProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewConnectorResource,
		NewTableMappingResource,
		NewActivationResource,
	}
}

func (p *crmsyncProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewSyncStatusDataSource,
		NewPredefinedMappingsDataSource,
		NewConnectorDataSource,
	}
}

func (p *crmsyncProvider) Functions(context.Context) []func() function.Function {
	return []func() function.Function{
		NewSalesforceIDToGUIDFunction,
	}
}
