package store

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// revisionColumns returns each table's effective destinations in the connector's latest revision.
func revisionColumns(t *testing.T, s *SQLite, connectorID string) map[string][]string {
	t.Helper()
	c, err := s.GetConnector(t.Context(), connectorID)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.RevisionConfig(t.Context(), connectorID, c.Revision)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tc := range cfg.Tables {
		for _, col := range tc.EffectiveColumns {
			out[tc.SourceTable] = append(out[tc.SourceTable], col.Destination)
		}
	}
	return out
}

// A revision carries every table's effective columns, resolved among the connector's tables when it is
// stored, equal to what the API serves for the mapping; a sibling added later changes them (Contact's
// parentcustomerid is mapped only while Account is synced) in the revision it creates.
func TestARevisionCarriesTheEffectiveColumnsOfItsTables(t *testing.T) {
	s := behaviourStore(t)
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("one"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	contact, err := s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if cols := revisionColumns(t, s, c.ID)["Contact"]; len(cols) == 0 || slices.Contains(cols, "parentcustomerid") {
		t.Fatalf("Contact alone: revision columns %v; want the predefined ones without parentcustomerid", cols)
	}
	if _, err := s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Account", UsePredefined: true}, "test"); err != nil {
		t.Fatal(err)
	}
	got := revisionColumns(t, s, c.ID)
	if !slices.Contains(got["Contact"], "parentcustomerid") || len(got["Account"]) == 0 {
		t.Fatalf("with Account: revision columns %v; want Contact's parentcustomerid and Account's columns", got)
	}
	served, err := s.GetMapping(ctx, contact.ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, col := range served.EffectiveColumns {
		want = append(want, col.Destination)
	}
	if !reflect.DeepEqual(got["Contact"], want) {
		t.Errorf("the revision's Contact columns %v differ from the mapping's effective_columns %v", got["Contact"], want)
	}
}

// A revision stored before revisions carried effective columns gets them when it is read, for the lease and
// for backups alike.
func TestARevisionStoredWithoutEffectiveColumnsGetsThemWhenRead(t *testing.T) {
	s := behaviourStore(t)
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("one"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, "test"); err != nil {
		t.Fatal(err)
	}
	c, err = s.GetConnector(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := revisionColumns(t, s, c.ID)
	// Rewrite the stored config as an older binary wrote it: tables without effective_columns.
	var raw map[string]any
	var b string
	if err := s.db.QueryRowContext(ctx, `SELECT config FROM revisions WHERE connector_id = ? AND revision = ?`, c.ID, c.Revision).Scan(&b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &raw); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range raw["tables"].([]any) {
		delete(tbl.(map[string]any), "effective_columns")
	}
	old, _ := json.Marshal(raw)
	if _, err := s.db.ExecContext(ctx, `UPDATE revisions SET config = ? WHERE connector_id = ? AND revision = ?`, string(old), c.ID, c.Revision); err != nil {
		t.Fatal(err)
	}
	if got := revisionColumns(t, s, c.ID); !reflect.DeepEqual(got, want) || len(got["Contact"]) == 0 {
		t.Errorf("an old revision read back: columns %v; want %v", got, want)
	}
}
