package controlplane

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// raw sends one request and decodes the error body when the status is not 2xx.
func (e *env) raw(t *testing.T, method, path string, body []byte, header map[string]string) (int, api.Error, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	tok := testToken
	if strings.HasPrefix(path, "/v1/agent/") {
		tok = e.credential(t, "raw-agent") // the agent protocol takes an agent credential
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("%s %s: %d with a body that is not the error shape: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb.Error, resp.Header
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEveryRouteButHealthRequiresTheToken(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "guarded")
	for _, rt := range routeTable {
		path := strings.NewReplacer("{id}", c.ID, "{source_table}", "Contact", "{table}", "Contact", "{file}", "app.js").Replace(rt.path)
		publicStatus := 0
		for name, hdr := range map[string]map[string]string{
			"missing":     {"Authorization": ""},
			"wrong":       {"Authorization": "Bearer not-the-token"},
			"not bearer":  {"Authorization": "Basic " + testToken},
			"token alone": {"Authorization": testToken},
		} {
			status, body, h := e.raw(t, rt.method, path, []byte(`{}`), hdr)
			if rt.role == rolePublic {
				// A public route does not look at the bearer token: the answer is the same whatever it is
				// (the status page's session routes answer by their cookie and body).
				if publicStatus == 0 {
					publicStatus = status
				}
				if status != publicStatus || status >= 500 || h.Get("WWW-Authenticate") != "" {
					t.Errorf("%s %s with a %s token: %d (%s), want the same answer as without a token (%d)", rt.method, path, name, status, h.Get("WWW-Authenticate"), publicStatus)
				}
				continue
			}
			if status != http.StatusUnauthorized || body.Code != CodeUnauthenticated || body.Field != "" || body.Details != nil ||
				body.Message != "unauthenticated" || h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with a %s token: %d %+v, want 401 unauthenticated with no detail", rt.method, path, name, status, body)
			}
		}
	}
	// The refusal does not depend on the route existing: unknown paths answer 401 too.
	if status, _, _ := e.raw(t, "GET", "/v1/nothing-here", nil, map[string]string{"Authorization": ""}); status != http.StatusUnauthorized {
		t.Errorf("unknown route without a token: %d, want 401", status)
	}
}

func TestBadInputIsRefusedNamingTheField(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "base")
	m := e.createMapping(t, c.ID, "Contact")
	valid := func(edit func(*api.ConnectorSpec)) []byte {
		s := connectorSpec("other")
		edit(&s)
		return mustJSON(t, s)
	}
	long := strings.Repeat("a", 5000)
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code, field        string
	}{
		{"bad JSON", "POST", "/v1/connectors", []byte(`{"name": "x",`), 400, CodeInvalidJSON, ""},
		{"not an object", "POST", "/v1/connectors", []byte(`[1, 2]`), 400, CodeInvalidJSON, ""},
		{"empty body", "POST", "/v1/connectors", nil, 400, CodeInvalidJSON, ""},
		{"trailing data", "POST", "/v1/connectors", append(valid(func(*api.ConnectorSpec) {}), []byte(` {}`)...), 400, CodeInvalidJSON, ""},
		{"unknown field", "POST", "/v1/connectors", []byte(`{"name":"x","colour":"red"}`), 400, CodeInvalidJSON, "colour"},
		{"unknown nested field", "POST", "/v1/connectors", []byte(`{"name":"x","salesforce":{"login":"https://x"}}`), 400, CodeInvalidJSON, "salesforce.login"},
		{"unknown field in a list", "POST", "/v1/agent/leases/lease_0123456789abcdef0123456789abcdef/dead-letters", []byte(`{"dead_letters":[{"table":"Contact"},{"tabel":"x"}]}`), 400, CodeInvalidJSON, "dead_letters[1].tabel"},
		{"unknown field in a map", "POST", "/v1/connectors/" + c.ID + "/mappings", []byte(`{"source_table":"Contact","columns":{"jobtitle":{"source":"Title","trunc":true}}}`), 400, CodeInvalidJSON, "columns.jobtitle.trunc"},
		{"unknown field of an embedded struct", "POST", "/v1/agent/leases/lease_0123456789abcdef0123456789abcdef/heartbeat", []byte(`{"status":{"tables":[{"table":"Contact","colour":1}]}}`), 400, CodeInvalidJSON, "status.tables[0].colour"},
		{"wrong type", "POST", "/v1/connectors", []byte(`{"name":42}`), 400, CodeInvalidJSON, "name"},
		{"too-long name", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Name = strings.Repeat("n", 65) }), 400, CodeInvalidArgument, "name"},
		{"name with a slash", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Name = "a/b" }), 400, CodeInvalidArgument, "name"},
		{"too-long client id", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.ClientID = long }), 400, CodeInvalidArgument, "salesforce.client_id"},
		{"too-long secret", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret = long }), 400, CodeInvalidArgument, "dataverse.client_secret"},
		{"control character", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.Username = "a\x00b" }), 400, CodeInvalidArgument, "salesforce.username"},
		{"bad URL", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.LoginURL = "login.salesforce.com" }), 400, CodeInvalidArgument, "salesforce.login_url"},
		{"plain http off loopback", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.EnvironmentURL = "http://acme.crm.dynamics.com" }), 400, CodeInvalidArgument, "dataverse.environment_url"},
		{"URL with credentials", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.InstanceURL = "https://u:p@acme.my.salesforce.com" }), 400, CodeInvalidArgument, "salesforce.instance_url"},
		{"missing URL", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.EnvironmentURL = "" }), 400, CodeInvalidArgument, "dataverse.environment_url"},
		{"bad team GUID", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.TeamID = "not-a-guid" }), 400, CodeInvalidArgument, "team_id"},
		{"braced team GUID", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.TeamID = "{" + teamID + "}" }), 400, CodeInvalidArgument, "team_id"},
		{"bad client GUID", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientID = "abc" }), 400, CodeInvalidArgument, "dataverse.client_id"},
		{"bad tenant", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.TenantID = "not a tenant" }), 400, CodeInvalidArgument, "dataverse.tenant_id"},
		{"bad auth", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.Auth = "password" }), 400, CodeInvalidArgument, "salesforce.auth"},
		{"jwt without key", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.Auth, s.Salesforce.Username = "jwt_bearer", "u@x" }), 400, CodeInvalidArgument, "salesforce.private_key"},
		{"key not PEM", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Salesforce.PrivateKey = "not a key" }), 400, CodeInvalidArgument, "salesforce.private_key"},
		{"two forms of a secret", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientSecretEnv = "DV_SECRET" }), 400, CodeInvalidArgument, "dataverse.client_secret"},
		{"bad env name", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret, s.Dataverse.ClientSecretEnv = "", "1-BAD" }), 400, CodeInvalidArgument, "dataverse.client_secret_env"},
		{"relative file", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret, s.Dataverse.ClientSecretFile = "", "secret.txt" }), 400, CodeInvalidArgument, "dataverse.client_secret_file"},
		{"no dataverse secret", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret = "" }), 400, CodeInvalidArgument, "dataverse.client_secret"},
		{"plaintext pubsub off loopback", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) {
			s.Salesforce.PubSubAddr, s.Salesforce.PubSubPlaintext = "api.pubsub.salesforce.com:7443", true
		}), 400, CodeInvalidArgument, "salesforce.pubsub_plaintext"},
		{"tuning out of range", "POST", "/v1/connectors", valid(func(s *api.ConnectorSpec) { s.Tuning = &api.Tuning{BatchSize: 5000} }), 400, CodeInvalidArgument, "tuning.batch_size"},
		{"bad ID", "GET", "/v1/connectors/123", nil, 400, CodeInvalidArgument, "id"},
		{"mapping ID for a connector", "GET", "/v1/connectors/" + strings.Replace(m.ID, "map_", "con_", 1)[:4] + "x", nil, 400, CodeInvalidArgument, "id"},
		{"connector ID for a mapping", "GET", "/v1/mappings/" + c.ID, nil, 400, CodeInvalidArgument, "id"},
		{"bad lease ID", "POST", "/v1/agent/leases/nope/heartbeat", []byte(`{"status":{}}`), 400, CodeInvalidArgument, "id"},
		{"unknown connector", "GET", "/v1/connectors/con_0123456789abcdef0123456789abcdef", nil, 404, CodeNotFound, "id"},
		{"bad table name", "POST", "/v1/connectors/" + c.ID + "/mappings", mustJSON(t, mapping.TableConfig{SourceTable: "Contact; DROP"}), 400, CodeInvalidArgument, "source_table"},
		{"mapping problem", "POST", "/v1/connectors/" + c.ID + "/mappings", mustJSON(t, mapping.TableConfig{SourceTable: "Account", UsePredefined: true,
			Columns: map[string]mapping.ColumnOverride{"accountid": {Source: "Name"}}}), 400, CodeInvalidArgument, "columns.accountid.source"},
		{"mapping table twice", "POST", "/v1/connectors/" + c.ID + "/mappings", mustJSON(t, mapping.TableConfig{SourceTable: "contact", UsePredefined: true}), 409, CodeConflict, "source_table"},
		{"taken name", "POST", "/v1/connectors", mustJSON(t, connectorSpec("base")), 409, CodeConflict, "name"},
		{"bad limit", "GET", "/v1/audit?limit=0", nil, 400, CodeInvalidArgument, "limit"},
		{"bad audit connector", "GET", "/v1/audit?connector_id=x", nil, 400, CodeInvalidArgument, "connector_id"},
		{"bad record id", "POST", "/v1/connectors/" + c.ID + "/dead-letters/retry", []byte(`{"record_ids":["x"]}`), 400, CodeInvalidArgument, "record_ids[0]"},
		{"live without connector", "POST", "/v1/validate/mapping", []byte(`{"mapping":{"source_table":"Contact"},"live":true}`), 400, CodeInvalidArgument, "connector_id"},
		{"bad activation body", "PUT", "/v1/connectors/" + c.ID + "/activation", []byte(`{"active":"yes"}`), 400, CodeInvalidJSON, "active"},
		{"unknown route", "GET", "/v1/nothing", nil, 404, CodeNotFound, ""},
		{"wrong method", "PATCH", "/v1/connectors", nil, 405, CodeMethodNotAllowed, ""},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			status, body, _ := e.raw(t, k.method, k.path, k.body, nil)
			if status != k.status || body.Code != k.code || body.Field != k.field {
				t.Errorf("%d %s field %q (%s), want %d %s field %q", status, body.Code, body.Field, body.Message, k.status, k.code, k.field)
			}
			if body.Message == "" {
				t.Error("no message")
			}
			if strings.Contains(body.Message, long) || strings.Contains(body.Message, "dv-canary") {
				t.Errorf("the message echoes the input: %.200s", body.Message)
			}
		})
	}
}

func TestMappingErrorsComeBackWithEveryProblem(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "problems")
	spec := mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, DeleteBehaviour: "explode",
		Columns: map[string]mapping.ColumnOverride{"contactid": {Source: "Email"}}}
	status, body, _ := e.raw(t, "POST", "/v1/connectors/"+c.ID+"/mappings", mustJSON(t, spec), nil)
	if status != 400 || body.Code != CodeInvalidArgument {
		t.Fatalf("%d %+v", status, body)
	}
	var probs []mapping.Problem
	if err := json.Unmarshal(body.Details, &probs); err != nil {
		t.Fatalf("details %s: %v", body.Details, err)
	}
	paths := map[string]bool{}
	for _, p := range probs {
		paths[p.Path] = true
	}
	if !paths["delete_behaviour"] || !paths["columns.contactid.source"] {
		t.Errorf("problems %+v lack one of the two errors", probs)
	}
	if ms, err := e.client.ListMappings(t.Context(), c.ID); err != nil || len(ms) != 0 {
		t.Errorf("a refused mapping was stored: %v, %v", ms, err)
	}
}

func TestOversizedBodiesAreRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	big := connectorSpec("big")
	big.Salesforce.Username = strings.Repeat("u", 5000)
	status, body, _ := e.raw(t, "POST", "/v1/connectors", mustJSON(t, big), nil)
	if status != http.StatusRequestEntityTooLarge || body.Code != CodeTooLarge {
		t.Errorf("declared length over the cap: %d %+v, want 413 too_large", status, body)
	}
	// Without a declared length (chunked), the cap applies while reading.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.http.URL+"/v1/connectors", io.MultiReader(bytes.NewReader(mustJSON(t, big))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the cap: %d, want 413", resp.StatusCode)
	}
	if cs, err := e.client.ListConnectors(t.Context()); err != nil || len(cs) != 0 {
		t.Errorf("an oversized connector was stored: %v %v", cs, err)
	}
}
