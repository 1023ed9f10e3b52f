package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

const (
	teamA = "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44"
	teamB = "0d9b7c55-3e21-4f6a-8c1d-5b2e9f7a1c30"
)

// connectorConfig is a connector whose credentials are all references (nothing secret in state).
func connectorConfig(cp *controlPlane, name, team string) string {
	return cp.providerBlock() + fmt.Sprintf(`
resource "crmsync_connector" "test" {
  name    = %q
  team_id = %q

  salesforce = {
    login_url        = "https://login.salesforce.com"
    auth             = "jwt_bearer"
    client_id        = "3MVG9test"
    username         = "integration@acme.example"
    private_key_file = "/etc/crmsync/salesforce.key"
  }
  dataverse = {
    environment_url   = "https://acme.crm.dynamics.com"
    tenant_id         = "9e1d2c3b-4a5f-4e6d-8c7b-1a2b3c4d5e6f"
    client_id         = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"
    client_secret_env = "CRMSYNC_DATAVERSE_SECRET"
  }
}
`, name, team)
}

func TestAccConnector_basic(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{
				Config: connectorConfig(cp, "acc-basic", teamA),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^con_`))),
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("name"), knownvalue.StringExact("acc-basic")),
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("salesforce").AtMapKey("api_version"), knownvalue.StringExact("62.0")),
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("dataverse").AtMapKey("client_secret"), knownvalue.Null()),
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				ResourceName:      "crmsync_connector.test",
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				Config: connectorConfig(cp, "acc-basic-renamed", teamB),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("name"), knownvalue.StringExact("acc-basic-renamed")),
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("team_id"), knownvalue.StringExact(teamB)),
				},
			},
		},
	})
}

// checkConnectorsDestroyed is the destroy check: no connector is left on the control plane.
func checkConnectorsDestroyed(cp *controlPlane) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for _, rs := range s.RootModule().Resources {
			if rs.Type != "crmsync_connector" {
				continue
			}
			_, err := cp.Client.GetConnector(context.Background(), rs.Primary.ID)
			if err == nil {
				return fmt.Errorf("connector %s still exists", rs.Primary.ID)
			}
			if !isNotFound(err) {
				return err
			}
		}
		return nil
	}
}

// outOfBand changes a connector through the API, as another tool or person would.
func outOfBand(t *testing.T, cp *controlPlane, name string, change func(*api.ConnectorSpec)) {
	t.Helper()
	c, err := cp.Client.FindConnector(context.Background(), name)
	if err != nil {
		t.Fatalf("finding connector %s: %v", name, err)
	}
	spec := c.ConnectorSpec
	change(&spec)
	if _, err := cp.Client.UpdateConnector(context.Background(), c.ID, spec); err != nil {
		t.Fatalf("updating connector %s out of band: %v", name, err)
	}
}

var _ = strings.Contains
