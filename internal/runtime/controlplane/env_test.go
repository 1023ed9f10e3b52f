package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

const testToken = "test-token-0123456789"

// clock is a settable clock shared by the store and the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeChecker answers preflight and live schemas from its fields and records its calls.
type fakeChecker struct {
	mu     sync.Mutex
	checks []api.PreflightCheck
	// decide, when set, answers from the connector and mappings checked (the proposed ones of a change).
	decide    func(api.Connector, []api.TableMapping) []api.PreflightCheck
	preflight int
	secrets   store.Secrets
	src       *mapping.SourceSchema
	dst       *mapping.DestSchema
	count     int64
	liveErr   error
}

func (f *fakeChecker) Preflight(_ context.Context, conn api.Connector, secrets store.Secrets, ms []api.TableMapping) []api.PreflightCheck {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preflight++
	f.secrets = secrets
	if f.decide != nil {
		return f.decide(conn, ms)
	}
	return append([]api.PreflightCheck(nil), f.checks...)
}

func (f *fakeChecker) LiveSchemas(_ context.Context, _ api.Connector, secrets store.Secrets, _, _ string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = secrets
	return f.src, f.dst, f.count, f.liveErr
}

func (f *fakeChecker) runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preflight
}

// fakeDeployer records the connectors it was told about.
type fakeDeployer struct {
	mu      sync.Mutex
	changed []string
}

func (d *fakeDeployer) Changed(id string) {
	d.mu.Lock()
	d.changed = append(d.changed, id)
	d.mu.Unlock()
}

func (d *fakeDeployer) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.changed {
		if c == id {
			n++
		}
	}
	return n
}

type env struct {
	srv      *Server
	http     *httptest.Server
	store    *store.SQLite
	client   *client.Client // the operator token's
	checker  *fakeChecker
	deployer *fakeDeployer
	clock    *clock
	dir      string

	mu     sync.Mutex
	agents map[string]*client.Client // by the tests' agent names
	leases map[string]*client.Client // the client of the agent that took each lease
	creds  map[string]string         // agent name → credential
}

// agent returns the client of a named agent identity (created on first use, for any connector).
func (e *env) agent(t *testing.T, name string) *client.Client {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.agents[name]; ok {
		return c
	}
	cred, err := e.store.CreateLocalAgent(t.Context(), "", name, "test-host")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoint: e.http.URL, Token: cred.Credential, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.agents[name], e.creds[name] = c, cred.Credential
	return c
}

// credential returns a named agent's credential.
func (e *env) credential(t *testing.T, name string) string {
	t.Helper()
	e.agent(t, name)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.creds[name]
}

// acquire takes a lease as the named agent and remembers whose it is (by).
func (e *env) acquire(t *testing.T, name string, req api.LeaseRequest) (*api.Lease, error) {
	t.Helper()
	c := e.agent(t, name)
	l, err := c.AcquireLease(t.Context(), req)
	if err == nil {
		e.mu.Lock()
		e.leases[l.ID] = c
		e.mu.Unlock()
	}
	return l, err
}

// by returns the client of the agent that took a lease.
func (e *env) by(leaseID string) *client.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leases[leaseID]
}

type envOption func(*Config)

// testStore opens the store the tests run on: SQLite in dir, or PostgreSQL (a fresh database of the test
// process's private cluster) when CRMSYNC_TEST_STORE=postgres — `make test` runs this package both ways, so
// the behaviour tests are the store's behavioural suite for both implementations.
func testStore(t *testing.T, dir string) *store.SQLite {
	t.Helper()
	var st *store.SQLite
	var err error
	if os.Getenv("CRMSYNC_TEST_STORE") == "postgres" {
		st, err = store.OpenPostgres(t.Context(), store.PostgresOptions{URL: pgtest.Database(t), Dir: dir, MaxConns: 8})
	} else {
		st, err = store.OpenSQLite(dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	os.Exit(code)
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	dir := t.TempDir()
	st := testStore(t, dir)
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	st.Now = clk.Now
	e := &env{store: st, checker: &fakeChecker{checks: passingChecks()}, deployer: &fakeDeployer{}, clock: clk, dir: dir,
		agents: map[string]*client.Client{}, leases: map[string]*client.Client{}, creds: map[string]string{}}
	cfg := Config{Store: st, Token: testToken, Checker: e.checker, Deployer: e.deployer, Now: clk.Now, Version: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	if e.client, err = client.New(client.Config{Endpoint: e.http.URL, Token: testToken, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return e
}

func passingChecks() []api.PreflightCheck {
	return []api.PreflightCheck{
		{Name: "salesforce_credentials", OK: true, Message: "authenticated"},
		{Name: "dataverse_credentials", OK: true, Message: "authenticated"},
		{Name: "team_privileges", OK: true, Message: "the team holds every privilege"},
	}
}

// testKey returns a PEM private key generated for the test (never a committed key).
func testKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

const (
	teamID   = "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10"
	tenantID = "0f3c9a2e-1111-4a4a-8b8b-123456789abc"
	dvClient = "a1b2c3d4-0000-4000-8000-0000000000aa"
)

// connectorSpec is a valid connector with inline secrets (the canary values tests look for).
func connectorSpec(name string) api.ConnectorSpec {
	return api.ConnectorSpec{
		Name:   name,
		TeamID: teamID,
		Salesforce: api.SalesforceSettings{
			LoginURL: "https://login.salesforce.com", APIVersion: "62.0", Auth: "client_credentials",
			ClientID: "3MVG9sfclientid", ClientSecret: "sf-canary-secret-5f2e",
		},
		Dataverse: api.DataverseSettings{
			EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: tenantID, ClientID: dvClient,
			ClientSecret: "dv-canary-secret-9b7c",
		},
	}
}

func (e *env) createConnector(t *testing.T, name string) api.Connector {
	t.Helper()
	c, err := e.client.CreateConnector(t.Context(), connectorSpec(name))
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

func (e *env) createMapping(t *testing.T, connID, source string) api.TableMapping {
	t.Helper()
	m, err := e.client.CreateMapping(t.Context(), connID, mapping.TableConfig{SourceTable: source, UsePredefined: true})
	if err != nil {
		t.Fatal(err)
	}
	return *m
}
