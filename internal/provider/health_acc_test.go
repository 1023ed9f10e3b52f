package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
)

// TestAccHealth_aRevokedPrivilegeShowsInStatusTheDataSourceAndPlan: the team of an active connector loses
// its create and write privileges on contact in Dataverse. Within 30 s the connector's status is degraded
// with the missing privilege named (Contact failed, Account streaming), the crmsync_sync_status data source
// says so, and the plan shows the activation's health as an update (plan -detailed-exitcode exits 2). Once
// the privileges are back the state clears by itself and the plan is empty again. Regression: status said
// streaming with an empty reason and the plan exited 0 while the agent retried the 403 forever.
func TestAccHealth_aRevokedPrivilegeShowsInStatusTheDataSourceAndPlan(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 30, accounts: 5})
	cfg := env.providerBlock() + env.connectorHCL("acc-health", env.sb.Info.Dataverse.TeamID) + `
resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Account"
}
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
}
resource "crmsync_activation" "sandbox" {
  connector_id             = crmsync_connector.sandbox.id
  wait_for                 = "initial_load"
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}
data "crmsync_sync_status" "sandbox" {
  connector_id = crmsync_activation.sandbox.connector_id
}
output "state" {
  value = data.crmsync_sync_status.sandbox.state
}
output "reason" {
  value = data.crmsync_sync_status.sandbox.reason
}
`
	w := newTFWorkdir(t)
	w.Apply(cfg)
	if run := w.Plan(cfg); run.Changes {
		t.Fatalf("plan after apply is not empty:\n%s", run.Output)
	}

	team := env.sb.Info.Dataverse.TeamID
	if err := env.sb.Dataverse.RevokeTeamPrivileges(team, "prvCreateContact", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.sb.Salesforce.Generate("Contact", 3, ""); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	waitFor(t, 30*time.Second, "status to say degraded naming the privilege", func() bool {
		st := env.statusOf(t, "acc-health")
		return st.State == api.StateDegraded && strings.Contains(st.Reason, "missing privilege prvCreateContact on contact")
	})
	t.Logf("degraded %s after the revocation", time.Since(revoked).Round(time.Millisecond))
	run := w.Plan(cfg)
	if !run.Changes || !run.Has("warning", "The connector's agent is not healthy", "prvCreateContact") {
		t.Fatalf("the failing table is not in the plan (changes %v): %v", run.Changes, run.Diagnostics)
	}
	// Read the data source (a refresh-only apply changes nothing but the outputs).
	w.write(cfg)
	w.run(0, "apply", "-refresh-only", "-json", "-input=false", "-auto-approve", "-lock=false")
	outs := map[string]any{}
	var state, reason string
	outs["state"], outs["reason"] = &state, &reason
	w.outputs(outs)
	if state != api.StateDegraded || !strings.Contains(reason, "prvCreateContact") {
		t.Errorf("crmsync_sync_status says %q: %q", state, reason)
	}

	if err := env.sb.Dataverse.GrantTeamPrivileges(team, "", "prvCreateContact", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the state to clear by itself", func() bool {
		return env.statusOf(t, "acc-health").State == api.StateStreaming
	})
	w.run(0, "apply", "-refresh-only", "-json", "-input=false", "-auto-approve", "-lock=false")
	w.outputs(outs)
	if state != api.StateStreaming || reason != "" {
		t.Errorf("after the fix crmsync_sync_status says %q: %q", state, reason)
	}
	if run := w.Plan(cfg); run.Changes {
		t.Fatalf("plan after the privilege came back is not empty:\n%s", run.Output)
	}
	if err := env.compare(); err != nil {
		t.Error(err)
	}
	w.Destroy(cfg)
}

// TestAccHealth_aMappingChangeTheTeamCannotWriteFailsAtPlan: with an active connector whose team lacks the
// write privilege on contact, a plan that changes the Contact mapping's columns shows the failing
// team_privileges check as an error (the live validation runs the checks the change affects); applying it
// would be refused with the same checks.
func TestAccHealth_aMappingChangeTheTeamCannotWriteFailsAtPlan(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 10, accounts: 3})
	cfg := func(exclude string) string {
		return env.providerBlock() + env.connectorHCL("acc-plan-checks", env.sb.Info.Dataverse.TeamID) + `
resource "crmsync_table_mapping" "contact" {
  connector_id    = crmsync_connector.sandbox.id
  source_table    = "Contact"
  exclude_columns = ["` + exclude + `"]
}
resource "crmsync_activation" "sandbox" {
  connector_id             = crmsync_connector.sandbox.id
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.contact]
}
`
	}
	w := newTFWorkdir(t)
	w.Apply(cfg("fax"))
	if err := env.sb.Dataverse.RevokeTeamPrivileges(env.sb.Info.Dataverse.TeamID, "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	w.write(cfg("mobilephone"))
	run := w.run(1, "plan", "-json", "-input=false", "-lock=false")
	if !run.Has("error", "team_privileges", "prvWriteContact") {
		t.Fatalf("the plan does not show the failing check: %v", run.Diagnostics)
	}
	if err := env.sb.Dataverse.GrantTeamPrivileges(env.sb.Info.Dataverse.TeamID, "", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	w.Apply(cfg("mobilephone"))
	w.Destroy(cfg("mobilephone"))
}

// TestAccHealth_aTeamChangeIsCheckedAtPlanAndReassignsEveryRow: changing an active connector's team to a team
// without privileges fails the plan with the check that fails (the API would refuse the apply); once the team
// holds them, the apply passes and every synced row ends owned by the new team.
func TestAccHealth_aTeamChangeIsCheckedAtPlanAndReassignsEveryRow(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 12, accounts: 3})
	cfg := func(team string) string {
		return env.providerBlock() + env.connectorHCL("acc-team-change", team) + `
resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Account"
}
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
}
resource "crmsync_activation" "sandbox" {
  connector_id             = crmsync_connector.sandbox.id
  wait_for                 = "initial_load"
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}
`
	}
	w := newTFWorkdir(t)
	w.Apply(cfg(env.sb.Info.Dataverse.TeamID))
	other := env.sb.Dataverse.TeamWithoutPrivilegesID()
	w.write(cfg(other))
	run := w.run(1, "plan", "-json", "-input=false", "-lock=false")
	if !run.Has("error", "The new team cannot write the synced tables", "prvCreateContact") {
		t.Fatalf("the plan does not fail on the team's missing privileges: %v", run.Diagnostics)
	}
	var privs []string
	for _, table := range []string{"Contact", "Account"} {
		for _, a := range []string{"Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share"} {
			privs = append(privs, "prv"+a+table)
		}
	}
	if err := env.sb.Dataverse.GrantTeamPrivileges(other, "", privs...); err != nil {
		t.Fatal(err)
	}
	w.Apply(cfg(other))
	waitFor(t, 2*time.Minute, "every row to be owned by the new team", func() bool {
		res, err := compare.Compare(env.sb.Salesforce, env.sb.Dataverse, other, nil, compare.Account(), compare.Contact(true))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Differences() > 0 {
				return false
			}
		}
		return true
	})
	w.Destroy(cfg(other))
}
