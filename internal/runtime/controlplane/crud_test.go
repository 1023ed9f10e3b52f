package controlplane

import (
	"errors"
	"slices"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

func TestConnectorCRUDRoundTripsThroughTheClient(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "salesforce-prod")
	if c.ID == "" || c.Revision != 1 || c.Name != "salesforce-prod" {
		t.Fatalf("created %+v", c)
	}
	if want := []string{"dataverse.client_secret", "salesforce.client_secret"}; !slices.Equal(c.SecretsSet, want) {
		t.Errorf("secrets_set = %v, want %v", c.SecretsSet, want)
	}
	if c.Salesforce.ClientSecret != "" || c.Dataverse.ClientSecret != "" {
		t.Errorf("a secret came back: %+v", c)
	}
	got, err := e.client.GetConnector(ctx, c.ID)
	if err != nil || got.ID != c.ID || got.TeamID != teamID {
		t.Fatalf("get: %+v, %v", got, err)
	}
	found, err := e.client.FindConnector(ctx, "salesforce-prod")
	if err != nil || found.ID != c.ID {
		t.Fatalf("find: %+v, %v", found, err)
	}
	if _, err := e.client.FindConnector(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("find unknown: %v, want not found", err)
	}
	list, err := e.client.ListConnectors(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	spec := connectorSpec("salesforce-prod")
	spec.Salesforce.ClientSecret, spec.Dataverse.ClientSecret = "", "" // kept
	spec.Salesforce.APIVersion = "63.0"
	up, err := e.client.UpdateConnector(ctx, c.ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	if up.Revision != 2 || up.Salesforce.APIVersion != "63.0" || len(up.SecretsSet) != 2 {
		t.Errorf("updated: %+v", up)
	}
	if err := e.client.DeleteConnector(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetConnector(ctx, c.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("get after delete: %v, want not found", err)
	}
}

func TestMappingCRUDRoundTripsThroughTheClient(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "crm")
	acc := e.createMapping(t, c.ID, "Account")
	con := e.createMapping(t, c.ID, "Contact")
	if acc.Revision != 2 || con.Revision != 3 {
		t.Errorf("mapping revisions %d, %d; want 2, 3", acc.Revision, con.Revision)
	}
	if con.DestinationTable != "contact" || len(con.EffectiveColumns) == 0 || !con.EffectiveColumns[0].Key {
		t.Errorf("contact mapping: %+v", con)
	}
	hasParent := slices.ContainsFunc(con.EffectiveColumns, func(c mapping.Column) bool { return c.Destination == "parentcustomerid" })
	if !hasParent {
		t.Error("Contact with Account synced lacks parentcustomerid")
	}
	ms, err := e.client.ListMappings(ctx, c.ID)
	if err != nil || len(ms) != 2 {
		t.Fatalf("list: %v, %v", ms, err)
	}
	spec := con.TableConfig
	spec.ExcludeColumns = []string{"fax"}
	up, err := e.client.UpdateMapping(ctx, con.ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	if up.Revision != 4 || slices.ContainsFunc(up.EffectiveColumns, func(c mapping.Column) bool { return c.Destination == "fax" }) {
		t.Errorf("updated: revision %d, columns %+v", up.Revision, up.EffectiveColumns)
	}
	got, err := e.client.GetMapping(ctx, con.ID)
	if err != nil || got.Revision != 4 {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if err := e.client.DeleteMapping(ctx, acc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetMapping(ctx, acc.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	conn, err := e.client.GetConnector(ctx, c.ID)
	if err != nil || conn.Revision != 5 {
		t.Errorf("connector revision %d after 4 changes, want 5 (%v)", conn.Revision, err)
	}
}
