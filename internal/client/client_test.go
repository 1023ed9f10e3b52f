package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

const token = "client-test-token"

// controlPlane runs a real control plane (SQLite in a temporary directory, no checker, no deployer) on a
// loopback test server.
func controlPlane(t *testing.T) (string, *store.SQLite) {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := controlplane.New(controlplane.Config{Store: st, Token: token, LeaseTTL: time.Minute,
		Refs: policy.Refs{Dirs: []string{"/etc/crmsync"}, EnvPrefixes: []string{"SF_", "DV_"}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL, st
}

// agentClient is a client with a new agent identity's credential.
func agentClient(t *testing.T, url string, st *store.SQLite, name string) *client.Client {
	t.Helper()
	cred, err := st.CreateLocalAgent(t.Context(), "", name, "h")
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, url, cred.Credential)
}

func newClient(t *testing.T, endpoint, tok string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: endpoint, Token: tok, Timeout: 10 * time.Second, UserAgent: "client-test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func connector(name string) api.ConnectorSpec {
	return api.ConnectorSpec{
		Name: name, TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid", ClientSecretEnv: "SF_SECRET"},
		Dataverse: api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "acme.onmicrosoft.com",
			ClientID: "a1b2c3d4-0000-4000-8000-0000000000aa", ClientSecretFile: "/etc/crmsync/dv-secret"},
	}
}

func TestRefusalsMatchTheSentinelErrors(t *testing.T) {
	url, st := controlPlane(t)
	c := newClient(t, url, token)
	ctx := t.Context()

	if _, err := newClient(t, url, "wrong").ListConnectors(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("wrong token: %v, want ErrUnauthenticated", err)
	}
	if _, err := c.GetConnector(ctx, "con_0123456789abcdef0123456789abcdef"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown connector: %v, want ErrNotFound", err)
	}
	conn, err := c.CreateConnector(ctx, connector("sentinels"))
	if err != nil {
		t.Fatal(err)
	}
	if conn.Salesforce.ClientSecretEnv != "SF_SECRET" || conn.Dataverse.ClientSecretFile != "/etc/crmsync/dv-secret" {
		t.Errorf("references are not returned as declared: %+v %+v", conn.Salesforce, conn.Dataverse)
	}
	if _, err := c.CreateConnector(ctx, connector("sentinels")); !errors.Is(err, client.ErrConflict) {
		t.Errorf("duplicate name: %v, want ErrConflict", err)
	}
	var ce *client.Error
	bad := connector("bad")
	bad.TeamID = "nope"
	if _, err := c.CreateConnector(ctx, bad); !errors.As(err, &ce) || ce.Status != 400 || ce.Body.Field != "team_id" {
		t.Errorf("bad team: %v, want 400 naming team_id", err)
	}
	if _, err := c.CreateMapping(ctx, conn.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}); err != nil {
		t.Fatal(err)
	}
	if a, err := c.GetActivation(ctx, conn.ID); err != nil || a.Active || a.DesiredRevision != 2 {
		t.Errorf("activation: %+v, %v", a, err)
	}

	if _, err := c.AcquireLease(ctx, api.LeaseRequest{ConnectorID: conn.ID, Host: "h"}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("the operator token on the agent protocol: %v, want ErrForbidden", err)
	}
	operator := c
	c = agentClient(t, url, st, "agent-1")
	lease, err := c.AcquireLease(ctx, api.LeaseRequest{ConnectorID: conn.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentClient(t, url, st, "agent-2").AcquireLease(ctx, api.LeaseRequest{ConnectorID: conn.ID, Host: "h"}); !errors.Is(err, client.ErrConflict) {
		t.Errorf("held lease: %v, want ErrConflict", err)
	}
	cp, err := c.Checkpoint(ctx, lease.ID, "Contact")
	if err != nil || cp != nil {
		t.Errorf("no checkpoint yet: %+v, %v; want nil, nil", cp, err)
	}
	if err := c.SaveCheckpoint(ctx, lease.ID, api.Checkpoint{Table: "Contact", Phase: "initial_load", LoadDone: 5}); err != nil {
		t.Fatal(err)
	}
	if cp, err = c.Checkpoint(ctx, lease.ID, "Contact"); err != nil || cp == nil || cp.LoadDone != 5 {
		t.Errorf("checkpoint: %+v, %v", cp, err)
	}
	if err := c.ReleaseLease(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseLease(ctx, lease.ID); err != nil {
		t.Errorf("releasing twice: %v, want nil (idempotent)", err)
	}
	if _, err := c.Checkpoint(ctx, lease.ID, "Contact"); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("released lease: %v, want ErrLeaseLost", err)
	}
	if _, err := c.Heartbeat(ctx, lease.ID, api.Heartbeat{}); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("heartbeat on a released lease: %v, want ErrLeaseLost", err)
	}
	c = operator
	found, err := c.FindConnector(ctx, "sentinels")
	if err != nil || found.ID != conn.ID {
		t.Errorf("find: %+v, %v", found, err)
	}
	if _, err := c.FindConnector(ctx, "missing"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("find missing: %v, want ErrNotFound", err)
	}
	pre, err := c.PredefinedMappings(ctx, "account")
	if err != nil || pre.SourceTable != "Account" || pre.DestinationTable != "account" || len(pre.Columns) != 9 {
		t.Errorf("predefined Account: %+v, %v", pre, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" {
		t.Errorf("health: %+v, %v", h, err)
	}
	if es, err := c.Audit(ctx, conn.ID, 5); err != nil || len(es) == 0 {
		t.Errorf("audit: %v, %v", es, err)
	}
}

func TestIdempotentCallsAreRetriedOnUnavailableAndPostsAreNot(t *testing.T) {
	var gets, posts atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		} else {
			gets.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"busy"}}`))
	}))
	defer hs.Close()
	c := newClient(t, hs.URL, token)
	if _, err := c.GetConnector(t.Context(), "con_0123456789abcdef0123456789abcdef"); err == nil {
		t.Fatal("no error from a 503")
	}
	if _, err := c.CreateConnector(t.Context(), connector("x")); err == nil {
		t.Fatal("no error from a 503")
	}
	if gets.Load() != 4 || posts.Load() != 1 {
		t.Errorf("%d GET attempts and %d POST attempts; want 4 (1 + 3 retries) and 1", gets.Load(), posts.Load())
	}
}
