package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("tuning"), knownvalue.Null()),
				},
			},
			{
				// Tuning, written as the control plane returns it: the import below sees the same values.
				Config: withTuning(connectorConfig(cp, "acc-basic", teamA), `    batch_size           = 200
    flush_interval       = "250ms"
    out_of_band_interval = "30s"
    reconcile_interval   = "off"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					c, err := cp.Client.FindConnector(context.Background(), "acc-basic")
					if err != nil {
						return err
					}
					if tu := c.Tuning; tu == nil || tu.BatchSize != 200 || time.Duration(tu.OutOfBandInterval) != 30*time.Second ||
						time.Duration(tu.FlushInterval) != 250*time.Millisecond || tu.ReconcileInterval >= 0 || tu.WriteConcurrency != 0 {
						return fmt.Errorf("the control plane holds tuning %+v", tu)
					}
					return nil
				},
			},
			{
				ResourceName:      "crmsync_connector.test",
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				// Another spelling of a duration than the control plane's (1m30s) plans no change after apply.
				Config: withTuning(connectorConfig(cp, "acc-basic", teamA), `    out_of_band_interval = "90s"
    reconcile_interval   = "360m"`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("tuning"), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"batch_size": knownvalue.Null(), "flush_interval": knownvalue.Null(), "write_concurrency": knownvalue.Null(),
						"page_size": knownvalue.Null(), "status_interval": knownvalue.Null(),
						"out_of_band_interval": knownvalue.StringExact("90s"), "reconcile_interval": knownvalue.StringExact("360m"),
					})),
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

func TestAccConnector_disappears(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{Config: connectorConfig(cp, "acc-disappears", teamA)},
			{
				PreConfig: func() {
					c, err := cp.Client.FindConnector(context.Background(), "acc-disappears")
					if err != nil {
						t.Fatal(err)
					}
					if err := cp.Client.DeleteConnector(context.Background(), c.ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: connectorConfig(cp, "acc-disappears", teamA),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func TestAccConnector_outOfBandChangeShowsInPlan(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	cfg := connectorConfig(cp, "acc-drift", teamA)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					outOfBand(t, cp, "acc-drift", func(s *api.ConnectorSpec) {
						s.TeamID = teamB
						s.Dataverse.EnvironmentURL = "https://other.crm.dynamics.com"
					})
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					// The environment URL forces a replacement; the team would be an in-place update.
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionReplace),
						plancheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("team_id"), knownvalue.StringExact(teamA)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				PreConfig: func() {
					outOfBand(t, cp, "acc-drift", func(s *api.ConnectorSpec) { s.Salesforce.Username = "someone-else@acme.example" })
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// inlineSecretConfig declares the Dataverse secret inline, with a canary value.
func inlineSecretConfig(cp *controlPlane, secret string) string {
	return strings.Replace(connectorConfig(cp, "acc-inline", teamA),
		`client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`, fmt.Sprintf("client_secret = %q", secret), 1)
}

func TestAccConnector_inlineSecretKeptButNeverReadBack(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	const canary = "canary-inline-secret-7f3a9c"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{
				Config: inlineSecretConfig(cp, canary),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("dataverse").AtMapKey("client_secret"), knownvalue.StringExact(canary)),
					statecheck.ExpectSensitiveValue("crmsync_connector.test", tfjsonpath.New("dataverse").AtMapKey("client_secret")),
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					c, err := cp.Client.FindConnector(context.Background(), "acc-inline")
					if err != nil {
						return err
					}
					if c.Dataverse.ClientSecret != "" {
						return fmt.Errorf("the API returned the inline secret")
					}
					if !slices.Contains(c.SecretsSet, secretDataverseClientSecret) {
						return fmt.Errorf("secrets_set %v does not list %s", c.SecretsSet, secretDataverseClientSecret)
					}
					return nil
				},
			},
			{
				// The API never returns inline secrets, so an import cannot know them.
				ResourceName:            "crmsync_connector.test",
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"dataverse.client_secret"},
			},
			{
				// A rotated secret is an update that sends the new value.
				Config: inlineSecretConfig(cp, canary+"-rotated"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_connector.test", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				// Moving to a reference drops the stored inline secret on the control plane.
				Config: connectorConfig(cp, "acc-inline", teamA),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					c, err := cp.Client.FindConnector(context.Background(), "acc-inline")
					if err != nil {
						return err
					}
					if slices.Contains(c.SecretsSet, secretDataverseClientSecret) {
						return fmt.Errorf("the inline secret is still stored after moving to client_secret_env")
					}
					return nil
				},
			},
		},
	})
}

// tuningAnchor is the last line of connectorConfig's team, after which a test adds a tuning block.
const tuningAnchor = `  team_id = "` + teamA + `"`

// withTuning adds a tuning block to a connector configuration.
func withTuning(cfg, tuning string) string {
	return strings.Replace(cfg, tuningAnchor, tuningAnchor+"\n  tuning = {\n"+tuning+"\n  }", 1)
}

func TestAccConnector_invalidConfigFailsAtPlan(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	base := connectorConfig(cp, "acc-invalid", teamA)
	cases := []struct {
		name, from, to string
		want           string
	}{
		{"team is not a GUID", teamA, "team-a", `must be a GUID`},
		{"jwt without username", `username         = "integration@acme.example"`, "", `Missing Salesforce username`},
		{"jwt without key", `private_key_file = "/etc/crmsync/salesforce.key"`, "", `Missing Salesforce private key`},
		{"two Dataverse secrets", `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
			"client_secret_env = \"CRMSYNC_DATAVERSE_SECRET\"\n    client_secret_file = \"/etc/crmsync/dv\"", `(?s)Invalid Attribute Combination.*client_secret`},
		{"no Dataverse secret", `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`, "", `(?s)Missing Attribute Configuration.*client_secret`},
		{"plain http to a remote host", `https://acme.crm.dynamics.com`, `http://acme.crm.dynamics.com`, `must use https`},
		{"relative key file", `/etc/crmsync/salesforce.key`, `keys/salesforce.key`, `must be an absolute path`},
		{"unknown auth flow", `auth             = "jwt_bearer"`, `auth             = "password"`, `value must be one of`},
		{"inline key that is not PEM", `private_key_file = "/etc/crmsync/salesforce.key"`, `private_key = "not a key"`, `not a PEM private key`},
		{"out-of-band interval below a second", tuningAnchor, tuningAnchor + "\n  tuning = { out_of_band_interval = \"100ms\" }",
			`(?s)Invalid duration.*"100ms" is out of range: it must be from 1s to 24h`},
		{"reconcile interval in days", tuningAnchor, tuningAnchor + "\n  tuning = { reconcile_interval = \"1d\" }", `"1d" is not a Go duration`},
		{"batch size above Dataverse's limit", tuningAnchor, tuningAnchor + "\n  tuning = { batch_size = 5000 }", `(?s)batch_size.*between 1 and 1000`},
		// The provider checks the table of bounds the control plane and the agent's file use.
		{"status interval of a millisecond", tuningAnchor, tuningAnchor + "\n  tuning = { status_interval = \"1ms\" }", `(?s)Invalid duration.*"1ms" is out of range: it must be from 100ms to 1m`},
		{"page size of one row", tuningAnchor, tuningAnchor + "\n  tuning = { page_size = 1 }", `(?s)page_size.*between 100 and 100000`},
	}
	var steps []resource.TestStep
	for _, tc := range cases {
		cfg := strings.Replace(base, tc.from, tc.to, 1)
		if cfg == base {
			t.Fatalf("case %q changes nothing", tc.name)
		}
		steps = append(steps, resource.TestStep{Config: cfg, PlanOnly: true, ExpectError: regexp.MustCompile(tc.want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: protoV6ProviderFactories, Steps: steps})
}

func TestAccConnector_teamChangeWarnsInPlan(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	w.Apply(connectorConfig(cp, "acc-team", teamA))
	if run := w.Plan(connectorConfig(cp, "acc-team", teamA)); run.Changes {
		t.Fatalf("plan right after apply is not empty:\n%s", run.Output)
	}
	run := w.Plan(connectorConfig(cp, "acc-team", teamB))
	if !run.Changes {
		t.Fatal("a team change planned nothing")
	}
	if !run.Has("warning", "Every synced row will be reassigned to another team", teamB, "reassign the rows already in Dataverse") {
		t.Fatalf("no team-change warning; diagnostics: %v", run.Diagnostics)
	}
	w.Destroy(connectorConfig(cp, "acc-team", teamA))
}
