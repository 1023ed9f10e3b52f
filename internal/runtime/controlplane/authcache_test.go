package controlplane

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// A replica trusts an agent credential it checked for AgentAuthCache: an agent revoked through another
// replica is refused here within that bound, and at once for a lease grant (which hands out secrets) and for
// anything under its leases (deleted with it).
func TestARevocationThroughAnotherReplicaTakesEffectWithinTheCacheBound(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const bound = 500 * time.Millisecond
	other, err := New(Config{Store: e.store, Token: testToken, Checker: e.checker, Now: e.clock.Now, Version: "test", AgentAuthCache: bound})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(other.Handler())
	t.Cleanup(hs.Close)
	c := e.createConnector(t, "revoked-elsewhere")
	second := e.createConnector(t, "not-granted")
	l, err := e.acquire(t, "doomed", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := client.New(client.Config{Endpoint: hs.URL, Token: e.credential(t, "doomed"), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.PoolCheckIn(ctx, api.PoolRequest{Host: "h", MaxConnectors: 1}); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	if err := e.admin(t).RevokeAgent(ctx, l.AgentID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if _, err := ag.AcquireLease(ctx, api.LeaseRequest{ConnectorID: second.ID, Host: "h"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("a lease granted to a revoked agent through the other replica: %v", err)
	}
	if _, err := ag.Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", StartedAt: time.Now()}}); err == nil {
		t.Error("a revoked agent's heartbeat was answered by the other replica")
	}
	deadline := revoked.Add(bound + 5*time.Second)
	for {
		_, err := ag.PoolCheckIn(ctx, api.PoolRequest{Host: "h", MaxConnectors: 1})
		if errors.Is(err, client.ErrUnauthenticated) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked credential still works on the other replica %s after the revocation: %v", time.Since(revoked), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(revoked); took > bound+time.Second {
		t.Errorf("the revocation took %s to take effect on the other replica; the bound is %s", took, bound)
	} else {
		t.Logf("refused on the other replica %s after the revocation (bound %s)", took.Round(time.Millisecond), bound)
	}
}
