package controlplane

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// fuzzServer is a control plane over a real SQLite store holding one connector with a mapping and one
// agent lease, so request paths name existing objects and the decoders' output reaches the handlers.
type fuzzServer struct {
	srv           *Server
	connID, mapID string
	leaseID       string
	agentCred     string // the agent protocol's credential
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	st, err := store.OpenSQLite(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	// The lease outlives any fuzzing run: with the default TTL it expired mid-run (heartbeats renew it only
	// when due, and few fuzzed ones are valid), and the activation's deployed revision, which counts only a
	// live lease, changed between the two reads around a refused request.
	srv, err := New(Config{Store: st, Token: testToken, Checker: &fakeChecker{checks: passingChecks()}, Deployer: &fakeDeployer{}, Version: "fuzz",
		LeaseTTL: 24 * time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	cred, err := st.CreateLocalAgent(f.Context(), "", "fuzz-agent", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	fs := &fuzzServer{srv: srv, agentCred: cred.Credential}
	var conn api.Connector
	fs.must(f, "POST", "/v1/connectors", connectorSpec("fuzzed"), &conn)
	fs.connID = conn.ID
	var m api.TableMapping
	fs.must(f, "POST", "/v1/connectors/"+conn.ID+"/mappings", mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, &m)
	fs.mapID = m.ID
	fs.must(f, "PUT", "/v1/connectors/"+conn.ID+"/activation", api.ActivationRequest{Active: true}, nil)
	var lease api.Lease
	fs.must(f, "POST", "/v1/agent/leases", api.LeaseRequest{ConnectorID: conn.ID, Host: "fuzz", PID: 1}, &lease)
	fs.leaseID = lease.ID
	return fs
}

func (fs *fuzzServer) do(method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	tok := testToken
	if strings.HasPrefix(path, "/v1/agent/") {
		tok = fs.agentCred
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	fs.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func (fs *fuzzServer) must(f *testing.F, method, path string, in, out any) {
	f.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		f.Fatal(err)
	}
	rec := fs.do(method, path, b)
	if rec.Code >= 300 {
		f.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			f.Fatal(err)
		}
	}
}

// state is what a refused request must leave untouched: the audit log (every change is audited), the
// connector, its mappings and activation, and the agent's checkpoint.
func (fs *fuzzServer) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/v1/audit?limit=1000", "/v1/connectors", "/v1/connectors/" + fs.connID + "/mappings",
		"/v1/connectors/" + fs.connID + "/activation", "/v1/agent/leases/" + fs.leaseID + "/checkpoints/Contact"} {
		rec := fs.do("GET", p, nil)
		b.WriteString(rec.Body.String())
	}
	return b.String()
}

// check holds for every answer: never a 500 (a panic or an unclassified error), an error answer in the one
// error shape, and a refused request leaves the state as it was.
func (fs *fuzzServer) check(t *testing.T, method, path string, body []byte) {
	before := fs.state(t)
	rec := fs.do(method, path, body)
	if rec.Code >= 500 {
		t.Fatalf("%s %s with %q: %d %s", method, path, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %s with %q: %d answered %q, not the error shape", method, path, body, rec.Code, rec.Body)
		}
		if after := fs.state(t); after != before {
			t.Fatalf("%s %s with %q was refused (%d %s) but changed the stored state", method, path, body, rec.Code, rec.Body)
		}
	}
}

// publicWrites are the routes of the public API that decode a body ({c} the connector, {m} the mapping).
var publicWrites = []struct{ method, path string }{
	{"POST", "/v1/connectors"},
	{"PUT", "/v1/connectors/{c}"},
	{"POST", "/v1/connectors/{c}/mappings"},
	{"PUT", "/v1/mappings/{m}"},
	{"POST", "/v1/validate/mapping"},
	{"POST", "/v1/validate/team"},
	{"PUT", "/v1/connectors/{c}/activation"},
	{"POST", "/v1/connectors/{c}/dead-letters/retry"},
	{"POST", "/v1/connectors/{c}/dead-letters/discard"},
	{"POST", "/v1/connectors/{c}/reconcile"},
}

// agentWrites are the agent protocol's routes that decode a body ({l} the lease).
var agentWrites = []struct{ method, path string }{
	{"POST", "/v1/agent/leases"},
	{"POST", "/v1/agent/leases/{l}/heartbeat"},
	{"PUT", "/v1/agent/leases/{l}/checkpoints/Contact"},
	{"POST", "/v1/agent/leases/{l}/dead-letters"},
	{"POST", "/v1/agent/leases/{l}/dead-letters/resolve"},
}

func (fs *fuzzServer) path(p string) string {
	return strings.NewReplacer("{c}", fs.connID, "{m}", fs.mapID, "{l}", fs.leaseID).Replace(p)
}

// FuzzPublicAPIRequestDecoders feeds arbitrary bodies to every public route that decodes one: connectors,
// mappings, mapping validation, activation, dead-letter actions, reconciliation.
func FuzzPublicAPIRequestDecoders(f *testing.F) {
	fs := newFuzzServer(f)
	spec, _ := json.Marshal(connectorSpec("seeded"))
	mapping, _ := json.Marshal(mapping.TableConfig{SourceTable: "Account", UsePredefined: true, ExcludeColumns: []string{"fax"}})
	for i := range publicWrites {
		f.Add(uint8(i), []byte(`{}`))
		f.Add(uint8(i), []byte(`{"name":"x","unknown":1}`))
		f.Add(uint8(i), spec)
		f.Add(uint8(i), mapping)
	}
	f.Add(uint8(4), []byte(`{"connector_id":"x","mapping":{"source_table":"Contact","columns":{"new_region":{"source":"Region__c","truncate":true}}},"live":false}`))
	f.Add(uint8(5), []byte(`{"active":false}`))
	f.Add(uint8(6), []byte(`{"table":"Contact","record_ids":["003000000000001AAA"]}`))
	f.Add(uint8(1), []byte(`{"name":"n","team_id":"`+teamID+`","salesforce":{"login_url":"http://[::1]:1/","auth":"jwt_bearer"},"dataverse":{}} trailing`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := publicWrites[int(route)%len(publicWrites)]
		fs.check(t, r.method, fs.path(r.path), body)
	})
}

// FuzzAgentProtocolRequestDecoders feeds arbitrary bodies to the agent protocol: leases, heartbeats,
// checkpoints, dead letters and their resolution.
func FuzzAgentProtocolRequestDecoders(f *testing.F) {
	fs := newFuzzServer(f)
	cp, _ := json.Marshal(api.Checkpoint{Table: "Contact", Phase: api.PhaseStreaming, ReplayID: []byte{0, 0, 0, 0, 0, 0, 3, 232},
		LoadDone: 10, LoadTotal: 10, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	dls, _ := json.Marshal(api.DeadLetterBatch{DeadLetters: []api.DeadLetter{{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert",
		Code: "0x80044331", Reason: "refused", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}})
	hb, _ := json.Marshal(api.Heartbeat{Status: api.Status{State: "streaming", Revision: 2, Tables: []api.TableStatus{{Table: "Contact", Phase: "streaming"}}}})
	for i := range agentWrites {
		f.Add(uint8(i), []byte(`{}`))
		f.Add(uint8(i), cp)
		f.Add(uint8(i), dls)
		f.Add(uint8(i), hb)
	}
	f.Add(uint8(0), []byte(`{"connector_id":"con_nope","agent_id":"a","host":"h","pid":-1}`))
	f.Add(uint8(4), []byte(`{"table":"Contact","record_id":"003000000000001AAA","before":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := agentWrites[int(route)%len(agentWrites)]
		fs.check(t, r.method, fs.path(r.path), body)
	})
}
