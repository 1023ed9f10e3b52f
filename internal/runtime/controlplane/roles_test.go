package controlplane

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// admin is a client of the local socket's handler (the admin routes), as crmsync agents uses it; the handler
// takes no token (access to the socket is the authorization), so the client sends a dummy one.
func (e *env) admin(t *testing.T) *client.Client {
	t.Helper()
	hs := httptest.NewServer(e.srv.AdminHandler())
	t.Cleanup(hs.Close)
	c, err := client.New(client.Config{Endpoint: hs.URL, Token: "unused", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newAgentClient(t *testing.T, e *env, cred string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: e.http.URL, Token: cred, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// POST /v1/agent/leases with the API token answered 201 with the inline secrets. The
// operator token reaches no route of the agent protocol; an enrolled agent takes the lease, and its answer
// holds the secrets.
func TestOnlyAnEnrolledAgentTakesALease(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "leased")
	_, err := e.client.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("the operator token took a lease: %v", err)
	}
	en, err := e.admin(t).CreateEnrollment(ctx, api.EnrollmentRequest{Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// An enrollment token takes no lease either: it is exchanged for an identity first.
	if _, err := newAgentClient(t, e, en.Token).AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, Host: "h"}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("an enrollment token took a lease: %v", err)
	}
	cred, err := newAgentClient(t, e, en.Token).Enroll(ctx, api.EnrollRequest{Name: "worker-1", Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := newAgentClient(t, e, cred.Credential).AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if l.AgentID != cred.AgentID || l.Config.Dataverse.ClientSecret != "dv-canary-secret-9b7c" {
		t.Errorf("the lease is %s's with secret %q; want the enrolled agent's, with the secret", l.AgentID, l.Config.Dataverse.ClientSecret)
	}
	// The operator token reaches no lease route, nor can an agent credential reach the public API.
	if _, err := e.client.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("the operator token heartbeated an agent's lease: %v", err)
	}
	if _, err := newAgentClient(t, e, cred.Credential).ListConnectors(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("an agent credential listed the connectors: %v", err)
	}
}

// A lease's configuration, checkpoints and dead letters are its holder's alone (node authorization).
func TestALeaseBelongsToTheAgentThatTookIt(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "owned")
	l, err := e.acquire(t, "owner", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	other := e.agent(t, "other")
	if _, err := other.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("another agent heartbeated the lease: %v", err)
	}
	if err := other.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact", Phase: "streaming", UpdatedAt: time.Now()}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("another agent wrote a checkpoint under the lease: %v", err)
	}
	if _, err := other.Checkpoint(ctx, l.ID, "Contact"); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("another agent read under the lease: %v", err)
	}
	if err := other.ReleaseLease(ctx, l.ID); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("another agent released the lease: %v", err)
	}
	// Naming another identity in the request changes nothing.
	if _, err := other.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: l.AgentID, Host: "h"}); err == nil {
		t.Error("an agent took a lease in another agent's name")
	}
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}); err != nil {
		t.Errorf("the holder's heartbeat: %v", err)
	}
}

// An agent enrolled with a token scoped to a connector leases that connector only.
func TestAScopedAgentLeasesOnlyItsConnector(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	mine, theirs := e.createConnector(t, "mine"), e.createConnector(t, "theirs")
	en, err := e.admin(t).CreateEnrollment(ctx, api.EnrollmentRequest{ConnectorID: mine.ID})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := newAgentClient(t, e, en.Token).Enroll(ctx, api.EnrollRequest{Name: "scoped"})
	if err != nil || cred.ConnectorID != mine.ID {
		t.Fatalf("enrolling: %+v, %v", cred, err)
	}
	ag := newAgentClient(t, e, cred.Credential)
	if _, err := ag.AcquireLease(ctx, api.LeaseRequest{ConnectorID: theirs.ID, Host: "h"}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a scoped agent leased another connector: %v", err)
	}
	if _, err := ag.AcquireLease(ctx, api.LeaseRequest{ConnectorID: mine.ID, Host: "h"}); err != nil {
		t.Errorf("a scoped agent could not lease its connector: %v", err)
	}
}

// Enrollment tokens are single use (as Vault's wrapping tokens are: a second use fails loudly) and expire.
func TestAnEnrollmentTokenWorksOnceAndExpires(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	adm := e.admin(t)
	en, err := adm.CreateEnrollment(ctx, api.EnrollmentRequest{TTLSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.Token, en.ID+".") {
		t.Fatalf("token %q does not start with its ID %s", en.Token, en.ID)
	}
	enr := newAgentClient(t, e, en.Token)
	if _, err := enr.Enroll(ctx, api.EnrollRequest{Name: "first"}); err != nil {
		t.Fatal(err)
	}
	if _, err := enr.Enroll(ctx, api.EnrollRequest{Name: "second"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("a used enrollment token enrolled again: %v", err)
	}
	old, err := adm.CreateEnrollment(ctx, api.EnrollmentRequest{TTLSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(61 * time.Second)
	if _, err := newAgentClient(t, e, old.Token).Enroll(ctx, api.EnrollRequest{Name: "late"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("an expired enrollment token enrolled: %v", err)
	}
	wrong := en.ID + ".not-the-secret"
	if _, err := newAgentClient(t, e, wrong).Enroll(ctx, api.EnrollRequest{Name: "guess"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("a wrong secret enrolled: %v", err)
	}
	if _, err := adm.CreateEnrollment(ctx, api.EnrollmentRequest{TTLSeconds: 2 * 86400}); err == nil {
		t.Error("an enrollment token of two days was created")
	}
	// The operator token cannot create one: that takes access to the control plane's host.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.http.URL+"/v1/admin/enrollments", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the operator token on the admin route: %d, want 403", resp.StatusCode)
	}
}

// An agent credential rotates without downtime: the new one works at once, the old one until the new one
// is first used, then never again.
func TestAnAgentCredentialRotatesWithoutDowntime(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "rotated")
	oldCred := e.credential(t, "rotating")
	ag := newAgentClient(t, e, oldCred)
	l, err := ag.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ag.RotateCredential(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb := api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}
	if _, err := ag.Heartbeat(ctx, l.ID, hb); err != nil {
		t.Fatalf("the old credential stopped before the new one was used: %v", err)
	}
	fresh := newAgentClient(t, e, nc.Credential)
	if _, err := fresh.Heartbeat(ctx, l.ID, hb); err != nil {
		t.Fatalf("the new credential does not hold the same lease: %v", err)
	}
	if _, err := ag.Heartbeat(ctx, l.ID, hb); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("the old credential still works after the new one was used: %v", err)
	}
}

// Revoking an agent ends its credential and frees its connectors at once.
func TestARevokedAgentIsRefusedAndLosesItsLease(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "revoked")
	l, err := e.acquire(t, "doomed", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	adm := e.admin(t)
	as, err := adm.ListAgents(ctx)
	if err != nil || len(as) != 1 || as[0].ID != l.AgentID || as[0].Name != "doomed" {
		t.Fatalf("agents %+v, %v", as, err)
	}
	if err := adm.RevokeAgent(ctx, l.AgentID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("a revoked agent heartbeated: %v", err)
	}
	if _, err := e.acquire(t, "successor", api.LeaseRequest{ConnectorID: c.ID, Host: "h"}); err != nil {
		t.Errorf("the revoked agent's connector is still held: %v", err)
	}
}

// Operator tokens rotate without a restart: several are valid at once, and SetTokens (crmsync serve's
// SIGHUP) replaces them.
func TestOperatorTokensRotateOnReload(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	next := newAgentClient(t, e, "next-operator-token-0123")
	if _, err := next.ListConnectors(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("an unknown token listed the connectors: %v", err)
	}
	if err := e.srv.SetTokens([]string{testToken, "next-operator-token-0123"}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{"old": e.client, "new": next} {
		if _, err := c.ListConnectors(ctx); err != nil {
			t.Errorf("the %s token during the rotation: %v", name, err)
		}
	}
	if err := e.srv.SetTokens([]string{"next-operator-token-0123"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ListConnectors(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("the retired token still works: %v", err)
	}
	if err := e.srv.SetTokens([]string{"agt_0123456789abcdef0123456789abcdef.x"}); err == nil {
		t.Error("an operator token shaped like an agent credential was accepted")
	}
}
