package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// predefinedContact reads a data source, which makes Terraform configure the provider.
const predefinedContact = `
data "crmsync_predefined_mappings" "contact" {
  source_table = "Contact"
}
`

func TestProvider_schemaIsValidAndDescribed(t *testing.T) {
	p := New("test")()
	var resp provider.SchemaResponse
	p.Schema(context.Background(), provider.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatalf("schema: %v", resp.Diagnostics)
	}
	if diags := resp.Schema.ValidateImplementation(context.Background()); diags.HasError() {
		t.Fatalf("schema implementation: %v", diags)
	}
	for name, a := range resp.Schema.Attributes {
		if a.GetMarkdownDescription() == "" {
			t.Errorf("provider attribute %s has no description", name)
		}
	}
}

func TestAccProvider_wrongTokenIsAClearError(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: requiredProviders + fmt.Sprintf(`provider "crmsync" {
  endpoint = %q
  token    = "not-the-token"
}
`, cp.URL) + predefinedContact,
			ExpectError: regexp.MustCompile(`(?s)control plane rejected the token.*CRMSYNC_TOKEN`),
		}},
	})
}

func TestAccProvider_unreachableControlPlaneIsAClearError(t *testing.T) {
	accPreCheck(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: requiredProviders + fmt.Sprintf(`provider "crmsync" {
  endpoint = "http://%s"
  token    = "whatever"
}
`, addr) + predefinedContact,
			ExpectError: regexp.MustCompile(`(?s)control plane is unreachable.*crmsync serve`),
		}},
	})
}

func TestAccProvider_missingEndpointNamesTheEnvironmentVariable(t *testing.T) {
	accPreCheck(t)
	t.Setenv(EnvEndpoint, "")
	t.Setenv(EnvToken, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      requiredProviders + predefinedContact,
			ExpectError: regexp.MustCompile(`(?s)Missing crmsync control plane endpoint.*CRMSYNC_ENDPOINT`),
		}},
	})
}

func TestAccProvider_environmentVariablesConfigureIt(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	t.Setenv(EnvEndpoint, cp.URL)
	t.Setenv(EnvToken, accToken)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: requiredProviders + predefinedContact,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.crmsync_predefined_mappings.contact", tfjsonpath.New("destination_table"), knownvalue.StringExact("contact")),
			},
		}},
	})
}
