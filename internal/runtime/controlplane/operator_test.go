package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// With only the operator token, every route of the API is called with
// valid input, for connectors holding canary secrets (a Salesforce client secret, a private key, a
// Dataverse client secret), and no answer holds a canary. The routes come from the OpenAPI document, so a
// route added to it is called too: a route whose input the test does not know fails it, until a sample is
// added below.
func TestTheOperatorTokenReadsNoSecretOnAnyRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t, withSafeguards(&fakeSafeguards{instant: true}))
	e.checker.src, e.checker.dst, e.checker.count = mapping.StandardSource("Contact"), mapping.StandardDestination("contact"), 12
	ctx := t.Context()

	key := testKey(t)
	lines := strings.Split(strings.TrimSpace(key), "\n")
	canaries := map[string]string{
		"Salesforce client secret": "sf-canary-secret-5f2e", "Dataverse client secret": "dv-canary-secret-9b7c",
		"Salesforce private key": lines[len(lines)/2][:40],
	}
	// held: client credentials, its lease taken by an agent; free: a JWT key, no lease (the lease route would
	// grant it).
	held := e.createConnector(t, "held")
	freeSpec := connectorSpec("free")
	freeSpec.Salesforce.Auth, freeSpec.Salesforce.Username, freeSpec.Salesforce.PrivateKey, freeSpec.Salesforce.ClientSecret = "jwt_bearer", "int@acme.example", key, ""
	free, err := e.client.CreateConnector(ctx, freeSpec)
	if err != nil {
		t.Fatal(err)
	}
	conns := []api.Connector{held, *free}
	maps := map[string]api.TableMapping{}
	backups := map[string]string{}
	for _, c := range conns {
		maps[c.ID] = e.createMapping(t, c.ID, "Contact")
		if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
			t.Fatal(err)
		}
		b, err := e.client.CreateBackup(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		backups[c.ID] = b.ID
	}
	// An agent holds the first connector's lease (taken in the store: what an enrolled agent would get).
	lease, err := e.store.AcquireLease(ctx, api.LeaseRequest{ConnectorID: held.ID, AgentID: "fixture-agent", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lease.Config.Salesforce.ClientSecret, canaries["Salesforce client secret"]) {
		t.Fatal("the fixture lease lacks the inline secret: the search below would prove nothing")
	}
	for _, extra := range extraCanaries(t, e) {
		canaries[extra[0]] = extra[1]
	}
	now := e.clock.Now()
	status := api.Status{State: "streaming", Revision: 1, StartedAt: now, Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: "streaming"}}}
	// Valid bodies, by the schema the document names for the request.
	bodies := map[string]func(c api.Connector) any{
		"ConnectorSpec": func(c api.Connector) any {
			s := c.ConnectorSpec
			s.Salesforce.ClientSecret, s.Salesforce.PrivateKey, s.Dataverse.ClientSecret = "", "", "" // keep the stored ones
			return s
		},
		"MappingSpec": func(api.Connector) any {
			return mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, ExcludeColumns: []string{"fax"}}
		},
		"ValidateTeamRequest": func(c api.Connector) any { return api.ValidateTeamRequest{ConnectorID: c.ID, TeamID: teamID} },
		"ValidateRequest": func(c api.Connector) any {
			return api.ValidateRequest{ConnectorID: c.ID, Live: true, Mapping: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}}
		},
		"ActivationRequest": func(api.Connector) any { return api.ActivationRequest{Active: true} },
		"DeadLetterAction":  func(api.Connector) any { return api.DeadLetterAction{Table: "Contact"} },
		"RestoreRequest":    func(api.Connector) any { return api.RestoreRequest{} },
		"LeaseRequest":      func(c api.Connector) any { return api.LeaseRequest{ConnectorID: c.ID, AgentID: "operator", Host: "h"} },
		"Heartbeat":         func(api.Connector) any { return api.Heartbeat{Status: status} },
		"PoolRequest": func(c api.Connector) any {
			return api.PoolRequest{Host: "h", MaxConnectors: 5, Running: []string{c.ID}}
		},
		"Checkpoint": func(api.Connector) any {
			return api.Checkpoint{Table: "Contact", Phase: "streaming", LoadDone: 1, LoadTotal: 1, UpdatedAt: now}
		},
		"DeadLetterBatch": func(api.Connector) any {
			return api.DeadLetterBatch{DeadLetters: []api.DeadLetter{{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert",
				Code: "x", Reason: "r", At: now, FirstAt: now, Attempts: 1}}}
		},
		"ResolveRequest": func(api.Connector) any {
			return api.ResolveRequest{Table: "Contact", RecordID: "003000000000001AAA", Before: now}
		},
		"EnrollRequest": func(api.Connector) any { return api.EnrollRequest{Name: "operator", Host: "h"} },
		// The status page's sign-in with the operator token: its answer (a CSRF token) is searched too.
		"SignInRequest":     func(api.Connector) any { return api.SignInRequest{Token: testToken} },
		"EnrollmentRequest": func(c api.Connector) any { return api.EnrollmentRequest{ConnectorID: c.ID} },
	}
	pathFor := func(tmpl string, c api.Connector) string {
		id := c.ID
		switch {
		case strings.HasPrefix(tmpl, "/v1/mappings/"):
			id = maps[c.ID].ID
		case strings.HasPrefix(tmpl, "/v1/backups/"):
			id = backups[c.ID]
		case strings.HasPrefix(tmpl, "/v1/restores/"):
			id = "rst_0123456789abcdef0123456789abcdef"
		case strings.HasPrefix(tmpl, "/v1/agent/leases/"):
			id = lease.ID
		case strings.HasPrefix(tmpl, "/v1/admin/agents/"):
			id = "agt_0123456789abcdef0123456789abcdef"
		}
		return strings.NewReplacer("{id}", id, "{source_table}", "Contact", "{table}", "Contact", "{file}", "app.js").Replace(tmpl)
	}
	type op struct{ method, path, schema string }
	var ops []op
	for path, item := range doc.Paths.Map() {
		for method, o := range item.Operations() {
			schema := ""
			if o.RequestBody != nil && o.RequestBody.Value != nil {
				for _, mt := range o.RequestBody.Value.Content {
					schema = mt.Schema.Ref[strings.LastIndex(mt.Schema.Ref, "/")+1:]
				}
			}
			ops = append(ops, op{method, path, schema})
		}
	}
	// Deletions last, so every other route sees the connectors, their mappings and the lease.
	sort.Slice(ops, func(i, j int) bool {
		if (ops[i].method == "DELETE") != (ops[j].method == "DELETE") {
			return ops[j].method == "DELETE"
		}
		return ops[i].method+ops[i].path < ops[j].method+ops[j].path
	})
	answers, calls := 0, 0
	for _, o := range ops {
		mk, ok := bodies[o.schema]
		if o.schema != "" && !ok {
			t.Errorf("%s %s takes a %s: add a valid sample of it to this test", o.method, o.path, o.schema)
			continue
		}
		for _, c := range conns {
			var body []byte
			if mk != nil {
				body = mustJSON(t, mk(c))
			}
			req, err := http.NewRequestWithContext(ctx, o.method, e.http.URL+pathFor(o.path, c), bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			calls++
			var hdr bytes.Buffer
			_ = resp.Header.Write(&hdr)
			answer := hdr.String() + string(b)
			if len(b) > 0 {
				answers++
			}
			for name, v := range canaries {
				if strings.Contains(answer, v) || strings.Contains(unescape(answer), v) {
					t.Errorf("%s %s (connector %s) answered %d with the %s", o.method, o.path, c.Name, resp.StatusCode, name)
				}
			}
		}
	}
	if calls < 2*35 {
		t.Errorf("only %d calls: the document's routes were not all called", calls)
	}
	t.Logf("%d calls with the operator token, %d answers with a body, searched for %d canaries", calls, answers, len(canaries))
}

// Lease IDs were listed in /v1/audit. The audit log names the agent, never the lease.
func TestTheAuditLogHoldsNoLeaseID(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "audited")
	l, err := e.store.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "agent-7", Host: "h"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.ReleaseLease(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+"/v1/audit?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "lease.acquire") || !strings.Contains(string(b), "agent-7") {
		t.Fatalf("the audit log has no lease entry naming the agent: the search proves nothing: %s", b)
	}
	if strings.Contains(string(b), l.ID) {
		t.Errorf("the audit log holds the lease ID %s", l.ID)
	}
}

// unescape undoes JSON's escaping of a PEM body's newlines and slashes, so a key chunk is found in an answer
// that escaped it.
func unescape(s string) string {
	var out string
	if err := json.Unmarshal([]byte(fmt.Sprintf("%q", s)), &out); err != nil {
		return s
	}
	return strings.NewReplacer(`\n`, "\n", `\/`, "/").Replace(out)
}

// extraCanaries are the credentials of the other roles the operator token must never see either: an
// enrollment token and an agent credential.
func extraCanaries(t *testing.T, e *env) [][2]string {
	t.Helper()
	en, err := e.admin(t).CreateEnrollment(t.Context(), api.EnrollmentRequest{Description: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	_, enSecret, _ := strings.Cut(en.Token, ".")
	_, agSecret, _ := strings.Cut(e.credential(t, "canary-agent"), ".")
	return [][2]string{{"enrollment token", enSecret}, {"agent credential", agSecret}}
}
