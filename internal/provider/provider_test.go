package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
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

// described is what every schema attribute implements.
type described interface{ GetMarkdownDescription() string }

func TestSchemas_everyAttributeIsDescribedAndImplemented(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	check := func(kind, name string, attrs map[string]any, validate func() error) {
		if err := validate(); err != nil {
			t.Errorf("%s %s: %v", kind, name, err)
		}
		var walk func(prefix string, attrs map[string]any)
		walk = func(prefix string, attrs map[string]any) {
			for n, a := range attrs {
				d, ok := a.(described)
				if !ok || d.GetMarkdownDescription() == "" {
					t.Errorf("%s %s: attribute %s%s has no description", kind, name, prefix, n)
				}
				if children := nestedAttributes(a); children != nil {
					walk(prefix+n+".", children)
				}
			}
		}
		walk("", attrs)
	}
	for _, f := range p.Resources(ctx) {
		r := f()
		var meta fwresource.MetadataResponse
		r.Metadata(ctx, fwresource.MetadataRequest{ProviderTypeName: "crmsync"}, &meta)
		var resp fwresource.SchemaResponse
		r.Schema(ctx, fwresource.SchemaRequest{}, &resp)
		check("resource", meta.TypeName, toAny(resp.Schema.Attributes), func() error {
			if d := resp.Schema.ValidateImplementation(ctx); d.HasError() {
				return fmt.Errorf("%v", d)
			}
			if resp.Schema.MarkdownDescription == "" {
				return fmt.Errorf("no description")
			}
			return nil
		})
	}
	for _, f := range p.DataSources(ctx) {
		ds := f()
		var meta datasource.MetadataResponse
		ds.Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "crmsync"}, &meta)
		var resp datasource.SchemaResponse
		ds.Schema(ctx, datasource.SchemaRequest{}, &resp)
		check("data source", meta.TypeName, toAny(resp.Schema.Attributes), func() error {
			if d := resp.Schema.ValidateImplementation(ctx); d.HasError() {
				return fmt.Errorf("%v", d)
			}
			if resp.Schema.MarkdownDescription == "" {
				return fmt.Errorf("no description")
			}
			return nil
		})
	}
}

func toAny[T any](m map[string]T) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// nestedAttributes returns the attributes nested in a single, list or map nested attribute.
func nestedAttributes(a any) map[string]any {
	switch v := a.(type) {
	case rschema.SingleNestedAttribute:
		return toAny(v.Attributes)
	case rschema.MapNestedAttribute:
		return toAny(v.NestedObject.Attributes)
	case rschema.ListNestedAttribute:
		return toAny(v.NestedObject.Attributes)
	case dschema.SingleNestedAttribute:
		return toAny(v.Attributes)
	case dschema.ListNestedAttribute:
		return toAny(v.NestedObject.Attributes)
	case dschema.MapNestedAttribute:
		return toAny(v.NestedObject.Attributes)
	}
	return nil
}
