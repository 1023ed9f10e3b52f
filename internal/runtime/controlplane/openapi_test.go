package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/strictjson"
)

const openAPIPath = "../../../docs/api/openapi.yaml"

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIPath)
	if err != nil {
		t.Fatalf("loading %s: %v", openAPIPath, err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIPath, err)
	}
	return doc
}

func TestOpenAPIDocumentListsExactlyTheRoutesTheServerServes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, rt := range routeTable {
		served[rt.method+" "+rt.path] = true
	}
	var missing, extra []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("served but not in %s: %v", openAPIPath, missing)
	}
	if len(extra) > 0 {
		t.Errorf("in %s but not served: %v", openAPIPath, extra)
	}
}

// conformance sends requests to a live server and checks each request and answer against the document.
type conformance struct {
	t         *testing.T
	e         *env
	router    routers.Router
	exercised map[string]bool
	adminURL  string // the local socket's handler
	// lastCookie is the last status page session cookie set.
	lastCookie string
}

type call struct {
	method, path string
	body         any    // marshalled to JSON unless raw is set
	raw          []byte // sent as is (bad JSON cases)
	token        string // testToken unless noAuth
	noAuth       bool
	want         int
	// badRequest marks samples that break the document on purpose (the server must refuse them); only the
	// answer is validated.
	badRequest bool
	// admin sends the call to the local socket's handler, without a credential.
	admin bool
	// header is added to the request (the status page's session cookie and CSRF token).
	header map[string]string
}

func (c *conformance) do(k call) []byte {
	t := c.t
	t.Helper()
	var body []byte
	switch {
	case k.raw != nil:
		body = k.raw
	case k.body != nil:
		var err error
		if body, err = json.Marshal(k.body); err != nil {
			t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		base := c.e.http.URL
		if k.admin {
			base = c.adminURL
		}
		req, err := http.NewRequestWithContext(t.Context(), k.method, base+k.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for h, v := range k.header {
			req.Header.Set(h, v)
		}
		if !k.noAuth && !k.admin {
			tok := k.token
			if tok == "" {
				tok = testToken
				if strings.HasPrefix(k.path, "/v1/agent/") {
					tok = c.e.credential(t, "conformance-agent") // the agent protocol takes an agent credential
				}
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return req
	}
	req := newReq()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: no operation in the document: %v", k.method, k.path, err)
	}
	op := route.Method + " " + route.Path
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: func(_ context.Context, ai *openapi3filter.AuthenticationInput) error {
			if !strings.HasPrefix(ai.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
				return errors.New("no bearer token")
			}
			return nil
		}}}
	if !k.badRequest && (!k.noAuth || route.Operation.Security != nil && len(*route.Operation.Security) == 0) {
		if err := openapi3filter.ValidateRequest(t.Context(), in); err != nil {
			t.Errorf("%s: the sample request breaks the document: %v", op, err)
		}
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != k.want {
		t.Errorf("%s %s: status %d, want %d: %s", k.method, k.path, resp.StatusCode, k.want, got)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(got)
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s answered %d against the document: %v\nbody: %s", op, resp.StatusCode, err, truncate(string(got), 2000))
	}
	if resp.StatusCode < 300 {
		c.exercised[op] = true
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "crmsync_session" {
			c.lastCookie = ck.Value
		}
	}
	return got
}

func decodeAs[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %T: %v: %s", v, err, b)
	}
	return v
}

func TestServerAnswersMatchTheOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t, withSafeguards(&fakeSafeguards{instant: true}))
	adm := httptest.NewServer(e.srv.AdminHandler())
	t.Cleanup(adm.Close)
	doc.Servers = openapi3.Servers{{URL: e.http.URL}, {URL: adm.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{t: t, e: e, router: router, exercised: map[string]bool{}, adminURL: adm.URL}
	e.checker.src, e.checker.dst, e.checker.count = mapping.StandardSource("Contact"), mapping.StandardDestination("contact"), 1234

	c.do(call{method: "GET", path: "/healthz", want: 200, noAuth: true})
	// The status page: its files, and a session opened with the token, used instead of the bearer token.
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	c.do(call{method: "GET", path: "/ui/", want: 200, noAuth: true})
	c.do(call{method: "GET", path: "/ui/app.js", want: 200, noAuth: true})
	c.do(call{method: "GET", path: "/ui/uPlot.min.css", want: 200, noAuth: true})
	c.do(call{method: "GET", path: "/ui/nope.js", want: 404, noAuth: true})
	c.do(call{method: "POST", path: "/ui/session", body: api.SignInRequest{Token: "wrong"}, want: 401, noAuth: true})
	sess := decodeAs[api.UISession](t, c.do(call{method: "POST", path: "/ui/session", body: api.SignInRequest{Token: testToken}, want: 200, noAuth: true}))
	cookie := map[string]string{"Cookie": "crmsync_session=" + c.lastCookie}
	c.do(call{method: "GET", path: "/ui/session", want: 200, noAuth: true, header: cookie})
	c.do(call{method: "GET", path: "/ui/session", want: 401, noAuth: true})
	if sess.CSRFToken == "" {
		t.Error("the session has no CSRF token")
	}
	spec := connectorSpec("conformance")
	spec.Salesforce.Auth, spec.Salesforce.Username, spec.Salesforce.PrivateKey = "jwt_bearer", "int@acme.example", testKey(t)
	spec.Salesforce.ClientSecret = ""
	spec.Tuning = &api.Tuning{BatchSize: 500, FlushInterval: api.Duration(200 * time.Millisecond)}
	conn := decodeAs[api.Connector](t, c.do(call{method: "POST", path: "/v1/connectors", body: spec, want: 201}))
	cp := "/v1/connectors/" + conn.ID
	c.do(call{method: "GET", path: "/v1/connectors", want: 200})
	c.do(call{method: "GET", path: "/v1/connectors?name=conformance", want: 200})
	c.do(call{method: "GET", path: cp, want: 200})
	spec.Salesforce.PrivateKey, spec.Salesforce.APIVersion = "", "63.0"
	c.do(call{method: "PUT", path: cp, body: spec, want: 200})
	acc := decodeAs[api.TableMapping](t, c.do(call{method: "POST", path: cp + "/mappings", body: mapping.TableConfig{SourceTable: "Account", UsePredefined: true}, want: 201}))
	con := decodeAs[api.TableMapping](t, c.do(call{method: "POST", path: cp + "/mappings", body: mapping.TableConfig{
		SourceTable: "Contact", UsePredefined: true, ExcludeColumns: []string{"fax"},
		Columns: map[string]mapping.ColumnOverride{"jobtitle": {Source: "Title", Truncate: true}},
	}, want: 201}))
	c.do(call{method: "GET", path: cp + "/mappings", want: 200})
	c.do(call{method: "GET", path: "/v1/mappings/" + con.ID, want: 200})
	c.do(call{method: "PUT", path: "/v1/mappings/" + con.ID, body: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, DeleteBehaviour: "ignore"}, want: 200})
	c.do(call{method: "GET", path: "/v1/predefined-mappings/contact", want: 200})
	c.do(call{method: "POST", path: "/v1/validate/mapping", body: api.ValidateRequest{Mapping: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}}, want: 200})
	c.do(call{method: "POST", path: "/v1/validate/team", body: api.ValidateTeamRequest{ConnectorID: conn.ID, TeamID: "0b0b0b0b-1111-4222-8333-944445555666"}, want: 200})
	c.do(call{method: "POST", path: "/v1/validate/mapping", body: api.ValidateRequest{ConnectorID: conn.ID, Live: true,
		Mapping: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, Columns: map[string]mapping.ColumnOverride{"nope": {Source: "Missing__c"}}}}, want: 200})
	c.do(call{method: "GET", path: cp + "/activation", want: 200})
	c.do(call{method: "PUT", path: cp + "/activation", body: api.ActivationRequest{Active: true}, want: 200})
	c.do(call{method: "GET", path: cp + "/status", want: 200})
	bak := decodeAs[api.Backup](t, c.do(call{method: "POST", path: cp + "/backups", want: 202}))
	c.do(call{method: "GET", path: "/v1/backups", want: 200})
	c.do(call{method: "GET", path: "/v1/backups?connector_id=" + conn.ID, want: 200})
	c.do(call{method: "GET", path: "/v1/backups/" + bak.ID, want: 200})
	c.do(call{method: "POST", path: "/v1/backups/" + bak.ID + "/restore", body: api.RestoreRequest{DeleteCreated: true}, want: 409})
	c.do(call{method: "POST", path: cp + "/reconcile", want: 202})
	c.do(call{method: "GET", path: cp + "/status", want: 200})
	c.do(call{method: "GET", path: cp + "/history", want: 200})
	c.do(call{method: "GET", path: cp + "/history?since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), want: 200})
	// With the session cookie instead of the token: reads, and changes with the CSRF token only.
	c.do(call{method: "GET", path: cp + "/status", want: 200, noAuth: true, header: cookie})
	c.do(call{method: "POST", path: cp + "/dead-letters/retry", body: api.DeadLetterAction{Table: "Contact"}, want: 401, noAuth: true, header: cookie})
	withCSRF := map[string]string{"Cookie": cookie["Cookie"], "X-CSRF-Token": sess.CSRFToken}
	c.do(call{method: "POST", path: cp + "/dead-letters/retry", body: api.DeadLetterAction{Table: "Contact"}, want: 200, noAuth: true, header: withCSRF})
	c.do(call{method: "POST", path: "/v1/agent/leases", body: api.LeaseRequest{ConnectorID: conn.ID, AgentID: "ui", Host: "h"}, want: 401, noAuth: true, header: withCSRF})
	c.do(call{method: "DELETE", path: "/ui/session", want: 204, noAuth: true, header: cookie})
	c.do(call{method: "GET", path: cp + "/status", want: 401, noAuth: true, header: cookie})

	lease := decodeAs[api.Lease](t, c.do(call{method: "POST", path: "/v1/agent/leases",
		body: api.LeaseRequest{ConnectorID: conn.ID, Host: "host-a", PID: 42}, want: 201}))
	lp := "/v1/agent/leases/" + lease.ID
	now := e.clock.Now()
	c.do(call{method: "POST", path: "/v1/agent/pool", body: api.PoolRequest{Host: "host-a", MaxConnectors: 4, Running: []string{conn.ID}}, want: 200})
	c.do(call{method: "POST", path: lp + "/heartbeat", body: api.Heartbeat{Status: api.Status{State: "initial_load", Revision: lease.Revision, StartedAt: now,
		Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: "initial_load", LoadDone: 10, LoadTotal: 100, Received: 10, Written: 9, DeadLettered: 1,
			ReplayAt: now.Add(-time.Hour), Position: 77, Latency: &api.Latency{Samples: 3, P50: 0.1, P95: 0.2, P99: 0.3, Max: 0.4},
			LastError: "boom", LastErrorAt: now,
			OutOfBand: &api.OutOfBandStatus{Detected: 1, Repaired: 1, Repair: true, CheckedAt: now, Since: now.Add(-time.Minute),
				Examples: []api.OutOfBandEdit{{RecordID: "003000000000001AAA", Key: "bb9ff4c0-591c-5a23-8cbe-566a8191dff5", Columns: []string{"firstname"},
					ModifiedBy: "7d2c9c5e-1111-4222-8333-944445555666", ModifiedByName: "Pat Person", ModifiedAt: now, Repaired: true}}},
			Reconcile: &api.ReconcileResult{Trigger: "schedule", StartedAt: now, FinishedAt: now, Match: false, SourceRows: 10, DestinationRows: 9,
				SourceChecksum: "00000000000000aa", DestinationChecksum: "00000000000000bb", Ranges: 1, DifferingRanges: 1, Missing: 1, Healed: 1,
				Examples:        []api.ReconcileDifference{{Kind: "missing", RecordID: "003000000000002AAA", Key: "bb9ff4c0-591c-5a23-8cbe-566a8191dff5"}},
				SalesforceCalls: 6, DataverseCalls: 2}}},
		Calls: map[string]int64{"salesforce.query": 3}, ReconcileRequestID: 0}}, want: 200})
	c.do(call{method: "GET", path: lp + "/checkpoints/Contact", want: 404})
	c.do(call{method: "PUT", path: lp + "/checkpoints/Contact", body: api.Checkpoint{Table: "Contact", Phase: "streaming", ReplayID: []byte{0, 0, 0, 0, 0, 0, 0, 9},
		RefetchIDs: []string{"003000000000001AAA"}, LoadDone: 100, LoadTotal: 100, MappingColumns: []string{"firstname<-FirstName"}, UpdatedAt: now}, want: 204})
	c.do(call{method: "GET", path: lp + "/checkpoints/Contact", want: 200})
	c.do(call{method: "POST", path: lp + "/dead-letters", body: api.DeadLetterBatch{DeadLetters: []api.DeadLetter{
		{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert", Code: "lookup_missing", Reason: "no account", Payload: `{"firstname":"A"}`, At: now, FirstAt: now, Attempts: 1},
		{Table: "Contact", RecordID: "003000000000002AAA", Operation: "upsert", Code: "0x80040237", Reason: "duplicate", At: now, FirstAt: now, Attempts: 1},
	}}, want: 204})
	c.do(call{method: "GET", path: lp + "/dead-letters?table=Contact&code=lookup_missing&since=" + now.Add(-time.Minute).Format(time.RFC3339) + "&limit=10", want: 200})
	c.do(call{method: "POST", path: lp + "/dead-letters/resolve", body: api.ResolveRequest{Table: "Contact", RecordID: "003000000000001AAA", Before: now.Add(time.Second)}, want: 204})
	c.do(call{method: "GET", path: cp + "/dead-letters?table=Contact&limit=5", want: 200})
	c.do(call{method: "POST", path: cp + "/dead-letters/retry", body: api.DeadLetterAction{Table: "Contact"}, want: 200})
	c.do(call{method: "POST", path: cp + "/dead-letters/discard", body: api.DeadLetterAction{RecordIDs: []string{"003000000000002AAA"}}, want: 200})
	c.do(call{method: "GET", path: cp + "/status", want: 200})
	c.do(call{method: "GET", path: "/v1/audit?connector_id=" + conn.ID + "&limit=50", want: 200})
	c.do(call{method: "GET", path: "/metrics", want: 200})
	c.do(call{method: "DELETE", path: lp, want: 204})
	c.do(call{method: "DELETE", path: "/v1/mappings/" + acc.ID, want: 204})
	c.do(call{method: "PUT", path: cp + "/activation", body: api.ActivationRequest{Active: false}, want: 200})
	rst := decodeAs[api.Restore](t, c.do(call{method: "POST", path: "/v1/backups/" + bak.ID + "/restore", body: api.RestoreRequest{}, want: 202}))
	c.do(call{method: "GET", path: "/v1/restores/" + rst.ID, want: 200})
	c.do(call{method: "POST", path: cp + "/reconcile", want: 409})

	// Refusals, each in the documented error shape.
	c.do(call{method: "GET", path: "/v1/connectors", noAuth: true, want: 401})
	c.do(call{method: "GET", path: "/v1/connectors", token: "wrong", want: 401})
	c.do(call{method: "POST", path: "/v1/connectors", raw: []byte(`{"name":`), want: 400, badRequest: true})
	c.do(call{method: "POST", path: "/v1/connectors", raw: []byte(`{"name":"x","colour":"red"}`), want: 400, badRequest: true})
	c.do(call{method: "POST", path: "/v1/connectors", body: connectorSpec("conformance"), want: 409})
	c.do(call{method: "POST", path: "/v1/connectors", raw: bytes.Repeat([]byte(" "), DefaultMaxBodyBytes+1), want: 413, badRequest: true})
	c.do(call{method: "GET", path: "/v1/connectors/con_00000000000000000000000000000000", want: 404})
	c.do(call{method: "GET", path: "/v1/predefined-mappings/Opportunity", want: 404})
	c.do(call{method: "POST", path: lp + "/heartbeat", body: api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: now}}, want: 410})
	c.do(call{method: "POST", path: cp + "/mappings", body: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, want: 409})
	other := decodeAs[api.Connector](t, c.do(call{method: "POST", path: "/v1/connectors", body: connectorSpec("failing"), want: 201}))
	c.do(call{method: "POST", path: "/v1/connectors/" + other.ID + "/mappings", body: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, want: 201})
	e.checker.mu.Lock()
	e.checker.checks = append(passingChecks(), api.PreflightCheck{Name: "team_privileges", Message: "missing prvCreatecontact"})
	e.checker.mu.Unlock()
	c.do(call{method: "PUT", path: "/v1/connectors/" + other.ID + "/activation", body: api.ActivationRequest{Active: true}, want: 422})
	// Agent identities: an enrollment token from the local socket, exchanged once, rotated, listed, revoked.
	en := decodeAs[api.Enrollment](t, c.do(call{method: "POST", path: "/v1/admin/enrollments", admin: true,
		body: api.EnrollmentRequest{ConnectorID: conn.ID, TTLSeconds: 600, Description: "conformance"}, want: 201}))
	cred := decodeAs[api.AgentCredential](t, c.do(call{method: "POST", path: "/v1/agent/enroll", token: en.Token,
		body: api.EnrollRequest{Name: "enrolled-1", Host: "h"}, want: 201}))
	c.do(call{method: "POST", path: "/v1/agent/enroll", token: en.Token, body: api.EnrollRequest{Name: "again"}, want: 401})
	c.do(call{method: "POST", path: "/v1/agent/credential", token: cred.Credential, want: 200})
	c.do(call{method: "POST", path: "/v1/agent/leases", token: testToken, body: api.LeaseRequest{ConnectorID: conn.ID, Host: "h"}, want: 403})
	c.do(call{method: "GET", path: "/v1/admin/agents", admin: true, want: 200})
	c.do(call{method: "GET", path: "/v1/admin/agents", want: 403})
	c.do(call{method: "DELETE", path: "/v1/admin/agents/" + cred.AgentID, admin: true, want: 204})
	c.do(call{method: "DELETE", path: cp, want: 204})

	var missed []string
	for _, rt := range routeTable {
		if op := rt.method + " " + rt.path; !c.exercised[op] {
			missed = append(missed, op)
		}
	}
	if len(missed) > 0 {
		t.Errorf("operations without a successful sample: %v", missed)
	}
}

// requestTypes maps every schema a request body can hold (directly or nested) to the Go type the server
// decodes it into.
var requestTypes = map[string]reflect.Type{
	"ActivationRequest": reflect.TypeFor[api.ActivationRequest](), "ApplicationUserStatus": reflect.TypeFor[api.ApplicationUserStatus](), "Checkpoint": reflect.TypeFor[api.Checkpoint](),
	"ColumnOverride": reflect.TypeFor[mapping.ColumnOverride](), "ConnectorSpec": reflect.TypeFor[api.ConnectorSpec](),
	"DataverseSettings": reflect.TypeFor[api.DataverseSettings](), "DataverseApplicationUser": reflect.TypeFor[api.DataverseApplicationUser](), "DeadLetter": reflect.TypeFor[api.DeadLetter](),
	"DeadLetterAction": reflect.TypeFor[api.DeadLetterAction](), "DeadLetterBatch": reflect.TypeFor[api.DeadLetterBatch](),
	"EnrollRequest": reflect.TypeFor[api.EnrollRequest](), "EnrollmentRequest": reflect.TypeFor[api.EnrollmentRequest](),
	"Heartbeat": reflect.TypeFor[api.Heartbeat](), "Histogram": reflect.TypeFor[api.Histogram](), "Intent": reflect.TypeFor[api.Intent](), "Latency": reflect.TypeFor[api.Latency](),
	"LeaseRequest": reflect.TypeFor[api.LeaseRequest](), "MappingSpec": reflect.TypeFor[mapping.TableConfig](),
	"OutOfBandEdit": reflect.TypeFor[api.OutOfBandEdit](), "PoolRequest": reflect.TypeFor[api.PoolRequest](), "OutOfBandStatus": reflect.TypeFor[api.OutOfBandStatus](),
	"ReconcileDifference": reflect.TypeFor[api.ReconcileDifference](), "ReconcileResult": reflect.TypeFor[api.ReconcileResult](),
	"ResolveRequest": reflect.TypeFor[api.ResolveRequest](), "RestoreRequest": reflect.TypeFor[api.RestoreRequest](),
	"SalesforceSettings": reflect.TypeFor[api.SalesforceSettings](), "SignInRequest": reflect.TypeFor[api.SignInRequest](), "Status": reflect.TypeFor[api.Status](),
	"TableStatus": reflect.TypeFor[api.TableStatus](), "Tuning": reflect.TypeFor[api.Tuning](),
	"ValidateRequest": reflect.TypeFor[api.ValidateRequest](), "ValidateTeamRequest": reflect.TypeFor[api.ValidateTeamRequest](),
}

// The server refuses a request body that leaves out a member its type marks required (strictjson): the
// members the document requires are exactly those, for every schema a request body can hold. A schema added
// to a request without its Go type here fails the test.
func TestRequiredMembersAreTheDocumentsRequiredMembers(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]bool{}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil {
			return
		}
		name := ""
		if ref.Ref != "" {
			name = ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
			if seen[name] {
				return
			}
			seen[name] = true
		}
		s := ref.Value
		if name != "" && s.Type.Is("object") {
			typ, ok := requestTypes[name]
			if !ok {
				t.Errorf("schema %s is in a request body but has no Go type in requestTypes", name)
			} else {
				want := append([]string(nil), s.Required...)
				sort.Strings(want)
				if got := strictjson.Required(typ); strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("%s: the server requires %v, the document %v", name, got, want)
				}
			}
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		if s.AdditionalProperties.Schema != nil {
			walk(s.AdditionalProperties.Schema)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for _, mt := range op.RequestBody.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d request schemas found: the walk is broken", len(seen))
	}
}
