package dataverse

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// POST answers 204 with OData-EntityId, or 201 with the row and
// Preference-Applied under return=representation; a caller-chosen primary key is honoured and a second
// POST of it fails with 412 / 0x80040237.
func TestCreateAnswers204Or201AndHonoursTheChosenKey(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	r := env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"firstname": "Ada", "lastname": "Lovelace"}), http.StatusNoContent)
	loc := r.header.Get("OData-EntityId")
	if !strings.HasPrefix(loc, env.api.URL+"/api/data/v9.2/contacts(") || len(r.raw) != 0 {
		t.Fatalf("OData-EntityId = %q, body %q", loc, r.raw)
	}

	r = env.mustStatus(env.call(http.MethodPost, "contacts?$select=lastname", map[string]any{"contactid": guidA, "lastname": "Hopper"},
		"Prefer", "return=representation"), http.StatusCreated)
	m := r.json(t)
	if m["contactid"] != guidA || m["lastname"] != "Hopper" || r.header.Get("Preference-Applied") != "return=representation" {
		t.Fatalf("representation: %s %v", r.raw, r.header)
	}
	if r.header.Get("OData-EntityId") != "" {
		t.Error("OData-EntityId sent together with return=representation")
	}
	if !strings.HasSuffix(m["@odata.context"].(string), "$metadata#contacts(lastname)/$entity") || !strings.HasPrefix(m["@odata.etag"].(string), `W/"`) {
		t.Errorf("context/etag: %s", r.raw)
	}
	if _, extra := m["firstname"]; extra {
		t.Errorf("$select not applied: %s", r.raw)
	}
	r = env.call(http.MethodPost, "contacts", map[string]any{"contactid": guidA, "lastname": "Again"})
	if r.status != http.StatusPreconditionFailed || r.errorCode(t) != codeDuplicateRecord {
		t.Fatalf("duplicate POST: %d %s", r.status, r.raw)
	}
	row, _ := env.emu.Row("contact", guidA)
	if row["lastname"] != "Hopper" {
		t.Errorf("duplicate POST changed the row: %v", row)
	}
	if n := env.emu.Counters()["single_write"]; n != 3 {
		t.Errorf("single_write counter = %d, want 3", n)
	}
}

// Spec 4.3: PATCH without conditions upserts (204 both ways; 201/200 with return=representation),
// If-Match: * only updates (404 / 0x80040217 when missing), If-None-Match: * only creates (412 / 0x80040237
// when present), and a stale ETag fails with 412.
func TestPatchUpsertSemantics(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	path := "contacts(" + guidA + ")"
	r := env.mustStatus(env.call(http.MethodPatch, path, map[string]any{"lastname": "Created"}), http.StatusNoContent)
	if r.header.Get("OData-EntityId") != env.api.URL+"/api/data/v9.2/"+path {
		t.Errorf("OData-EntityId = %q", r.header.Get("OData-EntityId"))
	}
	env.mustStatus(env.call(http.MethodPatch, path, map[string]any{"firstname": "Updated"}), http.StatusNoContent)
	row, _ := env.emu.Row("contact", guidA)
	if row["lastname"] != "Created" || row["firstname"] != "Updated" {
		t.Fatalf("after upsert both ways: %v", row)
	}

	r = env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")?$select=contactid", map[string]any{"lastname": "B"}, "Prefer", "return=representation"), http.StatusCreated)
	if r.header.Get("ETag") == "" || r.json(t)["contactid"] != guidB {
		t.Errorf("created with representation: %s %v", r.raw, r.header)
	}
	r = env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")?$select=contactid", map[string]any{"firstname": "b"}, "Prefer", "return=representation"), http.StatusOK)
	etagB := r.header.Get("ETag")

	r = env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "C"}, "If-Match", "*")
	if r.status != http.StatusNotFound || r.errorCode(t) != codeObjectDoesNotExist || r.errorMessage(t) != "contact With Id = "+guidC+" Does Not Exist" {
		t.Fatalf("If-Match * on a missing row: %d %s", r.status, r.raw)
	}
	if _, err := env.emu.Row("contact", guidC); err == nil {
		t.Fatal("If-Match: * created a row")
	}
	env.mustStatus(env.call(http.MethodPatch, path, map[string]any{"fax": "1"}, "If-Match", "*"), http.StatusNoContent)

	r = env.call(http.MethodPatch, path, map[string]any{"fax": "2"}, "If-None-Match", "*")
	if r.status != http.StatusPreconditionFailed || r.errorCode(t) != codeDuplicateRecord || r.errorMessage(t) != "A record with matching key values already exists." {
		t.Fatalf("If-None-Match * on an existing row: %d %s", r.status, r.raw)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidC+")", map[string]any{"lastname": "C"}, "If-None-Match", "*"), http.StatusNoContent)

	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"fax": "x"}, "If-Match", etagB), http.StatusNoContent)
	r = env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"fax": "y"}, "If-Match", etagB)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale ETag: %d %s", r.status, r.raw)
	}
	if row, _ := env.emu.Row("contact", guidB); row["fax"] != "x" {
		t.Errorf("stale ETag write applied: %v", row)
	}
}

// Spec 4.6, 5.3: ownerid binds to teams and systemusers, parentcustomerid binds through either navigation
// property, reads come back as _x_value (with annotations on request), and createdon/modifiedon/modifiedby
// are maintained on every write.
func TestBindsAndSystemColumns(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	team := env.emu.TeamID()
	env.mustStatus(env.call(http.MethodPost, "accounts", map[string]any{"accountid": guidA, "name": "Contoso", "ownerid@odata.bind": "/teams(" + team + ")"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"lastname": "Lovelace",
		"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")", "ownerid@odata.bind": env.api.URL + "/api/data/v9.2/teams(" + team + ")"}), http.StatusNoContent)
	r := env.mustStatus(env.call(http.MethodGet, "contacts("+guidB+")?$select=_parentcustomerid_value,_ownerid_value,createdon,modifiedon,_modifiedby_value", nil,
		"Prefer", `odata.include-annotations="*"`), http.StatusOK)
	m := r.json(t)
	if m["_parentcustomerid_value"] != guidA || m["_ownerid_value"] != team {
		t.Fatalf("lookups: %s", r.raw)
	}
	for k, want := range map[string]string{
		"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":            "account",
		"_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty": "parentcustomerid_account",
		"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue":           "Contoso",
		"_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":                     "team",
		"_modifiedby_value": env.emu.ApplicationUserID(),
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %q", k, m[k], want)
		}
	}
	created := m["createdon"].(string)

	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_contact@odata.bind": "/contacts(" + guidB + ")",
		"ownerid@odata.bind": "/systemusers(" + env.emu.ApplicationUserID() + ")"}), http.StatusNoContent)
	row, _ := env.emu.Row("contact", guidB)
	if row["parentcustomerid"] != guidB || row["parentcustomeridtype"] != "contact" || row["owneridtype"] != "systemuser" {
		t.Errorf("rebound: %v", row)
	}

	env.clock.Advance(90 * time.Second)
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_contact@odata.bind": nil}), http.StatusNoContent)
	row, _ = env.emu.Row("contact", guidB)
	if _, set := row["parentcustomerid"]; set {
		t.Errorf("null bind did not clear the lookup: %v", row)
	}
	if row["createdon"] != created || row["modifiedon"] == created {
		t.Errorf("createdon %v (want %s), modifiedon %v (want moved)", row["createdon"], created, row["modifiedon"])
	}
	// The documented way to clear a lookup.
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodDelete, "contacts("+guidB+")/parentcustomerid_account/$ref", nil), http.StatusNoContent)
	if row, _ = env.emu.Row("contact", guidB); row["parentcustomerid"] != nil {
		t.Errorf("$ref delete did not clear the lookup: %v", row)
	}
	// Account lookups.
	env.mustStatus(env.call(http.MethodPatch, "accounts("+guidA+")", map[string]any{"primarycontactid@odata.bind": "/contacts(" + guidB + ")",
		"parentaccountid@odata.bind": "/accounts(" + guidA + ")"}), http.StatusNoContent)
	r = env.mustStatus(env.call(http.MethodGet, "accounts("+guidA+")?$select=_primarycontactid_value,_parentaccountid_value", nil), http.StatusOK)
	if m := r.json(t); m["_primarycontactid_value"] != guidB || m["_parentaccountid_value"] != guidA {
		t.Errorf("account lookups: %s", r.raw)
	}
	// Binding to the wrong entity set for the navigation property fails.
	r = env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"parentcustomerid_account@odata.bind": "/contacts(" + guidB + ")"})
	if r.status != http.StatusBadRequest {
		t.Errorf("parentcustomerid_account bound to a contact: %d %s", r.status, r.raw)
	}
}

// Spec 4.5 and 4.2: DELETE answers 204 then 404; single properties are read, set and cleared.
func TestDeleteAndSinglePropertyOperations(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "L", "description": "d"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPut, "contacts("+guidA+")/firstname", map[string]any{"value": "F"}), http.StatusNoContent)
	r := env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")/firstname", nil), http.StatusOK)
	if r.json(t)["value"] != "F" {
		t.Errorf("property GET: %s", r.raw)
	}
	env.mustStatus(env.call(http.MethodDelete, "contacts("+guidA+")/description", nil), http.StatusNoContent)
	if row, _ := env.emu.Row("contact", guidA); row["description"] != nil || row["firstname"] != "F" {
		t.Errorf("after property ops: %v", row)
	}
	env.mustStatus(env.call(http.MethodDelete, "contacts("+guidA+")", nil), http.StatusNoContent)
	r = env.call(http.MethodDelete, "contacts("+guidA+")", nil)
	if r.status != http.StatusNotFound || r.errorCode(t) != codeObjectDoesNotExist {
		t.Fatalf("second DELETE: %d %s", r.status, r.raw)
	}
	if n, _ := env.emu.Count("contact"); n != 0 {
		t.Errorf("count after delete = %d", n)
	}
}
