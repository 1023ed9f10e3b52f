package dataverse

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

func privilegeNames(t *testing.T, r result) []string {
	t.Helper()
	var names []string
	for _, p := range r.json(t)["RolePrivileges"].([]any) {
		m := p.(map[string]any)
		for _, k := range []string{"Depth", "PrivilegeId", "BusinessUnitId", "PrivilegeName"} {
			if m[k] == nil {
				t.Errorf("RolePrivilege lacks %s: %v", k, m)
			}
		}
		names = append(names, m["PrivilegeName"].(string))
	}
	sort.Strings(names)
	return names
}

// Teams are readable, and RetrieveTeamPrivileges answers from the team's
// roles: one team holds every privilege on contact and account, the other none on them.
func TestTeamsAndRetrieveTeamPrivileges(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	r := env.mustStatus(env.call(http.MethodGet, "teams?$select=teamid,name,teamtype,_businessunitid_value&$filter=name eq 'crmsync Sync Owners'", nil), http.StatusOK)
	teams := values(t, r)
	if len(teams) != 1 || teams[0]["teamid"] != env.emu.TeamID() || teams[0]["teamtype"] != float64(0) || teams[0]["_businessunitid_value"] != env.emu.BusinessUnitID() {
		t.Fatalf("teams query: %s", r.raw)
	}
	r = env.mustStatus(env.call(http.MethodGet, "teams("+env.emu.TeamID()+")/Microsoft.Dynamics.CRM.RetrieveTeamPrivileges()", nil), http.StatusOK)
	if !strings.HasSuffix(r.json(t)["@odata.context"].(string), "$metadata#Microsoft.Dynamics.CRM.RetrieveTeamPrivilegesResponse") {
		t.Errorf("context: %s", r.raw)
	}
	full := strings.Join(privilegeNames(t, r), " ")
	for _, p := range []string{"prvCreateContact", "prvReadContact", "prvWriteContact", "prvAppendContact", "prvAppendToContact",
		"prvCreateAccount", "prvReadAccount", "prvWriteAccount", "prvAppendAccount", "prvAppendToAccount"} {
		if !strings.Contains(full, p) {
			t.Errorf("full team lacks %s: %s", p, full)
		}
	}
	r = env.mustStatus(env.call(http.MethodGet, "teams("+env.emu.TeamWithoutPrivilegesID()+")/Microsoft.Dynamics.CRM.RetrieveTeamPrivileges()", nil), http.StatusOK)
	for _, p := range privilegeNames(t, r) {
		if strings.HasSuffix(p, "Contact") || strings.HasSuffix(p, "Account") {
			t.Errorf("team without privileges holds %s", p)
		}
	}
	r = env.mustStatus(env.call(http.MethodGet, "teams("+env.emu.TeamID()+")/teamroles_association?$select=name,roleid", nil), http.StatusOK)
	if roles := values(t, r); len(roles) != 1 || roles[0]["name"] != "crmsync Sync Writer" {
		t.Errorf("teamroles_association: %s", r.raw)
	}
	r = env.mustStatus(env.call(http.MethodGet, "systemusers("+env.emu.ApplicationUserID()+")/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()", nil), http.StatusOK)
	if !strings.Contains(strings.Join(privilegeNames(t, r), " "), "prvActOnBehalfOfAnotherUser") {
		t.Error("the application user is not a System Administrator")
	}
	r = env.call(http.MethodGet, "teams("+guidC+")/Microsoft.Dynamics.CRM.RetrieveTeamPrivileges()", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("unknown team: %d", r.status)
	}
	// systemusers and businessunits are readable enough for binds and WhoAmI.
	r = env.mustStatus(env.call(http.MethodGet, "systemusers("+env.emu.ApplicationUserID()+")?$select=fullname,applicationid,_businessunitid_value", nil), http.StatusOK)
	if m := r.json(t); m["applicationid"] != env.emu.Config().ClientID || m["_businessunitid_value"] != env.emu.BusinessUnitID() {
		t.Errorf("application user: %s", r.raw)
	}
	env.mustStatus(env.call(http.MethodGet, "businessunits("+env.emu.BusinessUnitID()+")", nil), http.StatusOK)
	r = env.call(http.MethodPost, "teams", map[string]any{"name": "mine"})
	if r.status != http.StatusForbidden {
		t.Errorf("creating a team: %d (the sandbox keeps system tables read-only)", r.status)
	}
}

// A write whose ownerid binds a team lacking the privilege fails with 403 /
// 0x80040220 naming it (create, write, append, and append-to on the lookup's target), and changes nothing.
func TestWritesOwnedByATeamNeedItsPrivileges(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	none, full := env.emu.TeamWithoutPrivilegesID(), env.emu.TeamID()
	env.mustStatus(env.call(http.MethodPost, "accounts", map[string]any{"accountid": guidA, "name": "Parent", "ownerid@odata.bind": "/teams(" + full + ")"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"contactid": guidB, "lastname": "Existing", "ownerid@odata.bind": "/teams(" + full + ")"}), http.StatusNoContent)
	before := env.export("contact")

	expect := func(name string, r result, privilege string) {
		t.Helper()
		if r.status != http.StatusForbidden || r.errorCode(t) != codePrivilegeDenied {
			t.Fatalf("%s: %d %s, want 403 %s", name, r.status, r.raw, codePrivilegeDenied)
		}
		msg := r.errorMessage(t)
		if !strings.Contains(msg, "is missing "+privilege+" privilege") || !strings.Contains(msg, "Principal team (Id="+none) {
			t.Errorf("%s: message %q does not name %s for team %s", name, msg, privilege, none)
		}
	}
	owner := "/teams(" + none + ")"
	expect("create", env.call(http.MethodPost, "contacts", map[string]any{"lastname": "X", "ownerid@odata.bind": owner}), "prvCreateContact")
	expect("upsert that creates", env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "X", "ownerid@odata.bind": owner}), "prvCreateContact")
	expect("upsert that updates", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"lastname": "X", "ownerid@odata.bind": owner}), "prvWriteContact")
	expect("bulk", env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(3, 0, none)), "prvCreateContact")

	if err := env.emu.GrantTeamPrivileges(none, "", "prvCreateContact", "prvReadContact", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	expect("lookup without append", env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "X", "ownerid@odata.bind": owner,
		"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), "prvAppendContact")
	var granted teamView
	if status := env.adminCall(http.MethodPost, "/teams/"+none+"/privileges", map[string]any{"grant": []string{"prvAppendContact"}}, &granted); status != http.StatusOK {
		t.Fatalf("admin grant: %d", status)
	}
	expect("lookup without append-to on the target", env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "X", "ownerid@odata.bind": owner,
		"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), "prvAppendToAccount")
	if env.export("contact") != before {
		t.Fatal("a refused write changed stored rows")
	}
	if err := env.emu.GrantTeamPrivileges(none, "Global", "prvAppendToAccount"); err != nil {
		t.Fatal(err)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "X", "ownerid@odata.bind": owner,
		"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), http.StatusNoContent)

	// Revoking through the admin API takes effect at once, and RetrieveTeamPrivileges follows.
	if status := env.adminCall(http.MethodPost, "/teams/"+none+"/privileges", map[string]any{"revoke": []string{"prvWriteContact"}}, &granted); status != http.StatusOK {
		t.Fatalf("admin revoke: %d", status)
	}
	expect("after revoke", env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"firstname": "Y", "ownerid@odata.bind": owner}), "prvWriteContact")
	r := env.mustStatus(env.call(http.MethodGet, "teams("+none+")/Microsoft.Dynamics.CRM.RetrieveTeamPrivileges()", nil), http.StatusOK)
	if names := strings.Join(privilegeNames(t, r), " "); strings.Contains(names, "prvWriteContact") || !strings.Contains(names, "prvAppendToAccount") {
		t.Errorf("privileges after grant/revoke: %s", names)
	}
	r = env.mustStatus(env.call(http.MethodGet, "teams("+none+")/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)?@tid={'@odata.id':'contacts("+guidC+")'}", nil), http.StatusOK)
	if got := r.json(t)["AccessRights"]; got != "ReadAccess, AppendAccess, CreateAccess" {
		t.Errorf("RetrievePrincipalAccess = %v", got)
	}
	if err := env.emu.GrantTeamPrivileges(none, "", "prvNoSuchThing"); err == nil {
		t.Error("granting an unknown privilege succeeded")
	}
	if err := env.emu.Reset(); err != nil {
		t.Fatal(err)
	}
	if p, _ := env.emu.TeamPrivileges(none); strings.Contains(strings.Join(p, " "), "Contact") {
		t.Errorf("Reset kept granted privileges: %v", p)
	}
}

// Spec 8.5: MSCRMCallerID and CallerObjectId make the operation act as that user: WhoAmI answers them, and
// writes record them as createdby/modifiedby with the real caller as createdonbehalfby/modifiedonbehalfby.
func TestImpersonationHeadersAttributeWritesToTheUser(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	person := env.emu.PersonUserID()
	r := env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil, "MSCRMCallerID", person), http.StatusOK)
	if r.json(t)["UserId"] != person {
		t.Fatalf("WhoAmI as the person: %s", r.raw)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "Imp"}, "MSCRMCallerID", person), http.StatusNoContent)
	r = env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")?$select=_createdby_value,_modifiedby_value,_createdonbehalfby_value,_modifiedonbehalfby_value,_ownerid_value", nil), http.StatusOK)
	m := r.json(t)
	app := env.emu.ApplicationUserID()
	if m["_createdby_value"] != person || m["_modifiedby_value"] != person || m["_createdonbehalfby_value"] != app ||
		m["_modifiedonbehalfby_value"] != app || m["_ownerid_value"] != person {
		t.Fatalf("impersonated create: %s", r.raw)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"firstname": "Direct"}), http.StatusNoContent)
	r = env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")?$select=_modifiedby_value,_modifiedonbehalfby_value,_createdonbehalfby_value", nil), http.StatusOK)
	if m := r.json(t); m["_modifiedby_value"] != app || m["_modifiedonbehalfby_value"] != nil || m["_createdonbehalfby_value"] != app {
		t.Fatalf("direct update after an impersonated create: %s", r.raw)
	}
	r = env.call(http.MethodGet, "WhoAmI", nil, "MSCRMCallerID", guidC)
	if r.status != http.StatusNotFound {
		t.Errorf("unknown MSCRMCallerID: %d", r.status)
	}
	// CallerObjectId names the user by Entra object id.
	var aad string
	rows, _ := env.emu.Rows("systemuser", "", 0)
	for _, u := range rows {
		if u["systemuserid"] == person {
			aad, _ = u["azureactivedirectoryobjectid"].(string)
		}
	}
	r = env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil, "CallerObjectId", aad), http.StatusOK)
	if r.json(t)["UserId"] != person {
		t.Errorf("WhoAmI with CallerObjectId: %s", r.raw)
	}
}

// Dataverse checks the privilege of every operation on every request — not only when a
// write binds the owner. The application user acts through the team that owns the row (the setup the
// README describes: its privileges come from that team), so a write that does not bind ownerid is checked
// against the row's owning team: Write for an update (single, bulk message, $batch), Delete for a delete,
// Read for a read, Append / AppendTo for a lookup, Assign when a row changes owner. Each refusal is 403 /
// 0x80040220 naming the privilege, and changes nothing.
func TestEveryOperationChecksTheOwningTeamsPrivileges(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	full, none := env.emu.TeamID(), env.emu.TeamWithoutPrivilegesID()
	owner := map[string]any{"ownerid@odata.bind": "/teams(" + full + ")"}
	env.mustStatus(env.call(http.MethodPost, "accounts", map[string]any{"accountid": guidA, "name": "Parent", "ownerid@odata.bind": "/teams(" + full + ")"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"contactid": guidB, "lastname": "Existing", "ownerid@odata.bind": owner["ownerid@odata.bind"]}), http.StatusNoContent)
	before := env.export("contact")
	expect := func(name string, r result, privilege string) {
		t.Helper()
		if r.status != http.StatusForbidden || r.errorCode(t) != codePrivilegeDenied {
			t.Errorf("%s: %d %s, want 403 %s naming %s", name, r.status, r.raw, codePrivilegeDenied, privilege)
			return
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, "is missing "+privilege+" privilege") {
			t.Errorf("%s: message %q does not name %s", name, msg, privilege)
		}
	}
	revoke := func(names ...string) {
		t.Helper()
		if err := env.emu.RevokeTeamPrivileges(full, names...); err != nil {
			t.Fatal(err)
		}
	}
	grant := func(team string, names ...string) {
		t.Helper()
		if err := env.emu.GrantTeamPrivileges(team, "", names...); err != nil {
			t.Fatal(err)
		}
	}

	revoke("prvWriteContact")
	expect("update", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"telephone1": "555"}, "If-Match", "*"), "prvWriteContact")
	expect("upsert of an existing row", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"telephone1": "555"}), "prvWriteContact")
	expect("single-property PUT", env.call(http.MethodPut, "contacts("+guidB+")/telephone1", map[string]any{"value": "555"}), "prvWriteContact")
	expect("UpdateMultiple", env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": guidB, "telephone1": "555"}}}), "prvWriteContact")
	expect("UpsertMultiple", env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": guidB, "telephone1": "555"}}}), "prvWriteContact")
	bb := newBatch().changeSet("changeset_1", [4]string{"PATCH", "/api/data/v9.2/contacts(" + guidB + ")", `{"telephone1":"555"}`, "1"})
	r := env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType())
	if parts := parseBatchResponse(t, r); r.status != http.StatusForbidden || len(parts) != 1 || parts[0].status != http.StatusForbidden ||
		!strings.Contains(parts[0].body, "prvWriteContact") {
		t.Errorf("$batch update: %d %s, want 403 naming prvWriteContact", r.status, r.raw)
	}
	grant(full, "prvWriteContact")

	revoke("prvDeleteContact")
	expect("delete", env.call(http.MethodDelete, "contacts("+guidB+")", nil), "prvDeleteContact")
	grant(full, "prvDeleteContact")

	revoke("prvAppendContact")
	expect("lookup set without Append", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), "prvAppendContact")
	grant(full, "prvAppendContact")
	revoke("prvAppendToAccount")
	expect("lookup set without AppendTo on the target", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), "prvAppendToAccount")
	grant(full, "prvAppendToAccount")

	// A row that changes owner needs Assign of the team it is assigned to (besides its Write and Read).
	grant(none, "prvReadContact", "prvWriteContact", "prvCreateContact")
	expect("reassign", env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"ownerid@odata.bind": "/teams(" + none + ")"}), "prvAssignContact")

	if env.export("contact") != before {
		t.Fatal("a refused operation changed stored rows")
	}
	revoke("prvReadContact")
	expect("read", env.call(http.MethodGet, "contacts("+guidB+")?$select=lastname", nil), "prvReadContact")
	grant(full, "prvReadContact")

	// With the privileges back, the same operations succeed.
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"telephone1": "555", "parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}, "If-Match", "*"), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodGet, "contacts("+guidB+")?$select=lastname", nil), http.StatusOK)
	env.mustStatus(env.call(http.MethodDelete, "contacts("+guidB+")", nil), http.StatusNoContent)
}
