package provider

import (
	"context"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

// The example of docs/architecture.md: the runtime, the sandbox and the provider agree on it.
const (
	exampleID15 = "001D000000IqhSL"
	exampleID18 = "001D000000IqhSLIAZ"
	exampleGUID = "bb9ff4c0-591c-5a23-8cbe-566a8191dff5"
)

func runGUID(t *testing.T, id string) (string, *function.FuncError) {
	t.Helper()
	f := NewSalesforceIDToGUIDFunction()
	var def function.DefinitionResponse
	f.Definition(context.Background(), function.DefinitionRequest{}, &def)
	req := function.RunRequest{Arguments: function.NewArgumentsData([]attr.Value{types.StringValue(id)})}
	resp := function.RunResponse{Result: function.NewResultData(types.StringUnknown())}
	f.Run(context.Background(), req, &resp)
	if resp.Error != nil {
		return "", resp.Error
	}
	v, ok := resp.Result.Value().(types.String)
	if !ok {
		t.Fatalf("result is %T, want types.String", resp.Result.Value())
	}
	return v.ValueString(), nil
}

func TestSalesforceIDToGUID_matchesTheDocumentedExample(t *testing.T) {
	for _, id := range []string{exampleID15, exampleID18, "001D000000IqhSLiaz"} {
		got, err := runGUID(t, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got != exampleGUID {
			t.Errorf("salesforce_id_to_guid(%q) = %s, want %s", id, got, exampleGUID)
		}
	}
}

func TestSalesforceIDToGUID_rejectsMalformedIdsOnTheArgument(t *testing.T) {
	for _, id := range []string{"", "001D000000IqhS", "001D000000IqhSL-", "001D000000IqhSLXXX"} {
		_, err := runGUID(t, id)
		if err == nil {
			t.Errorf("salesforce_id_to_guid(%q) succeeded, want an error", id)
			continue
		}
		if err.FunctionArgument == nil || *err.FunctionArgument != 0 {
			t.Errorf("salesforce_id_to_guid(%q): error %q does not point at argument 0", id, err.Text)
		}
	}
}

func TestAccFunctionSalesforceIDToGUID(t *testing.T) {
	accPreCheck(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: requiredProviders + `
output "guid" {
  value = provider::crmsync::salesforce_id_to_guid("` + exampleID15 + `")
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("guid", knownvalue.StringExact(exampleGUID)),
				},
			},
			{
				Config: requiredProviders + `
output "guid" {
  value = provider::crmsync::salesforce_id_to_guid("not-an-id")
}
`,
				ExpectError: regexp.MustCompile(`(?s)invalid Salesforce Id "not-an-id"`),
			},
		},
	})
}
