package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

var (
	_ datasource.DataSource              = (*predefinedMappingsDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*predefinedMappingsDataSource)(nil)
)

// NewPredefinedMappingsDataSource returns the crmsync_predefined_mappings data source.
func NewPredefinedMappingsDataSource() datasource.DataSource { return &predefinedMappingsDataSource{} }

type predefinedMappingsDataSource struct {
	data *providerData
}

type predefinedMappingsModel struct {
	SourceTable      types.String `tfsdk:"source_table"`
	DestinationTable types.String `tfsdk:"destination_table"`
	Columns          types.List   `tfsdk:"columns"` // of effectiveColumnType
}

func (d *predefinedMappingsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_predefined_mappings"
}

func (d *predefinedMappingsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The out-of-box column mappings of a Salesforce object (Contact → contact, Account → account): what a " +
			"`crmsync_table_mapping` with `use_predefined_mappings = true` starts from, before overrides and exclusions.",
		Attributes: map[string]schema.Attribute{
			"source_table": schema.StringAttribute{
				MarkdownDescription: "Salesforce object, for example `Contact`.",
				Required:            true,
				Validators:          []validator.String{apiNameValidator()},
			},
			"destination_table": schema.StringAttribute{
				MarkdownDescription: "The Dataverse table the object is predefined to map to.",
				Computed:            true,
			},
			"columns": schema.ListNestedAttribute{
				MarkdownDescription: "The predefined column mappings, primary key first. Reading an object without predefined mappings is an error that lists those that have them.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"source":           schema.StringAttribute{Computed: true, MarkdownDescription: "Salesforce field."},
					"destination":      schema.StringAttribute{Computed: true, MarkdownDescription: "Dataverse column (logical name)."},
					"source_type":      schema.StringAttribute{Computed: true, MarkdownDescription: "Salesforce field type."},
					"destination_type": schema.StringAttribute{Computed: true, MarkdownDescription: "Dataverse attribute type."},
					"predefined":       schema.BoolAttribute{Computed: true, MarkdownDescription: "Always true here."},
				}},
			},
		},
	}
}

func (d *predefinedMappingsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *predefinedMappingsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var cfg predefinedMappingsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	c := clientOf(d.data, &resp.Diagnostics, "Reading crmsync_predefined_mappings")
	if resp.Diagnostics.HasError() || c == nil {
		return
	}
	ctx = d.data.mask(ctx)
	src := cfg.SourceTable.ValueString()
	pm, err := c.PredefinedMappings(ctx, src)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("reading crmsync_predefined_mappings (%s)", src), describeAPIError(err))
		return
	}
	cols := make([]attr.Value, len(pm.Columns))
	for i, col := range pm.Columns {
		cols[i] = effectiveColumnValue(col)
	}
	list, diags := types.ListValue(effectiveColumnType, cols)
	resp.Diagnostics.Append(diags...)
	out := predefinedMappingsModel{SourceTable: cfg.SourceTable, DestinationTable: types.StringValue(pm.DestinationTable), Columns: list}
	resp.Diagnostics.Append(resp.State.Set(ctx, &out)...)
}

// effectiveColumnValue converts one API effective column to its object value.
func effectiveColumnValue(c mapping.Column) attr.Value {
	return types.ObjectValueMust(effectiveColumnType.AttrTypes, map[string]attr.Value{
		"source":           types.StringValue(c.Source),
		"destination":      types.StringValue(c.Destination),
		"source_type":      stringOrNull(c.SourceType),
		"destination_type": stringOrNull(c.DestinationType),
		"predefined":       types.BoolValue(c.Predefined),
	})
}
