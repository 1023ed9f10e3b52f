package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// quickstartDir copies examples/quickstart into a temporary directory, applying edits (old → new text) and
// adding extra files, so a test applies the example users run.
func quickstartDir(t *testing.T, edits map[string]string, extra map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	if _, ok := edits["outputs"]; ok {
		// terraform-plugin-testing cannot read back the state of an import whose configuration has outputs
		// of resources not imported (null outputs): drop them.
		src = src[:strings.Index(src, "output \"")]
		delete(edits, "outputs")
	}
	for old, repl := range edits {
		if !strings.Contains(src, old) {
			t.Fatalf("examples/quickstart/main.tf no longer contains %q", old)
		}
		src = strings.Replace(src, old, repl, 1)
	}
	dir := t.TempDir()
	files := map[string]string{"main.tf": src}
	for name, body := range extra {
		files[name] = body
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAccQuickstart_endToEnd is the end-to-end flow on examples/quickstart: apply → rows in Dataverse →
// status data source → import → mapping change → agent redeployed → added column filled for existing rows →
// empty plan; then a connector deactivated out of band shows as a planned activation, and destroy
// deactivates.
func TestAccQuickstart_endToEnd(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 300, accounts: 60})
	t.Setenv(EnvEndpoint, env.URL)
	t.Setenv(EnvToken, accToken)
	vars := config.Variables{"sandbox_json": config.StringVariable(env.sandboxJSON())}
	const act, ds = "crmsync_activation.sandbox", "data.crmsync_sync_status.sandbox"

	initial := quickstartDir(t, nil, nil)
	noOutputs := quickstartDir(t, map[string]string{"outputs": ""}, nil)
	withRegion := quickstartDir(t, map[string]string{
		`jobtitle = { source = "Title", truncate = true }`: `jobtitle   = { source = "Title", truncate = true }
    new_region = { source = "Region__c" }`,
	}, nil)

	contactWithTitle := compare.Contact(true)
	contactWithTitle.Columns = append(contactWithTitle.Columns, compare.Column{Dest: "jobtitle", Source: "Title", Kind: compare.Text})
	contactWithRegion := contactWithTitle
	contactWithRegion.Columns = append(append([]compare.Column{}, contactWithTitle.Columns...), compare.Column{Dest: "new_region", Source: "Region__c", Kind: compare.Text})

	var revisionBefore int64
	// The quickstart has a provider block, so terraform-plugin-testing wants the providers on each step.
	steps := []resource.TestStep{
		{
			ConfigDirectory: config.StaticDirectory(initial),
			ConfigVariables: vars,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(act, tfjsonpath.New("health"), knownvalue.StringExact(healthy)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("state"), knownvalue.StringExact(api.StateStreaming)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("initial_load_complete"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("tables"), knownvalue.ListSizeExact(2)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("dead_letters"), knownvalue.Int64Exact(0)),
				statecheck.ExpectKnownOutputValue("activation_health", knownvalue.StringExact(healthy)),
				// The quickstart backs up contact and account before its first sync.
				statecheck.ExpectKnownOutputValue("first_sync_backup", knownvalue.StringRegexp(regexp.MustCompile(`^bak_`))),
				statecheck.ExpectKnownValue(act, tfjsonpath.New("backup").AtMapKey("state"), knownvalue.StringExact(api.BackupComplete)),
				statecheck.ExpectKnownValue(ds, tfjsonpath.New("out_of_band_edits"), knownvalue.Int64Exact(0)),
				statecheck.ExpectKnownOutputValue("first_contact_guid", knownvalue.StringExact("1b773a30-73e8-5c70-8c85-f52b98e0835e")),
			},
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			// wait_for = "initial_load": when apply returns, every record is in Dataverse.
			Check: func(*terraform.State) error { return env.compare(compare.Account(), contactWithTitle) },
		},
		{
			ResourceName:                         act,
			ImportState:                          true,
			ImportStateVerify:                    true,
			ImportStateVerifyIdentifierAttribute: "connector_id",
			ImportStateIdFunc: func(s *terraform.State) (string, error) {
				return s.RootModule().Resources[act].Primary.Attributes["connector_id"], nil
			},
			// wait_for is not stored by the control plane; the revision moves with the connector.
			ImportStateVerifyIgnore: []string{"wait_for", "deployed_revision"},
			ConfigDirectory:         config.StaticDirectory(noOutputs),
			ConfigVariables:         vars,
		},
		{
			// A custom field and column appear on both sides, and existing contacts get values while the
			// running mapping ignores them; then the mapping adds the column.
			PreConfig: func() {
				revisionBefore = env.statusOf(t, "quickstart").LatestRevision
				addRegion(t, env)
			},
			ConfigDirectory: config.StaticDirectory(withRegion),
			ConfigVariables: vars,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("crmsync_table_mapping.contact", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(act, plancheck.ResourceActionNoop),
				},
				// Right after apply the agent is still rolling to the new revision: no drift.
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			Check: func(*terraform.State) error {
				// The agent is redeployed at the new revision and re-syncs Contact, which fills the added
				// column of the existing rows.
				waitFor(t, 2*time.Minute, "the agent to run the new revision", func() bool {
					st := env.statusOf(t, "quickstart")
					return st.LatestRevision > revisionBefore && st.DeployedRevision == st.LatestRevision && st.State == api.StateStreaming &&
						allStreaming(st)
				})
				var err error
				waitFor(t, time.Minute, "new_region to be filled for existing contacts", func() bool {
					err = env.compare(compare.Account(), contactWithRegion)
					return err == nil
				})
				return err
			},
		},
		{
			// Once the rollout is done, the plan is still empty (-detailed-exitcode 0).
			ConfigDirectory: config.StaticDirectory(withRegion),
			ConfigVariables: vars,
			PlanOnly:        true,
		},
		{
			// Changes made in Salesforce flow while the plan stays empty.
			PreConfig: func() {
				if _, err := env.sb.Salesforce.Mutate("Contact", 20, ""); err != nil {
					t.Fatal(err)
				}
				if _, err := env.sb.Salesforce.Generate("Account", 5, ""); err != nil {
					t.Fatal(err)
				}
				var err error
				waitFor(t, time.Minute, "the changes to reach Dataverse", func() bool {
					err = env.compare(compare.Account(), contactWithRegion)
					return err == nil
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			ConfigDirectory: config.StaticDirectory(withRegion),
			ConfigVariables: vars,
			PlanOnly:        true,
		},
		{
			// Deactivated out of band: the plan activates it again, and apply waits for the agent.
			PreConfig: func() {
				c, err := env.Client.FindConnector(t.Context(), "quickstart")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := env.Client.SetActivation(t.Context(), c.ID, false); err != nil {
					t.Fatal(err)
				}
			},
			ConfigDirectory: config.StaticDirectory(withRegion),
			ConfigVariables: vars,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(act, plancheck.ResourceActionCreate)},
				PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
			},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(act, tfjsonpath.New("health"), knownvalue.StringExact(healthy)),
			},
		},
	}
	for i := range steps {
		steps[i].ProtoV6ProviderFactories = protoV6ProviderFactories
	}
	resource.Test(t, resource.TestCase{
		Steps: steps,
		CheckDestroy: func(s *terraform.State) error {
			cs, err := env.Client.ListConnectors(context.Background())
			if err != nil || len(cs) != 0 {
				return fmt.Errorf("after destroy: connectors %v (%w)", cs, err)
			}
			return nil
		},
	})
}

func allStreaming(st *api.ConnectorStatus) bool {
	for _, t := range st.Tables {
		if t.Phase != api.PhaseStreaming {
			return false
		}
	}
	return len(st.Tables) > 0
}

// addRegion adds Region__c to Salesforce Contact and new_region to Dataverse contact through the sandbox's
// admin APIs, and gives existing contacts a region.
func addRegion(t *testing.T, env *syncEnv) {
	t.Helper()
	if err := env.sb.Salesforce.AddField("Contact", schema.Field{Name: "Region__c", Label: "Region", Type: "string", Length: 40,
		Nillable: true, Createable: true, Updateable: true}); err != nil {
		t.Fatal(err)
	}
	if err := env.sb.Dataverse.AddColumn("contact", dataverse.CustomColumn{LogicalName: "new_region", Type: "String", MaxLength: 100}); err != nil {
		t.Fatal(err)
	}
	ids := contactIDs(t, env)
	regions := []string{"EMEA", "AMER", "APAC"}
	var ops []sfemu.Operation
	for i, r := range regions {
		var group []string
		for j := i; j < len(ids); j += len(regions) {
			group = append(group, ids[j])
		}
		ops = append(ops, sfemu.Operation{Op: "update", Object: "Contact", IDs: group, Fields: map[string]any{"Region__c": r}})
	}
	if _, err := env.sb.Salesforce.Transact(sfemu.Transaction{Operations: ops}); err != nil {
		t.Fatal(err)
	}
}

// contactIDs lists the live Salesforce contacts.
func contactIDs(t *testing.T, env *syncEnv) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := env.sb.Salesforce.Export(&buf, "Contact"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var rec struct {
			ID        string `json:"Id"`
			IsDeleted bool   `json:"IsDeleted"`
		}
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		if !rec.IsDeleted {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

func TestAccActivation_preflightFailureListsEveryFailingCheck(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5})
	cfg := env.providerBlock() + env.connectorHCL("acc-no-privileges", env.sb.Info.Dataverse.TeamWithoutPrivilegesID) + `
resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Account"
}
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
  depends_on   = [crmsync_table_mapping.account]
}
resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  depends_on   = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(env.controlPlane),
		Steps: []resource.TestStep{{
			Config:      cfg,
			ExpectError: regexp.MustCompile(`(?s)1 preflight\s+check\(s\)\s+failed.\s+Nothing\s+was\s+deployed.*team_privileges: .* is missing 9 privilege\(s\): .*prvCreateContact.*prvAppendToAccount`),
			Check: func(*terraform.State) error {
				if st := env.statusOf(t, "acc-no-privileges"); st.Active || st.Agent != nil {
					return fmt.Errorf("after a failed preflight: active %v, agent %+v", st.Active, st.Agent)
				}
				return nil
			},
		}},
	})
}

func TestAccActivation_timeoutListsWhatIsNotDone(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 500, accounts: 10})
	// A slow Dataverse: the agent cannot have loaded the table within the 2 s the activation waits.
	env.sb.Dataverse.Faults().Set(faults.Config{Latency: 700 * time.Millisecond, PathPrefix: "/api/data/"})
	cfg := env.providerBlock() + env.connectorHCL("acc-timeout", env.sb.Info.Dataverse.TeamID) + `
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
}
resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  wait_for     = "initial_load"
  # The load is what this test times out on; a backup through the slow Dataverse would be instead.
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.contact]
  timeouts {
    create = "2s"
  }
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(env.controlPlane),
		Steps: []resource.TestStep{{
			Config: cfg,
			// Within 2 s the agent has just started, or is loading: either way the error says so.
			ExpectError: regexp.MustCompile(`(?s)timed out after 2s waiting for the agent of\s+connector\s+con_\w+\s+\(wait_for\s+=\s+"initial_load"\).\s+Not\s+done:\s+- (no agent runs the connector|the connector is deploying|table Contact is initial_load)`),
		}},
	})
}

// scriptedAgent plays an agent over the agent protocol: while the connector is active it holds the lease and
// heartbeats the status the test scripts, and it never moves to a newer revision on its own (it re-acquires,
// at the latest revision, only after a deactivation). It stands in for an agent that fails or is stuck, which
// real agents do only under faults a test cannot time.
type scriptedAgent struct {
	env *syncEnv
	mu  sync.Mutex
	// failure, when set, is reported as the agent's failure.
	failure string
}

func (a *scriptedAgent) fail(reason string) {
	a.mu.Lock()
	a.failure = reason
	a.mu.Unlock()
}

func (a *scriptedAgent) status(rev int64) api.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := api.Status{State: api.PhaseStreaming, Revision: rev, StartedAt: time.Now(),
		Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming}}}
	if a.failure != "" {
		st.State, st.Reason = api.PhaseFailed, a.failure
	}
	return st
}

// run plays the agent of the named connector until ctx ends.
func (a *scriptedAgent) run(ctx context.Context, name string) {
	c := a.env.Client // the operator's: finding the connector
	cred, err := a.env.Store.CreateLocalAgent(ctx, "", "scripted", "test")
	if err != nil {
		panic(err)
	}
	ag, err := client.New(client.Config{Endpoint: a.env.URL, Token: cred.Credential}) // the agent's own credential
	if err != nil {
		panic(err)
	}
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
			return true
		}
	}
	for pause() {
		conn, err := c.FindConnector(ctx, name)
		if err != nil {
			continue
		}
		if act, err := c.GetActivation(ctx, conn.ID); err != nil || !act.Active {
			continue
		}
		lease, err := ag.AcquireLease(ctx, api.LeaseRequest{ConnectorID: conn.ID, Host: "test"})
		if err != nil {
			continue
		}
		for pause() {
			hb, err := ag.Heartbeat(ctx, lease.ID, api.Heartbeat{Status: a.status(lease.Revision)})
			if err != nil {
				break
			}
			if !hb.Active { // deactivated: release, as an agent drains and exits
				_ = ag.ReleaseLease(ctx, lease.ID)
				break
			}
		}
	}
}

// TestAccActivation_unhealthyAgentShowsInPlan: an agent stuck on an older revision long after a change, or one
// that reports a failure, shows in `terraform plan` as an update of crmsync_activation with a warning; apply
// redeploys it and the next plan is empty.
func TestAccActivation_unhealthyAgentShowsInPlan(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5, noSupervisor: true})
	agent := &scriptedAgent{env: env}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); agent.run(ctx, "acc-unhealthy") }()
	t.Cleanup(func() { cancel(); <-done })

	cfg := func(excluded string) string {
		return env.providerBlock() + env.connectorHCL("acc-unhealthy", env.sb.Info.Dataverse.TeamID) + fmt.Sprintf(`
resource "crmsync_table_mapping" "contact" {
  connector_id    = crmsync_connector.sandbox.id
  source_table    = "Contact"
  exclude_columns = [%q]
}
resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  depends_on   = [crmsync_table_mapping.contact]
  timeouts {
    create = "1m"
    update = "1m"
  }
}
`, excluded)
	}
	w := newTFWorkdir(t)
	w.Apply(cfg("fax"))
	if run := w.Plan(cfg("fax")); run.Changes {
		t.Fatalf("plan after apply is not empty:\n%s", run.Output)
	}

	// A mapping change makes a new revision the scripted agent never moves to. Right after the apply the
	// rollout is in progress, which is no drift.
	w.Apply(cfg("mobilephone"))
	if run := w.Plan(cfg("mobilephone")); run.Changes {
		t.Fatalf("plan during the rollout is not empty:\n%s", run.Output)
	}
	// Long after, the agent is stuck: the plan updates the activation.
	env.clock.Advance(5 * time.Minute)
	// The 5 minutes also outlive the agent's 3 s lease: until its next heartbeat renews it, status says the agent
	// stopped heartbeating (deploying) rather than stuck. Plan once status has seen the renewed lease.
	waitFor(t, 30*time.Second, "the stuck agent to show in status", func() bool {
		return strings.Contains(env.statusOf(t, "acc-unhealthy").Reason, "stuck on revision")
	})
	run := w.Plan(cfg("mobilephone"))
	if !run.Changes || !run.Has("warning", "The connector's agent is not healthy", "stuck on revision") {
		t.Fatalf("a stuck agent is not in the plan (changes %v): %v", run.Changes, run.Diagnostics)
	}
	// Apply redeploys: deactivation, preflight, activation, and the agent at the latest revision.
	w.Apply(cfg("mobilephone"))
	if run := w.Plan(cfg("mobilephone")); run.Changes {
		t.Fatalf("plan after the redeploy is not empty:\n%s", run.Output)
	}

	// An agent that reports a failure is in the plan too.
	agent.fail("Dataverse refused the token: invalid_client")
	waitFor(t, 30*time.Second, "the failure to be reported", func() bool { return env.statusOf(t, "acc-unhealthy").State == api.StateFailed })
	run = w.Plan(cfg("mobilephone"))
	if !run.Changes || !run.Has("warning", "The connector's agent is not healthy", "invalid_client") {
		t.Fatalf("a failed agent is not in the plan (changes %v): %v", run.Changes, run.Diagnostics)
	}
	agent.fail("")
	w.Destroy(cfg("mobilephone"))
}
