package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

const (
	userOne = "2c3d4e5f-6071-4829-8a0b-c1d2e3f40527"
	userTwo = "3d4e5f60-7182-493a-9b0c-d1e2f3041638"
)

// connectorWithUsers is connectorConfig with dataverse.additional_application_users set to users (HCL).
func connectorWithUsers(cp *controlPlane, name, users string) string {
	return strings.Replace(connectorConfig(cp, name, teamA), `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
		`client_secret_env = "CRMSYNC_DATAVERSE_SECRET"
    additional_application_users = `+users, 1)
}

// `crmsync_connector` names several Dataverse application users, each with its secret by reference or
// inline; the control plane gets them, the plan after apply is empty, removing one removes it, and the data
// source lists them.
func TestAccConnector_additionalApplicationUsers(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	two := fmt.Sprintf(`[
      { client_id = %q, client_secret_env = "CRMSYNC_DATAVERSE_SECRET_2" },
      { client_id = %q, client_secret_file = "/etc/crmsync/dataverse-3" },
    ]`, userOne, strings.ToUpper(userTwo))
	users := func(t *testing.T) []string {
		t.Helper()
		c, err := cp.Client.FindConnector(t.Context(), "acc-users")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, u := range c.Dataverse.AdditionalUsers {
			out = append(out, strings.ToLower(u.ClientID)+"="+u.ClientSecretEnv+u.ClientSecretFile)
		}
		return out
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{
				Config:      connectorWithUsers(cp, "acc-users", fmt.Sprintf(`[{ client_id = %q }]`, userTwo)),
				ExpectError: regexp.MustCompile(`(?s)Invalid Attribute Combination.*client_secret`),
			},
			{
				Config:      connectorWithUsers(cp, "acc-users", `[{ client_id = "not-a-guid", client_secret_env = "X" }]`),
				ExpectError: regexp.MustCompile(`(?s)additional_application_users\[0\].client_id`),
			},
			{
				Config: connectorWithUsers(cp, "acc-users", two) + `
data "crmsync_connector" "read" {
  name       = crmsync_connector.test.name
  depends_on = [crmsync_connector.test]
}
`,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("crmsync_connector.test", tfjsonpath.New("dataverse").AtMapKey("additional_application_users").AtSliceIndex(1).AtMapKey("client_id"),
						knownvalue.StringExact(strings.ToUpper(userTwo))),
					statecheck.ExpectKnownValue("data.crmsync_connector.read", tfjsonpath.New("dataverse").AtMapKey("additional_application_users").AtSliceIndex(0).AtMapKey("client_secret_env"),
						knownvalue.StringExact("CRMSYNC_DATAVERSE_SECRET_2")),
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check: func(*terraform.State) error {
					if got := strings.Join(users(t), ","); got != userOne+"=CRMSYNC_DATAVERSE_SECRET_2,"+userTwo+"=/etc/crmsync/dataverse-3" {
						return fmt.Errorf("the control plane holds the users %s", got)
					}
					return nil
				},
			},
			{
				Config: connectorWithUsers(cp, "acc-users", fmt.Sprintf(`[{ client_id = %q, client_secret_file = "/etc/crmsync/dataverse-3" }]`, userTwo)),
				Check: func(*terraform.State) error {
					if got := strings.Join(users(t), ","); got != userTwo+"=/etc/crmsync/dataverse-3" {
						return fmt.Errorf("after removing one the control plane holds the users %s", got)
					}
					return nil
				},
			},
		},
	})
}

// An additional user's write-only secret reaches the control plane and never the plan or state; a
// new version sends a new value for that user only; an inline one warns, naming its path.
func TestAccConnectorWriteOnly_additionalApplicationUser(t *testing.T) {
	skipUnlessWriteOnly(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	secret1, secret2 := canaryValue(t, "CANARYuser1"), canaryValue(t, "CANARYuser2")
	cfg := func(version int) string {
		return strings.Replace(connectorWithUsers(cp, "acc-users-wo", fmt.Sprintf(`[
      { client_id = %q, client_secret_wo = var.user_secret, client_secret_wo_version = %d },
      { client_id = %q, client_secret = "inline-user-secret" },
    ]`, userOne, version, userTwo)), `resource "crmsync_connector"`, `variable "user_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "crmsync_connector"`, 1)
	}
	stored := func() map[string]string {
		t.Helper()
		c, err := cp.Client.FindConnector(t.Context(), "acc-users-wo")
		if err != nil {
			t.Fatal(err)
		}
		sec, err := cp.Store.ConnectorSecrets(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}
	name1 := "dataverse.additional_application_users." + userOne + ".client_secret"
	name2 := "dataverse.additional_application_users." + userTwo + ".client_secret"

	w.env = append(w.env, "TF_VAR_user_secret="+secret1)
	run := w.Apply(cfg(1))
	if !run.Has("warning", "Inline secret stored in Terraform state", "client_secret_wo") {
		t.Errorf("no warning about the second user's inline secret: %v", run.Diagnostics)
	}
	if sec := stored(); sec[name1] != secret1 || sec[name2] != "inline-user-secret" {
		t.Fatalf("the control plane holds other secrets than the configured ones (%d stored)", len(sec))
	}
	state, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), secret1) {
		t.Error("the state holds the write-only secret")
	}
	w.env = append(w.env, "TF_VAR_user_secret="+secret2)
	if run := w.Plan(cfg(1)); run.Changes {
		t.Fatalf("a new write-only value without a new version plans a change:\n%s", run.Output)
	}
	w.Apply(cfg(2))
	if sec := stored(); sec[name1] != secret2 || sec[name2] != "inline-user-secret" {
		t.Fatalf("after bumping the version: user 1 rotated %v, user 2 kept %v", sec[name1] == secret2, sec[name2] == "inline-user-secret")
	}
	if run := w.Plan(cfg(2)); run.Changes {
		t.Fatalf("the plan after the rotation is not empty:\n%s", run.Output)
	}
}
