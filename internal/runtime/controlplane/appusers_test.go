package controlplane

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// A connector names several Dataverse application users. Each additional user's inline secret is
// write-only like the connector's own (stored encrypted under its client id, listed in secrets_set, never
// returned, given decrypted to the agent's lease only); an update that leaves it out keeps it, a reference
// replaces it, and a user removed from the list takes its stored secret with it.
func TestAdditionalApplicationUsersSecretsAreWriteOnlyAndFollowTheirUser(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Refs = policy.Refs{EnvPrefixes: []string{"CRMSYNC_"}} })
	ctx := t.Context()
	const u1, u2 = "0b0c58a2-34a4-4c51-9a41-1d2a6f3e0a01", "0B0C58A2-34A4-4C51-9A41-1D2A6F3E0A02"
	spec := connectorSpec("several")
	spec.Dataverse.AdditionalUsers = []api.DataverseApplicationUser{
		{ClientID: u1, ClientSecret: "dv-canary-user-one"},
		{ClientID: u2, ClientSecret: "dv-canary-user-two"},
	}
	c, err := e.client.CreateConnector(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	name1 := "dataverse.additional_application_users." + u1 + ".client_secret"
	name2 := "dataverse.additional_application_users." + strings.ToLower(u2) + ".client_secret"
	if !slices.Contains(c.SecretsSet, name1) || !slices.Contains(c.SecretsSet, name2) {
		t.Errorf("secrets_set %v lacks the users' secrets", c.SecretsSet)
	}
	if b := get(t, e, "/v1/connectors/"+c.ID); strings.Contains(b, "canary") || !strings.Contains(b, u1) {
		t.Errorf("the connector as read: %s", b)
	}
	if c.Dataverse.ApplicationUsers() != 3 {
		t.Errorf("ApplicationUsers() = %d, want 3", c.Dataverse.ApplicationUsers())
	}
	e.createMapping(t, c.ID, "Contact")
	lease := func() api.DataverseConfig {
		t.Helper()
		l, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.ReleaseLease(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
		return l.Config.Dataverse
	}
	if dv := lease(); len(dv.AdditionalUsers) != 2 || dv.AdditionalUsers[0].ClientSecret != "dv-canary-user-one" || dv.AdditionalUsers[1].ClientSecret != "dv-canary-user-two" {
		t.Errorf("the lease's users: %+v", dv.AdditionalUsers)
	}
	rev, err := e.store.RevisionConfig(ctx, c.ID, c.Revision+1)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(rev); strings.Contains(string(b), "canary") || !strings.Contains(string(b), u1) {
		t.Errorf("the revision config: %s", b)
	}

	// Reordered, the first left out (kept), the second by reference (its stored value dropped).
	spec.Dataverse.ClientSecret, spec.Salesforce.ClientSecret = "", ""
	spec.Dataverse.AdditionalUsers = []api.DataverseApplicationUser{
		{ClientID: u2, ClientSecretEnv: "CRMSYNC_DV_TWO"},
		{ClientID: u1},
	}
	up, err := e.client.UpdateConnector(ctx, c.ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(up.SecretsSet, name1) || slices.Contains(up.SecretsSet, name2) {
		t.Errorf("after the update: secrets_set %v", up.SecretsSet)
	}
	if dv := lease(); dv.AdditionalUsers[0].ClientSecret != "" || dv.AdditionalUsers[0].ClientSecretEnv != "CRMSYNC_DV_TWO" ||
		dv.AdditionalUsers[1].ClientSecret != "dv-canary-user-one" {
		t.Errorf("the lease's users after the update: %+v", dv.AdditionalUsers)
	}

	// u1 removed: its secret goes; named again without a secret, it is refused.
	spec.Dataverse.AdditionalUsers = spec.Dataverse.AdditionalUsers[:1]
	if up, err = e.client.UpdateConnector(ctx, c.ID, spec); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(up.SecretsSet, name1) {
		t.Errorf("a removed user's secret is still stored: %v", up.SecretsSet)
	}
	spec.Dataverse.AdditionalUsers = append(spec.Dataverse.AdditionalUsers, api.DataverseApplicationUser{ClientID: u1})
	_, err = e.client.UpdateConnector(ctx, c.ID, spec)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Error(), "dataverse.additional_application_users[1].client_secret") {
		t.Errorf("a user without a secret: %v", err)
	}
}

// The list of additional users is checked at declaration, naming the bad entry.
func TestAdditionalApplicationUsersAreValidated(t *testing.T) {
	e := newEnv(t)
	base := connectorSpec("bad-users")
	for _, tc := range []struct {
		users []api.DataverseApplicationUser
		want  string
	}{
		{[]api.DataverseApplicationUser{{ClientID: "not-a-guid", ClientSecret: "s"}}, "dataverse.additional_application_users[0].client_id"},
		{[]api.DataverseApplicationUser{{ClientID: base.Dataverse.ClientID, ClientSecret: "s"}}, "is already dataverse.client_id"},
		{[]api.DataverseApplicationUser{{ClientID: "0b0c58a2-34a4-4c51-9a41-1d2a6f3e0a01", ClientSecret: "s"},
			{ClientID: "0B0C58A2-34A4-4C51-9A41-1D2A6F3E0A01", ClientSecret: "s"}}, "is already dataverse.additional_application_users[0].client_id"},
		{[]api.DataverseApplicationUser{{ClientID: "0b0c58a2-34a4-4c51-9a41-1d2a6f3e0a01"}}, "one of dataverse.additional_application_users[0].client_secret"},
		{[]api.DataverseApplicationUser{{ClientID: "0b0c58a2-34a4-4c51-9a41-1d2a6f3e0a01", ClientSecret: "s", ClientSecretEnv: "X"}}, "give at most one"},
		{[]api.DataverseApplicationUser{{ClientID: "0b0c58a2-34a4-4c51-9a41-1d2a6f3e0a01", ClientSecretFile: "/etc/dv"}}, "dataverse.additional_application_users[0].client_secret_file"},
		{slices.Repeat([]api.DataverseApplicationUser{{ClientID: "x"}}, 16), "the limit is 15"},
	} {
		spec := base
		spec.Dataverse.AdditionalUsers = tc.users
		_, err := e.client.CreateConnector(t.Context(), spec)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Error(), tc.want) {
			t.Errorf("%+v: err %v, want a 400 saying %q", tc.users, err, tc.want)
		}
	}
}
