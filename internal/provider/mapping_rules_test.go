package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

func contactConfig(columns map[string]mapping.ColumnOverride, exclude ...string) mapping.TableConfig {
	return mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, Columns: columns, ExcludeColumns: exclude}
}

func codes(ps mapping.Problems) map[string]mapping.Severity {
	out := map[string]mapping.Severity{}
	for _, p := range ps {
		out[p.Code+" "+p.Column] = p.Severity
	}
	return out
}

func TestStaticProblems_coverEveryRuleWithoutNetwork(t *testing.T) {
	cases := []struct {
		name string
		cfg  mapping.TableConfig
		want string // code and column
		sev  mapping.Severity
	}{
		// Statically only the catalog is at hand: names it lacks warn, and the live check decides.
		{"unknown source", contactConfig(map[string]mapping.ColumnOverride{"jobtitle": {Source: "Titel"}}), "unknown_source_column jobtitle", mapping.Warning},
		{"unknown destination", contactConfig(map[string]mapping.ColumnOverride{"telephone9": {Source: "Phone"}}), "unknown_destination_column telephone9", mapping.Warning},
		{"incompatible types", contactConfig(map[string]mapping.ColumnOverride{"birthdate": {Source: "Email"}}), "incompatible_types birthdate", mapping.Error},
		{"two sources", contactConfig(map[string]mapping.ColumnOverride{"fax": {Source: "Fax"}, "FAX": {Source: "Phone"}}), "two_sources_for_destination fax", mapping.Error},
		{"required unmapped", contactConfig(nil, "lastname"), "required_column_unmapped lastname", mapping.Error},
		{"virtual", contactConfig(map[string]mapping.ColumnOverride{"entityimage": {Source: "Description"}}), "destination_not_writable entityimage", mapping.Error},
		{"entityname", contactConfig(map[string]mapping.ColumnOverride{"owneridtype": {Source: "Name"}}), "destination_not_writable owneridtype", mapping.Error},
		{"source longer", contactConfig(nil), "source_longer_than_destination description", mapping.Warning},
	}
	for _, tc := range cases {
		got := codes(staticProblems(tc.cfg))
		if sev, ok := got[tc.want]; !ok || sev != tc.sev {
			t.Errorf("%s: want %s (%s) among %v", tc.name, tc.want, tc.sev, got)
		}
	}
	// truncate silences the length warning; a custom field and column are left to the live rules.
	got := codes(staticProblems(contactConfig(map[string]mapping.ColumnOverride{
		"description": {Source: "Description", Truncate: true}, "new_region": {Source: "Region__c"}})))
	for k := range got {
		if strings.Contains(k, "description") || strings.Contains(k, "new_region") {
			t.Errorf("unexpected problem %s", k)
		}
	}
}

func TestStaticProblems_assumeTheTablesOfPredefinedLookupsAreSynced(t *testing.T) {
	// Contact's parentcustomerid needs Account; the static rules cannot see the other mapping, so neither
	// excluding it nor overriding it is reported.
	probs := staticProblems(contactConfig(map[string]mapping.ColumnOverride{"parentcustomerid": {Source: "AccountId"}}))
	probs = append(probs, staticProblems(contactConfig(nil, "parentcustomerid"))...)
	for _, p := range probs {
		if p.Column == "parentcustomerid" {
			t.Errorf("unexpected problem: %s", p)
		}
	}
}

func TestProblemPath_mapsMappingPathsToTerraformPaths(t *testing.T) {
	cfg := contactConfig(nil, "fax", "lastname")
	cases := map[string]path.Path{
		"source_table":              path.Root("source_table"),
		"columns.new_region.source": path.Root("columns").AtMapKey("new_region"),
		"exclude_columns[1]":        path.Root("exclude_columns").AtSetValue(types.StringValue("lastname")),
		"exclude_columns[7]":        path.Root("exclude_columns"),
		"use_predefined_mappings":   path.Root("use_predefined_mappings"),
		"columns":                   path.Root("columns"),
		"":                          path.Empty(),
	}
	for in, want := range cases {
		if got := problemPath(in, cfg); !got.Equal(want) {
			t.Errorf("problemPath(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAddProblems_keepsSeverityExceptForLookupsToUnsyncedTables(t *testing.T) {
	cfg := contactConfig(nil)
	probs := mapping.Problems{
		{Severity: mapping.Error, Code: mapping.CodeUnknownSource, Path: "columns.x.source", Message: "m1"},
		{Severity: mapping.Warning, Code: mapping.CodeSourceLonger, Path: "use_predefined_mappings", Message: "m2"},
		{Severity: mapping.Error, Code: mapping.CodeLookupTargetNotSynced, Path: "columns.y.source", Message: "m3"},
		{Severity: mapping.Error, Code: mapping.CodeIncompatibleTypes, Path: "columns.z.source", Message: "skipped"},
	}
	var diags diag.Diagnostics
	addProblems(&diags, probs, cfg, map[string]bool{problemKey(probs[3]): true}, false)
	if diags.ErrorsCount() != 1 || diags.WarningsCount() != 2 {
		t.Fatalf("errors %d, warnings %d; want 1 and 2: %v", diags.ErrorsCount(), diags.WarningsCount(), diags)
	}
	for _, d := range diags {
		if strings.Contains(d.Detail(), "skipped") {
			t.Error("a problem in skip was reported")
		}
	}
}

func TestColumnChanges_reportAddedChangedAndRemovedDestinations(t *testing.T) {
	before := []effectiveColumn{{"Id", "contactid", false}, {"Fax", "fax", false}, {"Phone", "telephone1", false}, {"Description", "description", false}}
	after := []effectiveColumn{{"Id", "contactid", false}, {"MobilePhone", "telephone1", false}, {"Description", "description", true}, {"Region__c", "new_region", false}}
	added, removed := columnChanges(before, after)
	if got := columnList(added, true); got != "description (from Description), new_region (from Region__c), telephone1 (from MobilePhone)" {
		t.Errorf("added = %s", got)
	}
	if got := columnList(removed, false); got != "fax" {
		t.Errorf("removed = %s", got)
	}
	if a, r := columnChanges(before, before); len(a)+len(r) != 0 {
		t.Errorf("no change reported %v %v", a, r)
	}
}

func TestEstimate_describesRecordsAndAPICalls(t *testing.T) {
	n := int64(120_000)
	got := estimate{Records: &n}.String()
	// 3 Bulk result pages + the fixed calls; 120 Dataverse batches of 1,000; 120,000 / 200 records/s = 10 min.
	if want := "about 120000 records: roughly 7 Salesforce API calls and 120 Dataverse requests; the writes take about 10 min at the service-protection budget of 1 Dataverse application user (about 200 records/s each)"; got != want {
		t.Errorf("estimate = %q, want %q", got, want)
	}
	// The control plane's estimate counts the connector's application users.
	l := api.LoadCost(n, 4)
	if got, want := (estimate{Records: &n, Load: &l}).String(), "the writes take about 3 min at the service-protection budget of 4 Dataverse application users"; !strings.Contains(got, want) {
		t.Errorf("estimate with 4 users = %q, want it to say %q", got, want)
	}
	if got := (estimate{Why: "the control plane is down"}).String(); !strings.Contains(got, "could not be estimated: the control plane is down") {
		t.Errorf("unknown estimate = %q", got)
	}
}
