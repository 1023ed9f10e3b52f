package pool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/pool"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

const ttl = 2 * time.Second

// engine is a sync engine that runs until cancelled; it counts the engines running per connector.
type engine struct {
	id      string
	running *sync.Map // connector ID → *atomic.Int32
}

func (e engine) Run(ctx context.Context) error {
	n, _ := e.running.LoadOrStore(e.id, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	defer n.(*atomic.Int32).Add(-1)
	<-ctx.Done()
	return nil
}

func (e engine) Status() api.Status {
	return api.Status{State: "streaming", StartedAt: time.Now().UTC()}
}

// cp is an in-process control plane with active connectors.
type cp struct {
	st  *store.SQLite
	srv *controlplane.Server
	ids []string
}

func newCP(t *testing.T, connectors int) *cp {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	srv, err := controlplane.New(controlplane.Config{Store: st, Token: "operator-token", LeaseTTL: ttl, PoolInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &cp{st: st, srv: srv}
	for i := range connectors {
		conn, err := st.CreateConnector(t.Context(), api.ConnectorSpec{
			Name: fmt.Sprintf("c%02d", i), TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
			Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid", ClientSecret: "s"},
			Dataverse: api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "acme.onmicrosoft.com",
				ClientID: "a1b2c3d4-0000-4000-8000-0000000000aa", ClientSecret: "d"},
		}, store.Secrets{}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetActivation(t.Context(), conn.ID, true, nil, "test"); err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, conn.ID)
	}
	return c
}

// member is one pool agent process behind a link the test can cut.
type member struct {
	host   string
	cut    atomic.Bool
	cancel context.CancelFunc
	done   chan error
}

func (c *cp) start(t *testing.T, cred, host string, maxConnectors int, running *sync.Map) *member {
	t.Helper()
	m := &member{host: host, done: make(chan error, 1)}
	h := c.srv.Handler()
	link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cut.Load() {
			panic(http.ErrAbortHandler) // the connection drops: a partition
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(link.Close)
	cl, err := client.New(client.Config{Endpoint: link.URL, Token: cred, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		m.done <- pool.Run(ctx, pool.Options{Client: cl, MaxConnectors: maxConnectors, Host: host, Logger: log, Backoff: time.Second,
			Remote: remote.Options{MinHeartbeatGap: 100 * time.Millisecond, NewEngine: func(cfg api.Config, _ agent.Stores, _ *slog.Logger) (remote.Engine, error) {
				return engine{id: cfg.Connector, running: running}, nil
			}}})
	}()
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *member) stop(t *testing.T) {
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("pool agent %s: %v", m.host, err)
		}
		m.done <- nil // stop again is a no-op
	case <-time.After(30 * time.Second):
		t.Errorf("pool agent %s did not stop within 30 s", m.host)
	}
}

// holders counts the live leases per host.
func (c *cp) holders(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, id := range c.ids {
		l, err := c.st.CurrentAgent(t.Context(), id)
		if errors.Is(err, store.ErrNotFound) || err == nil && l.ExpiresAt.Before(time.Now()) {
			out[""]++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[l.Host]++
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; now %s", timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func spread(want map[string]int) func(c *cp, t *testing.T) (bool, string) {
	return func(c *cp, t *testing.T) (bool, string) {
		got := c.holders(t)
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%d ", k, got[k])
		}
		if len(got) != len(want) {
			return false, b.String()
		}
		for k, n := range want {
			if got[k] != n {
				return false, b.String()
			}
		}
		return true, b.String()
	}
}

// A pool balances: the first agent takes everything it may, a new agent gets its share from it, a
// partitioned agent's connectors move within the lease TTL, it comes back to its share when the link
// returns, and a draining agent hands its connectors back at once. No connector ever has two live engines
// for long (the stale one stops once its lease is lost) and every lease is released at the end.
func TestPoolBalancesAndMovesWorkOffADeadAgent(t *testing.T) {
	c := newCP(t, 6)
	cred, err := c.st.CreateLocalAgent(t.Context(), "", "pool", "k8s")
	if err != nil {
		t.Fatal(err)
	}
	running := &sync.Map{}
	wait := func(what string, want map[string]int, timeout time.Duration) {
		t.Helper()
		f := spread(want)
		waitFor(t, timeout, what, func() (bool, string) { return f(c, t) })
	}

	a := c.start(t, cred.Credential, "pod-a", 10, running)
	wait("pod-a to take all 6", map[string]int{"pod-a": 6}, 10*time.Second)
	b := c.start(t, cred.Credential, "pod-b", 10, running)
	wait("pod-b to get its share", map[string]int{"pod-a": 3, "pod-b": 3}, 10*time.Second)
	cc := c.start(t, cred.Credential, "pod-c", 1, running)
	wait("pod-c to get what its --max-connectors allows", map[string]int{"pod-a": 3, "pod-b": 2, "pod-c": 1}, 10*time.Second)

	// A partition: pod-a's leases expire; pod-b and pod-c (full) take over within the TTL and a check-in.
	a.cut.Store(true)
	cutAt := time.Now()
	wait("pod-a's connectors to move", map[string]int{"pod-b": 5, "pod-c": 1}, 3*ttl+5*time.Second)
	t.Logf("pod-a's connectors moved %s after the partition (lease TTL %s)", time.Since(cutAt).Round(10*time.Millisecond), ttl)
	a.cut.Store(false)
	wait("pod-a to get its share back", map[string]int{"pod-a": 2, "pod-b": 3, "pod-c": 1}, 10*time.Second)

	// Draining hands the connectors back at once: when the drained agent has stopped, none of its leases is
	// live any more, well within the TTL its renewals keep ahead (an expiry would take up to the TTL). Who
	// takes them then is the others' check-ins, bounded like the other moves (2 s flaked under load).
	b.stop(t)
	stoppedAt := time.Now()
	waitFor(t, ttl/4, "pod-b's leases to be released by its drain", func() (bool, string) {
		got := c.holders(t)
		return got["pod-b"] == 0, fmt.Sprint(got)
	})
	t.Logf("pod-b's leases were released %s after it stopped", time.Since(stoppedAt).Round(time.Millisecond))
	wait("pod-b's connectors to move after its drain", map[string]int{"pod-a": 5, "pod-c": 1}, 10*time.Second)
	a.stop(t)
	cc.stop(t)
	wait("every lease released", map[string]int{"": 6}, time.Second)
	running.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n != 0 {
			t.Errorf("connector %s has %d engines running after every agent stopped", k, n)
		}
		return true
	})
}
