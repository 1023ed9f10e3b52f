package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccPredefinedMappingsDataSource(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	col := func(source, dest, sourceType, destType string) knownvalue.Check {
		return knownvalue.ObjectExact(map[string]knownvalue.Check{
			"source": knownvalue.StringExact(source), "destination": knownvalue.StringExact(dest),
			"source_type": knownvalue.StringExact(sourceType), "destination_type": knownvalue.StringExact(destType),
			"predefined": knownvalue.Bool(true),
		})
	}
	ds := "data.crmsync_predefined_mappings.contact"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cp.providerBlock() + predefinedContact,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("destination_table"), knownvalue.StringExact("contact")),
					// The predefined Contact mapping (docs/architecture.md): the key, 12 columns, and parentcustomerid (with Account).
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("columns"), knownvalue.ListSizeExact(14)),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("columns").AtSliceIndex(0), col("Id", "contactid", "id", "Uniqueidentifier")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("columns"), knownvalue.ListPartial(map[int]knownvalue.Check{
						6: col("Email", "emailaddress1", "email", "String"),
					})),
				},
			},
			{
				Config:      cp.providerBlock() + `data "crmsync_predefined_mappings" "x" { source_table = "Opportunity" }`,
				ExpectError: regexp.MustCompile(`(?s)Opportunity has no predefined\s+mappings`),
			},
		},
	})
}
