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
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// mappingConfig is a connector with a Contact mapping whose body is given.
func mappingConfig(cp *controlPlane, contactBody string) string {
	return connectorConfig(cp, "acc-mapping", teamA) + fmt.Sprintf(`
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.test.id
  source_table = "Contact"
%s
}
`, contactBody)
}

// effectiveDestinations checks the destinations of effective_columns (a map keyed by destination).
func effectiveDestinations(address string, dests ...string) statecheck.StateCheck {
	checks := make(map[string]knownvalue.Check, len(dests))
	for _, d := range dests {
		checks[d] = knownvalue.ObjectPartial(map[string]knownvalue.Check{"destination": knownvalue.StringExact(d)})
	}
	return statecheck.ExpectKnownValue(address, tfjsonpath.New("effective_columns"), knownvalue.MapExact(checks))
}

// contactPredefined are the destinations of the predefined Contact mapping without Account synced.
var contactPredefined = []string{"contactid", "assistantname", "assistantphone", "birthdate", "department", "description",
	"emailaddress1", "fax", "firstname", "lastname", "mobilephone", "salutation", "telephone1"}

func without(list []string, drop ...string) []string {
	var out []string
	for _, s := range list {
		if !strings.Contains(" "+strings.Join(drop, " ")+" ", " "+s+" ") {
			out = append(out, s)
		}
	}
	return out
}

func TestAccTableMapping_basic(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	const addr = "crmsync_table_mapping.contact"
	withOverride := `
  exclude_columns = ["fax"]
  columns = {
    new_region  = { source = "Region__c" }
    description = { source = "Description", truncate = true }
  }
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{
				Config: mappingConfig(cp, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						// The destination is planned, not "known after apply", so a reviewer sees it.
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("destination_table"), knownvalue.StringExact("contact")),
						plancheck.ExpectUnknownValue(addr, tfjsonpath.New("effective_columns")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^map_`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("use_predefined_mappings"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("delete_behaviour"), knownvalue.StringExact("delete")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("columns"), knownvalue.Null()),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("repair_out_of_band_edits"), knownvalue.Bool(false)),
					effectiveDestinations(addr, contactPredefined...),
				},
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				Config: mappingConfig(cp, withOverride+`  delete_behaviour = "deactivate"
  repair_out_of_band_edits = true`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
						// The connector exists: the plan shows the effective columns the change produces.
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("effective_columns"), knownvalue.MapPartial(map[string]knownvalue.Check{
							"new_region": knownvalue.ObjectExact(map[string]knownvalue.Check{
								"source": knownvalue.StringExact("Region__c"), "destination": knownvalue.StringExact("new_region"),
								"source_type": knownvalue.Null(), "destination_type": knownvalue.Null(), "predefined": knownvalue.Bool(false),
							}),
						})),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					effectiveDestinations(addr, without(append(contactPredefined, "new_region"), "fax")...),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("effective_columns"), knownvalue.MapPartial(map[string]knownvalue.Check{
						"description": knownvalue.ObjectExact(map[string]knownvalue.Check{
							"source": knownvalue.StringExact("Description"), "destination": knownvalue.StringExact("description"),
							"source_type": knownvalue.StringExact("textarea"), "destination_type": knownvalue.StringExact("Memo"),
							"predefined": knownvalue.Bool(false),
						}),
					})),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("delete_behaviour"), knownvalue.StringExact("deactivate")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("repair_out_of_band_edits"), knownvalue.Bool(true)),
				},
				Check: func(*terraform.State) error {
					if m := contactMapping(t, cp); !m.RepairOutOfBandEdits {
						return fmt.Errorf("the control plane's mapping does not ask for repairs: %+v", m.TableConfig)
					}
					return nil
				},
			},
			{
				// Import by connector and table, the natural key.
				ResourceName:      addr,
				ImportState:       true,
				ImportStateVerify: true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[addr].Primary.Attributes["connector_id"] + "/Contact", nil
				},
			},
			{
				// Removing every override resets the table to its predefined mappings.
				Config: mappingConfig(cp, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					effectiveDestinations(addr, contactPredefined...),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("repair_out_of_band_edits"), knownvalue.Bool(false)),
				},
			},
		},
	})
}

// TestAccTableMapping_problemsPointAtTheAttribute checks that a mapping problem, error or warning, points at
// the configuration line at fault (the column's entry, the exclusion), as a pull request's plan output shows
// it. (A field the built-in catalog does not know is a warning: the live check decides.)
func TestAccTableMapping_problemsPointAtTheAttribute(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	check := func(run tfRun, summary, code string) {
		t.Helper()
		found := false
		for _, d := range run.Diagnostics {
			if strings.HasPrefix(d.Summary, summary) {
				found = true
				if !strings.Contains(d.Snippet.Code, code) {
					t.Errorf("%s points at %q, want the line %q", summary, d.Snippet.Code, code)
				}
			}
		}
		if !found {
			t.Errorf("no %q diagnostic; diagnostics: %v", summary, run.Diagnostics)
		}
	}
	// An error stops the plan in validation, before any warning.
	w.write(mappingConfig(cp, `  columns = {
    jobtitle = { source = "Title" }
  }
  exclude_columns = ["lastname"]`))
	check(w.run(1, "plan", "-json", "-input=false"), "Required destination column not mapped", `exclude_columns = ["lastname"]`)
	check(w.Plan(mappingConfig(cp, `  columns = {
    jobtitle = { source = "Titel" }
  }`)), "Unknown Salesforce field", `jobtitle = { source = "Titel" }`)
}

func TestAccTableMapping_disappears(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	cfg := mappingConfig(cp, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					m := contactMapping(t, cp)
					if err := cp.Client.DeleteMapping(context.Background(), m.ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("crmsync_table_mapping.contact", plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func TestAccTableMapping_outOfBandEditShowsInPlan(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	cfg := mappingConfig(cp, `  exclude_columns = ["fax"]`)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkConnectorsDestroyed(cp),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					m := contactMapping(t, cp)
					spec := m.TableConfig
					spec.ExcludeColumns = nil
					spec.Columns = map[string]mapping.ColumnOverride{"jobtitle": {Source: "Title"}}
					spec.RepairOutOfBandEdits = true
					if _, err := cp.Client.UpdateMapping(context.Background(), m.ID, spec); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("crmsync_table_mapping.contact", plancheck.ResourceActionUpdate),
						plancheck.ExpectKnownValue("crmsync_table_mapping.contact", tfjsonpath.New("columns"), knownvalue.Null()),
						plancheck.ExpectKnownValue("crmsync_table_mapping.contact", tfjsonpath.New("repair_out_of_band_edits"), knownvalue.Bool(false)),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func contactMapping(t *testing.T, cp *controlPlane) api.TableMapping {
	t.Helper()
	c, err := cp.Client.FindConnector(context.Background(), "acc-mapping")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := cp.Client.ListMappings(context.Background(), c.ID)
	if err != nil || len(ms) != 1 {
		t.Fatalf("listing mappings: %v (%d)", err, len(ms))
	}
	return ms[0]
}

// TestAccTableMapping_staticRulesFailThePlanAtTheAttribute covers every static rule: each
// config fails `plan` with the rule's message, at the attribute at fault, without any call to Salesforce or
// Dataverse.
func TestAccTableMapping_staticRulesFailThePlanAtTheAttribute(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	cases := []struct {
		name, body, want string
	}{
		{"incompatible types", `columns = { birthdate = { source = "Email" } }`,
			`(?s)Incompatible column types.*Email \(email\) cannot be written to birthdate \(DateTime\)`},
		{"two sources for one destination", `columns = {
    fax = { source = "Fax" }
    FAX = { source = "Phone" }
  }`, `(?s)Two sources for one destination column.*destination column fax has two sources`},
		{"required column unmapped", `exclude_columns = ["lastname"]`,
			`(?s)Required destination column not mapped.*required column contact.lastname is not mapped`},
		{"virtual destination", `columns = { entityimage = { source = "Description" } }`,
			`(?s)Destination column cannot be written.*entityimage is Virtual`},
		{"entityname destination", `columns = { owneridtype = { source = "Name" } }`,
			`(?s)Destination column cannot be written.*owneridtype is EntityName`},
		{"primary key overridden", `columns = { contactid = { source = "Name" } }`, `(?s)primary key of contact`},
		{"column both overridden and excluded", `exclude_columns = ["fax"]
  columns = { fax = { source = "Phone" } }`, `(?s)Invalid column exclusion.*both overridden in columns and excluded`},
		{"delete behaviour", `delete_behaviour = "archive"`, `value must be one of`},
		{"column name", `columns = { "new-region" = { source = "Region__c" } }`, `must be a Dataverse logical name`},
	}
	var steps []resource.TestStep
	for _, tc := range cases {
		steps = append(steps, resource.TestStep{Config: mappingConfig(cp, "  "+tc.body), PlanOnly: true, ExpectError: regexp.MustCompile(tc.want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: protoV6ProviderFactories, Steps: steps})
}

// TestAccTableMapping_planWarnings checks the plan's warnings as `terraform plan -json`
// reports them: source longer than destination unless truncate, table added, columns added and removed,
// table removed, and live validation degrading to a warning when the control plane cannot run it.
func TestAccTableMapping_planWarnings(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{}) // no Checker: live validation is unavailable
	w := newTFWorkdir(t)

	run := w.Plan(mappingConfig(cp, ""))
	if !run.Has("warning", "Known length caveats of the predefined mappings", "Description holds up to 32000 characters but description takes 2000", "truncate = true") {
		t.Errorf("no source-longer note for Description → description; diagnostics: %v", run.Diagnostics)
	}
	if !run.Has("warning", "Table added: existing records will be synced", "Salesforce Contact", "Dataverse contact", "initial load") {
		t.Errorf("no table-added warning; diagnostics: %v", run.Diagnostics)
	}

	truncated := `  columns = { description = { source = "Description", truncate = true } }`
	w.Apply(mappingConfig(cp, truncated))
	run = w.Plan(mappingConfig(cp, truncated))
	if run.Changes {
		t.Fatalf("plan right after apply is not empty:\n%s", run.Output)
	}
	if len(run.Diagnostics) > 0 {
		t.Errorf("a plan without changes warns: %v", run.Diagnostics)
	}

	changed := `  exclude_columns = ["fax", "mobilephone"]
  columns = {
    description = { source = "Description", truncate = true }
    jobtitle    = { source = "Title" }
  }`
	run = w.Plan(mappingConfig(cp, changed))
	if !run.Has("warning", "Columns added: existing records will be re-synced", "jobtitle (from Title)", "existing records of Salesforce Contact will be re-synced") {
		t.Errorf("no columns-added warning; diagnostics: %v", run.Diagnostics)
	}
	if !run.Has("warning", "Columns no longer synced", "fax, mobilephone", "stays in Dataverse and is no longer updated") {
		t.Errorf("no columns-removed warning; diagnostics: %v", run.Diagnostics)
	}
	if !run.Has("warning", "Live mapping validation skipped", "without a checker") {
		t.Errorf("live validation did not degrade to a warning; diagnostics: %v", run.Diagnostics)
	}
	if len(run.Errors()) > 0 {
		t.Errorf("errors: %v", run.Errors())
	}

	// Names the built-in catalog lacks warn statically (the live check, unavailable here, decides).
	unknown := `  columns = {
    jobtitle   = { source = "Titel" }
    telephone9 = { source = "Phone" }
  }`
	run = w.Plan(mappingConfig(cp, unknown))
	if !run.Has("warning", "Unknown Salesforce field: jobtitle ← Titel", "Titel is not a standard Contact field crmsync knows", `did you mean "Title"?`) ||
		!run.Has("warning", "Unknown Dataverse column", "telephone9 is not a standard contact column crmsync knows") {
		t.Errorf("no unknown-name warnings; diagnostics: %v", run.Diagnostics)
	}
	if len(run.Errors()) > 0 {
		t.Errorf("unknown names must not fail a plan without live validation: %v", run.Errors())
	}

	run = w.Plan(connectorConfig(cp, "acc-mapping", teamA))
	if !run.Has("warning", "Table no longer synced", "Salesforce Contact", "rows stay in Dataverse contact") {
		t.Errorf("no table-removed warning; diagnostics: %v", run.Diagnostics)
	}
	w.Destroy(mappingConfig(cp, truncated))
}

// TestAccTableMapping_liveRulesAskTheControlPlane: custom fields and columns are checked against the live
// Salesforce describe and Dataverse metadata through the control plane during plan, and the table-added
// warning carries the live record count.
func TestAccTableMapping_liveRulesAskTheControlPlane(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5, noSupervisor: true})
	connector := env.providerBlock() + env.connectorHCL("acc-live", env.sb.Info.Dataverse.TeamID)
	withRegion := connector + `
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
  columns = {
    new_region  = { source = "Region__c" }
    description = { source = "Description", truncate = true }
    lastname    = { source = "LastName", truncate = true }
  }
}
`
	w := newTFWorkdir(t)
	w.Apply(connector)

	// Neither the field nor the column exists yet: only the live rules can tell.
	w.write(withRegion)
	run := w.run(1, "plan", "-json", "-input=false")
	if !run.Has("error", "Unknown Salesforce field (live check)", "Contact.Region__c does not exist") ||
		!run.Has("error", "Unknown Dataverse column (live check)", "contact.new_region does not exist") {
		t.Fatalf("live rules did not report the missing field and column: %v", run.Diagnostics)
	}

	addRegion(t, env)
	run = w.Plan(withRegion)
	if len(run.Errors()) > 0 {
		t.Fatalf("errors once the field and column exist: %v", run.Errors())
	}
	if !run.Has("warning", "Table added: existing records will be synced", "about 20 records", "Salesforce API calls", "Dataverse requests") {
		t.Errorf("no record estimate in the table-added warning: %v", run.Diagnostics)
	}
	if run.Has("warning", "Live mapping validation skipped") {
		t.Errorf("live validation was skipped: %v", run.Diagnostics)
	}
	w.Destroy(connector)
}
