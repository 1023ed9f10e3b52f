package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccConnectorDataSource_findsTheConnectorByNameWithoutSecrets(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	const ds = "data.crmsync_connector.by_name"
	cfg := inlineSecretConfig(cp, "canary-datasource-secret") + `
data "crmsync_connector" "by_name" {
  name = crmsync_connector.test.name
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.CompareValuePairs(ds, tfjsonpath.New("id"), "crmsync_connector.test", tfjsonpath.New("id"), compare.ValuesSame()),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("team_id"), knownvalue.StringExact(teamA)),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("revision"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("secrets_set"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("dataverse.client_secret")})),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("salesforce").AtMapKey("private_key_file"), knownvalue.StringExact("/etc/crmsync/salesforce.key")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("dataverse").AtMapKey("environment_url"), knownvalue.StringExact("https://acme.crm.dynamics.com")),
				},
			},
			{
				Config:      cp.providerBlock() + `data "crmsync_connector" "missing" { name = "nobody" }`,
				ExpectError: regexp.MustCompile(`no connector is named nobody`),
			},
		},
	})
}
