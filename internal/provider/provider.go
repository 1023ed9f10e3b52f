// Package provider implements the crmsync Terraform provider on terraform-plugin-framework.
package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

var _ provider.Provider = (*crmsyncProvider)(nil)

// New returns a constructor of the provider at the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &crmsyncProvider{version: version} }
}

type crmsyncProvider struct {
	version string
}

func (p *crmsyncProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "crmsync"
	resp.Version = p.version
}

func (p *crmsyncProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Declare Salesforce to Microsoft Dataverse sync connectors, their column mappings and their activation, run by the crmsync control plane.",
	}
}

func (p *crmsyncProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}

func (p *crmsyncProvider) Resources(context.Context) []func() resource.Resource { return nil }

func (p *crmsyncProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }
