package remote_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// TestAControlPlaneFailingInternallyIsWaitedFor: a control plane that answers 500 internal (its disk is
// full, say) to lease requests is waited for with backoff, like one that cannot be reached, and the agent
// starts once it answers again. Regression: the agent took 500 for a refusal waiting cannot change and
// exited, so an agent started by hand died with a control plane whose disk filled up.
func TestAControlPlaneFailingInternallyIsWaitedFor(t *testing.T) {
	f := &fakeCP{t: t, active: true, desired: 1, checkpoints: map[string]api.Checkpoint{}}
	var failures atomic.Int32
	failures.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/agent/leases" && failures.Add(-1) >= 0 {
			apiError(w, http.StatusInternalServerError, "internal", "")
			return
		}
		f.serve(w, r)
	}))
	defer srv.Close()
	c, err := client.New(client.Config{Endpoint: srv.URL, Token: "test-token", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o, engines := options(c)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, o)
	started(t, engines)
	if n := failures.Load(); n >= 0 {
		t.Errorf("the agent started with %d failures left", n+1)
	}
	cancel()
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
