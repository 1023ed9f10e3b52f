package preflight_test

import (
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	dvemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
)

// Preflight checks each additional Dataverse application user (a token, WhoAmI, its privileges),
// whether its secret is stored inline or referenced; a user whose secret is wrong fails the check, naming it.
func TestEachAdditionalApplicationUserIsChecked(t *testing.T) {
	e := newEnvWith(t, sandbox.Options{Dataverse: dvemu.Config{ApplicationUsers: 2}})
	users := e.sb.Info.Dataverse.ApplicationUsers
	e.conn.Dataverse.AdditionalUsers = []api.DataverseApplicationUser{
		{ClientID: users[0].ClientID},
		{ClientID: users[1].ClientID, ClientSecretFile: users[1].ClientSecretFile},
	}
	e.secrets[e.conn.Dataverse.AdditionalUsers[0].SecretName()] = users[0].ClientSecret
	checker := e.checker()

	checks := checker.Preflight(t.Context(), e.conn, e.secrets, e.maps)
	ch := checks[len(checks)-1]
	if ch.Name != "dataverse_application_users" || !ch.OK || ch.Warning {
		t.Fatalf("last check: %+v", ch)
	}
	for _, u := range users {
		if !strings.Contains(ch.Message, u.ClientID) || !strings.Contains(ch.Message, u.UserID) {
			t.Errorf("the check does not name client %s as application user %s: %s", u.ClientID, u.UserID, ch.Message)
		}
	}

	e.secrets[e.conn.Dataverse.AdditionalUsers[0].SecretName()] = "dv~wrong"
	checks = checker.Preflight(t.Context(), e.conn, e.secrets, e.maps)
	ch = checks[len(checks)-1]
	if ch.OK || !strings.Contains(ch.Message, "additional_application_users[0] (client "+users[0].ClientID+")") ||
		!strings.Contains(ch.Message, "AADSTS7000215") || strings.Contains(ch.Message, "additional_application_users[1]") {
		t.Errorf("a wrong secret of user 0: %+v", ch)
	}
	for _, c := range checks[:len(checks)-1] {
		if c.Name == "dataverse_credentials" && (!c.OK || c.Warning) {
			t.Errorf("the connector's own user is unaffected: %+v", c)
		}
	}
}
