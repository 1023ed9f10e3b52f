package plansummary

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// fixedEstimator answers record counts by source table.
type fixedEstimator map[string]int64

func (f fixedEstimator) EstimateRecords(_ context.Context, _ string, t mapping.TableConfig) (int64, error) {
	n, ok := f[t.SourceTable]
	if !ok {
		return 0, errors.New("no such table in the test")
	}
	return n, nil
}

// planDoc builds a JSON plan from resource changes.
func planDoc(t *testing.T, changes ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"format_version": "1.2", "terraform_version": "1.8.5", "resource_changes": changes,
		"planned_values": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rc(addr string, actions []string, before, after map[string]any, extra ...map[string]any) map[string]any {
	typ, name, _ := strings.Cut(addr, ".")
	ch := map[string]any{"actions": actions, "before": before, "after": after}
	for _, e := range extra {
		for k, v := range e {
			ch[k] = v
		}
	}
	return map[string]any{"address": addr, "mode": "managed", "type": typ, "name": name, "change": ch}
}

func connector(id, name, team string, dv map[string]any) map[string]any {
	return map[string]any{"id": id, "name": name, "team_id": team,
		"salesforce": map[string]any{"login_url": "https://login.salesforce.com", "auth": "jwt_bearer", "private_key_file": "/etc/crmsync/sf.key"},
		"dataverse":  dv}
}

const canary = "CANARY-secret-value-4c1e"

func TestSummarize_neverPrintsSecretValues(t *testing.T) {
	before := connector("con_1", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com", "client_secret": canary + "-old"})
	after := connector("con_1", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com", "client_secret": canary})
	doc := planDoc(t, rc("crmsync_connector.prod", []string{"update"}, before, after, map[string]any{
		"before_sensitive": map[string]any{"dataverse": map[string]any{"client_secret": true}},
		"after_sensitive":  map[string]any{"dataverse": map[string]any{"client_secret": true}},
	}))
	s, err := Summarize(t.Context(), doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{s.Markdown(), s.JSON()} {
		if strings.Contains(string(out), "CANARY") {
			t.Fatalf("the summary prints a secret value:\n%s", out)
		}
	}
	if !strings.Contains(string(s.Markdown()), "Dataverse client secret changed inline") {
		t.Errorf("the inline secret change is not reported:\n%s", s.Markdown())
	}
}

func TestSummarize_headlineAndEstimates(t *testing.T) {
	eff := func(cols ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(cols); i += 2 {
			m[cols[i+1]] = map[string]any{"source": cols[i], "destination": cols[i+1], "predefined": true}
		}
		return m
	}
	mappingVals := func(cols map[string]any) map[string]any {
		return map[string]any{"id": "map_1", "connector_id": "con_1", "source_table": "Contact", "destination_table": "contact", "effective_columns": cols}
	}
	conn := connector("con_1", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com"})
	doc := planDoc(t,
		rc("crmsync_connector.prod", []string{"no-op"}, conn, conn),
		rc("crmsync_table_mapping.contact", []string{"update"},
			mappingVals(eff("Id", "contactid", "Fax", "fax", "Title", "jobtitle")),
			mappingVals(eff("Id", "contactid", "MailingCity", "address1_city", "HomePhone", "telephone2", "Department", "jobtitle"))),
	)
	s, err := Summarize(t.Context(), doc, Options{Estimator: fixedEstimator{"Contact": 20000}})
	if err != nil {
		t.Fatal(err)
	}
	want := "3 columns added or changed in contact: re-sync of ~20,000 records; 1 column no longer synced in contact."
	if s.Headline != want {
		t.Errorf("headline = %q, want %q", s.Headline, want)
	}
	md := string(s.Markdown())
	for _, part := range []string{"| added | `address1_city` | `MailingCity` |", "| changed | `jobtitle` | `Title` → `Department` |",
		"| removed | `fax` | `Fax` |", "Re-sync: ~20,000 records of Salesforce Contact (~5 Salesforce API calls, ~20 Dataverse requests)"} {
		if !strings.Contains(md, part) {
			t.Errorf("the Markdown lacks %q:\n%s", part, md)
		}
	}
	// Offline: the same summary, with the counts said to be missing.
	s, err = Summarize(t.Context(), doc, Options{NoEstimator: "--offline"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Headline, "re-sync of every contact record (count not known)") || !strings.Contains(string(s.Markdown()), "not shown: --offline") {
		t.Errorf("offline summary:\n%s", s.Markdown())
	}
}

func TestSummarize_refusesWhatIsNotAPlan(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":       "plan: yes",
		"empty":          "",
		"an array":       "[1, 2]",
		"no version":     `{"resource_changes": []}`,
		"version 2":      `{"format_version": "2.0"}`,
		"a state":        `{"format_version": "1.0", "values": {"root_module": {}}}`,
		"errored":        `{"format_version": "1.2", "errored": true, "resource_changes": []}`,
		"wrong type":     `{"format_version": "1.2", "resource_changes": {"a": 1}}`,
		"actions string": `{"format_version": "1.2", "resource_changes": [{"change": {"actions": "update"}}]}`,
	} {
		_, err := Summarize(t.Context(), []byte(doc), Options{})
		if !errors.Is(err, ErrNotAPlan) {
			t.Errorf("%s: err = %v, want ErrNotAPlan", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestSummarize_noCrmsyncChanges(t *testing.T) {
	doc := planDoc(t, rc("null_resource.x", []string{"create"}, nil, map[string]any{}))
	s, err := Summarize(t.Context(), doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Headline != "No crmsync changes." || s.Other != 1 {
		t.Errorf("headline %q, other %d", s.Headline, s.Other)
	}
	if md := string(s.Markdown()); !strings.Contains(md, "1 resource change of other providers") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestSummarize_secretRotationAndReferences(t *testing.T) {
	before := connector("con_1", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com",
		"client_secret_wo": nil, "client_secret_wo_version": float64(1)})
	after := connector("con_1", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com",
		"client_secret_wo": nil, "client_secret_wo_version": float64(2)})
	after["salesforce"].(map[string]any)["private_key_file"] = "/etc/crmsync/sf-2026.key"
	doc := planDoc(t, rc("crmsync_connector.prod", []string{"update"}, before, after))
	s, err := Summarize(t.Context(), doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Headline != "1 secret rotated." {
		t.Errorf("headline = %q", s.Headline)
	}
	md := string(s.Markdown())
	for _, part := range []string{"Dataverse client secret rotated (client_secret_wo_version 1 → 2)",
		"Salesforce private key now read from /etc/crmsync/sf-2026.key instead of /etc/crmsync/sf.key on the agent's host"} {
		if !strings.Contains(md, part) {
			t.Errorf("the Markdown lacks %q:\n%s", part, md)
		}
	}
}

// A first apply: the new connector and its activation are the news, its tables are listed under it.
func TestSummarize_newConnector(t *testing.T) {
	conn := connector("", "prod", "6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44", map[string]any{"environment_url": "https://acme.crm.dynamics.com"})
	delete(conn, "id")
	table := map[string]any{"source_table": "Contact", "destination_table": "contact"}
	doc := planDoc(t,
		rc("crmsync_connector.prod", []string{"create"}, nil, conn, map[string]any{"after_unknown": map[string]any{"id": true}}),
		rc("crmsync_table_mapping.contact", []string{"create"}, nil, table, map[string]any{"after_unknown": map[string]any{"connector_id": true, "effective_columns": true}}),
		rc("crmsync_activation.prod", []string{"create"}, nil, map[string]any{"wait_for": "initial_load"}, map[string]any{"after_unknown": map[string]any{"connector_id": true}}),
	)
	// The configuration ties the table and the activation to the connector whose ID is not known yet.
	var p map[string]any
	if err := json.Unmarshal(doc, &p); err != nil {
		t.Fatal(err)
	}
	ref := func(addr string) map[string]any {
		return map[string]any{"address": addr, "mode": "managed", "expressions": map[string]any{
			"connector_id": map[string]any{"references": []any{"crmsync_connector.prod.id", "crmsync_connector.prod"}}}}
	}
	p["configuration"] = map[string]any{"root_module": map[string]any{"resources": []any{ref("crmsync_table_mapping.contact"), ref("crmsync_activation.prod")}}}
	doc, _ = json.Marshal(p)
	s, err := Summarize(t.Context(), doc, Options{Estimator: fixedEstimator{"Contact": 10}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Connector prod created; sync of prod starts."; s.Headline != want {
		t.Errorf("headline = %q, want %q", s.Headline, want)
	}
	if len(s.Connectors) != 1 || len(s.Connectors[0].Tables) != 1 || s.Connectors[0].Activation == nil {
		t.Fatalf("the table and the activation are not under the new connector:\n%s", s.Markdown())
	}
	if e := s.Connectors[0].Tables[0].Estimate; e == nil || e.Unknown != "the connector is created by this apply" {
		t.Errorf("estimate of a new connector's table = %+v", e)
	}
}
