package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/function"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

var _ function.Function = (*salesforceIDToGUIDFunction)(nil)

// NewSalesforceIDToGUIDFunction returns provider::crmsync::salesforce_id_to_guid.
func NewSalesforceIDToGUIDFunction() function.Function { return &salesforceIDToGUIDFunction{} }

type salesforceIDToGUIDFunction struct{}

func (f *salesforceIDToGUIDFunction) Metadata(_ context.Context, _ function.MetadataRequest, resp *function.MetadataResponse) {
	resp.Name = "salesforce_id_to_guid"
}

func (f *salesforceIDToGUIDFunction) Definition(_ context.Context, _ function.DefinitionRequest, resp *function.DefinitionResponse) {
	resp.Definition = function.Definition{
		Summary: "The Dataverse GUID a Salesforce record Id becomes",
		MarkdownDescription: "Returns the deterministic GUID crmsync writes a Salesforce record as in Dataverse (its primary key, " +
			"and the value of lookups to it): the 15-character Id is converted to its 18-character case-safe form, then " +
			"`UUIDv5(namespace, id18)` with `namespace = UUIDv5(DNS, \"salesforce.crmsync\")`. The same definition is used by " +
			"the sync agent, so the result can address a synced row, for example in a Dataverse URL.",
		Parameters: []function.Parameter{
			function.StringParameter{
				Name:                "id",
				MarkdownDescription: "A Salesforce record Id, 15 or 18 characters, for example `001D000000IqhSL`.",
			},
		},
		Return: function.StringReturn{},
	}
}

func (f *salesforceIDToGUIDFunction) Run(ctx context.Context, req function.RunRequest, resp *function.RunResponse) {
	var id string
	resp.Error = function.ConcatFuncErrors(req.Arguments.Get(ctx, &id))
	if resp.Error != nil {
		return
	}
	g, err := sfid.GUID(id)
	if err != nil {
		resp.Error = function.NewArgumentFuncError(0, err.Error())
		return
	}
	resp.Error = function.ConcatFuncErrors(resp.Result.Set(ctx, g.String()))
}
