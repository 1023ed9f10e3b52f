package client_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Given several replicas, the client moves past one that refuses connections or answers 503, for reads and
// for POSTs that were never sent, and stays on the one that answers.
func TestClientFailsOverToTheNextReplica(t *testing.T) {
	url, st := controlPlane(t)
	var unavailable atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		unavailable.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	dead := deadURL(t)

	c := newClient(t, dead+","+down.URL+" , "+url+"/", token)
	if got := c.Endpoints(); len(got) != 3 || got[2] != url {
		t.Fatalf("endpoints %v", got)
	}
	if _, err := c.ListConnectors(t.Context()); err != nil {
		t.Fatalf("a read through a dead replica and an unavailable one: %v", err)
	}
	if c.Endpoint() != url {
		t.Errorf("the client uses %s after the read, not the replica that answered (%s)", c.Endpoint(), url)
	}
	if unavailable.Load() != 1 {
		t.Errorf("the unavailable replica was asked %d times, want once", unavailable.Load())
	}
	// A POST whose connection is refused was never sent: it goes to the next replica.
	c2 := newClient(t, dead+","+url, token)
	if _, err := c2.CreateConnector(t.Context(), connector("failover")); err != nil {
		t.Fatalf("a POST through a dead replica: %v", err)
	}
	// A pool agent's check-in goes through the same way.
	ag := agentClient(t, dead+","+url, st, "pool-1")
	a, err := ag.PoolCheckIn(t.Context(), api.PoolRequest{Host: "h", MaxConnectors: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a.Members != 1 || a.PollSeconds <= 0 {
		t.Errorf("check-in answer %+v", a)
	}
	if _, err := client.New(client.Config{Endpoint: "http://ok,ftp://bad", Token: token}); err == nil {
		t.Error("an endpoint list with an ftp:// URL was accepted")
	}
}
