package controlplane

import (
	"net/http"
	"strings"
	"testing"
)

// PUT activation with {} or null deactivated the connector (active is required by
// the OpenAPI document), and {"active":false,"ACTIVE":true} activated it (duplicate keys in another case,
// the last one winning). Each is refused with 400 naming the field, and the activation is left as it was.
func TestActivationBodiesMissingOrDuplicatingActiveAreRefused(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "strict")
	e.createMapping(t, c.ID, "Contact")
	if _, err := e.client.SetActivation(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	path := "/v1/connectors/" + c.ID + "/activation"
	for _, k := range []struct {
		name, body string
		code       string
		field      string
	}{
		{"empty object", `{}`, CodeInvalidJSON, "active"},
		{"null", `null`, CodeInvalidJSON, ""},
		{"active null", `{"active":null}`, CodeInvalidJSON, "active"},
		{"duplicate in another case", `{"active":false,"ACTIVE":true}`, CodeInvalidJSON, "ACTIVE"},
		{"duplicate in the same case", `{"active":false,"active":false}`, CodeInvalidJSON, "active"},
		{"the field in another case", `{"Active":false}`, CodeInvalidJSON, "Active"},
	} {
		status, body, _ := e.raw(t, "PUT", path, []byte(k.body), nil)
		if status != http.StatusBadRequest || body.Code != k.code || body.Field != k.field {
			t.Errorf("%s %s: %d %s field %q (%s), want 400 %s field %q", k.name, k.body, status, body.Code, body.Field, body.Message, k.code, k.field)
		}
		a, err := e.client.GetActivation(t.Context(), c.ID)
		if err != nil || !a.Active {
			t.Fatalf("after %s: the connector is no longer active (%+v, %v)", k.name, a, err)
		}
	}
}

// Duplicate keys are refused wherever they are (nested objects, maps, lists), in any case; required members
// are required in nested objects too.
func TestDuplicateKeysAndMissingRequiredMembersAreRefusedEverywhere(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "base")
	for _, k := range []struct {
		name, method, path, body string
		field                    string
	}{
		{"duplicate top-level member", "POST", "/v1/connectors", `{"name":"a","Name":"b","team_id":"` + teamID + `"}`, "Name"},
		{"duplicate nested member", "POST", "/v1/connectors", `{"name":"a","team_id":"` + teamID + `","salesforce":{"login_url":"https://login.salesforce.com","LOGIN_URL":"https://evil.example"}}`, "salesforce.LOGIN_URL"},
		{"duplicate map key", "POST", "/v1/connectors/" + c.ID + "/mappings", `{"source_table":"Contact","columns":{"jobtitle":{"source":"Title"},"JobTitle":{"source":"Email"}}}`, "columns.JobTitle"},
		{"missing required nested member", "POST", "/v1/connectors", `{"name":"a","team_id":"` + teamID + `","salesforce":{"auth":"client_credentials","client_id":"x"},"dataverse":{"environment_url":"https://acme.crm.dynamics.com","tenant_id":"t.example","client_id":"` + dvClient + `"}}`, "salesforce.login_url"},
		{"missing required member of a list element", "POST", "/v1/connectors/" + c.ID + "/dead-letters/retry", `{"record_ids":["003000000000001AAA"],"table":"Contact","TABLE":"Account"}`, "TABLE"},
	} {
		status, body, _ := e.raw(t, k.method, k.path, []byte(k.body), nil)
		if status != http.StatusBadRequest || body.Code != CodeInvalidJSON || body.Field != k.field {
			t.Errorf("%s: %d %s field %q (%s), want 400 invalid_json field %q", k.name, status, body.Code, body.Field, body.Message, k.field)
		}
	}
}

// status_interval 1ns was accepted (an idle agent then burns a full core). Every
// duration, size and interval is bounded by one table (api.TuningBounds).
func TestTuningOutsideTheSharedBoundsIsRefused(t *testing.T) {
	e := newEnv(t)
	for _, k := range []struct {
		tuning, field string
	}{
		{`{"status_interval":"1ns"}`, "tuning.status_interval"},
		{`{"status_interval":"2h"}`, "tuning.status_interval"},
		{`{"flush_interval":"1ns"}`, "tuning.flush_interval"},
		{`{"page_size":1}`, "tuning.page_size"},
		{`{"out_of_band_interval":"1ms"}`, "tuning.out_of_band_interval"},
	} {
		spec := connectorSpec("tuned-" + strings.TrimSuffix(strings.TrimPrefix(k.field, "tuning."), "_interval"))
		b := mustJSON(t, spec)
		b = append(b[:len(b)-1], []byte(`,"tuning":`+k.tuning+`}`)...)
		status, body, _ := e.raw(t, "POST", "/v1/connectors", b, nil)
		if status != http.StatusBadRequest || body.Code != CodeInvalidArgument || body.Field != k.field {
			t.Errorf("tuning %s: %d %s field %q (%s), want 400 invalid_argument field %q", k.tuning, status, body.Code, body.Field, body.Message, k.field)
		}
	}
}
