package provider

import (
	"fmt"
	"strings"
	"testing"
)

// duplicated returns the diagnostics of run that appear more than once (same severity, summary, detail and
// address).
func duplicated(run tfRun) []string {
	seen := map[string]int{}
	for _, d := range run.Diagnostics {
		seen[d.String()]++
	}
	var out []string
	for k, n := range seen {
		if n > 1 {
			out = append(out, k)
		}
	}
	return out
}

// Every plan, even "No changes", printed "Source longer than destination … (and 11 more similar
// warnings elsewhere)": six caveats of the predefined mappings, each twice (validate and plan). A real mistake
// (firstname ← Description, 32,000 → 50 characters) hid in "(and 13 more…)", and a typo (source = "Titel")
// was only a warning although the control plane could check it.
func TestAccTableMapping_planSaysWhatMattersOnce(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5, noSupervisor: true})
	// The Dataverse secret by reference: an inline one draws the connector's own (deliberate) warning on
	// every plan.
	connector := env.providerBlock() + env.connectorHCLWith("acc-noise", env.sb.Info.Dataverse.TeamID,
		fmt.Sprintf("client_secret_file = %q", env.sb.Info.Dataverse.ClientSecretFile))
	mapping := func(columns string) string {
		return connector + `
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
` + columns + `
}
`
	}
	w := newTFWorkdir(t)
	w.Apply(connector)

	mistake := `  columns = { firstname = { source = "Description" } }`
	run := w.Plan(mapping(mistake))
	t.Logf("diagnostics of the first plan:\n%v", run.Diagnostics)
	if d := duplicated(run); len(d) > 0 {
		t.Errorf("diagnostics printed more than once: %v", d)
	}
	var caveats, own int
	for _, d := range run.Warnings() {
		switch {
		case strings.HasPrefix(d.Summary, "Known length caveats of the predefined mappings"):
			caveats++
			if !strings.Contains(d.Detail, "LastName") || strings.Contains(d.Detail, "firstname") {
				t.Errorf("the predefined caveats note: %s", d.Detail)
			}
		case strings.HasPrefix(d.Summary, "Source longer than destination"):
			own++
			if !strings.Contains(d.Summary, "firstname ← Description") || !strings.Contains(d.Detail, "32000") || !strings.Contains(d.Detail, "50") {
				t.Errorf("the mistake's warning does not name it: %s: %s", d.Summary, d.Detail)
			}
		}
	}
	if caveats != 1 || own != 1 {
		t.Errorf("%d predefined-caveat notes and %d warnings of the declared column, want one each: %v", caveats, own, run.Warnings())
	}

	w.Apply(mapping(mistake))
	run = w.Plan(mapping(mistake))
	if run.Changes || len(run.Diagnostics) > 0 {
		t.Errorf("a plan without changes says something: changes %v, %v", run.Changes, run.Diagnostics)
	}

	// A typo in a source field is an error at plan, with the field it probably meant.
	w.write(mapping(`  columns = { jobtitle = { source = "Titel" } }`))
	run = w.run(1, "plan", "-json", "-input=false", "-lock=false")
	if !run.Has("error", "Unknown Salesforce field (live check): jobtitle ← Titel", "Contact.Titel does not exist", `did you mean "Title"?`) {
		t.Errorf("the typo is not an error naming the likely field: %v", run.Diagnostics)
	}
	if d := duplicated(run); len(d) > 0 {
		t.Errorf("diagnostics printed more than once: %v", d)
	}
	w.Destroy(mapping(mistake))
}
