package remote_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
)

// fakeCP is a control plane's agent protocol, scripted by the test. It fails the test on any request it does
// not know.
type fakeCP struct {
	t *testing.T

	mu              sync.Mutex
	conflicts       int  // answer 409 to this many lease requests first
	active          bool // heartbeat answer
	desired         int64
	heartbeatFail   int  // answer this HTTP status to heartbeats (0: answer normally)
	lost            bool // answer 410 lease_lost to everything under the lease
	acquires        int
	heartbeats      []api.Status
	checkpoints     map[string]api.Checkpoint
	writesAfterLost int
	released        bool
	deadLetters     []api.DeadLetter
}

func newFakeCP(t *testing.T) (*fakeCP, *client.Client) {
	f := &fakeCP{t: t, active: true, desired: 1, checkpoints: map[string]api.Checkpoint{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Endpoint: srv.URL, Token: "test-token", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, field string) {
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: code, Field: field}})
}

func (f *fakeCP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer test-token" {
		apiError(w, http.StatusUnauthorized, "unauthenticated", "")
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/v1/agent/leases":
		f.acquires++
		if f.conflicts > 0 {
			f.conflicts--
			apiError(w, http.StatusConflict, "conflict", "connector_id")
			return
		}
		var req api.LeaseRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ConnectorID != "c1" {
			f.t.Errorf("bad lease request %+v (%v)", req, err)
		}
		writeJSON(w, http.StatusCreated, api.Lease{ID: "L1", ConnectorID: "c1", AgentID: "agt_test", Revision: 1,
			TTLSeconds: 0.3, ExpiresAt: time.Now().Add(300 * time.Millisecond), Config: api.Config{Connector: "test"}})
		return
	case !strings.HasPrefix(p, "/v1/agent/leases/L1"):
		f.t.Errorf("unexpected request %s %s", r.Method, p)
		apiError(w, http.StatusNotFound, "not_found", "")
		return
	}
	if f.lost {
		if r.Method != http.MethodPost || !strings.HasSuffix(p, "/heartbeat") {
			f.writesAfterLost++
		}
		apiError(w, http.StatusGone, "lease_lost", "")
		return
	}
	rest := strings.TrimPrefix(p, "/v1/agent/leases/L1")
	switch {
	case r.Method == http.MethodPost && rest == "/heartbeat":
		if f.heartbeatFail != 0 {
			apiError(w, f.heartbeatFail, "unavailable", "")
			return
		}
		var hb api.Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
			f.t.Error(err)
		}
		f.heartbeats = append(f.heartbeats, hb.Status)
		writeJSON(w, http.StatusOK, api.HeartbeatResponse{ExpiresAt: time.Now().Add(300 * time.Millisecond), Active: f.active, DesiredRevision: f.desired})
	case r.Method == http.MethodDelete && rest == "":
		f.released = true
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(rest, "/checkpoints/"):
		table := strings.TrimPrefix(rest, "/checkpoints/")
		switch r.Method {
		case http.MethodGet:
			cp, ok := f.checkpoints[table]
			if !ok {
				apiError(w, http.StatusNotFound, "not_found", "table")
				return
			}
			writeJSON(w, http.StatusOK, cp)
		case http.MethodPut:
			var cp api.Checkpoint
			if err := json.NewDecoder(r.Body).Decode(&cp); err != nil {
				f.t.Error(err)
			}
			f.checkpoints[table] = cp
			w.WriteHeader(http.StatusNoContent)
		}
	case r.Method == http.MethodPost && rest == "/dead-letters":
		var b api.DeadLetterBatch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			f.t.Error(err)
		}
		f.deadLetters = append(f.deadLetters, b.DeadLetters...)
		w.WriteHeader(http.StatusNoContent)
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, p)
		apiError(w, http.StatusNotFound, "not_found", "")
	}
}

func (f *fakeCP) set(fn func(f *fakeCP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeCP) get(fn func(f *fakeCP) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f)
}

// fakeEngine stands in for the sync engine: it loads its checkpoint, saves progress while running and a
// final position when its context ends (the drain), as the real agent does.
type fakeEngine struct {
	stores   agent.Stores
	revision int64
	started  chan struct{}
	drainErr chan error
}

func (e *fakeEngine) Run(ctx context.Context) error {
	if _, err := e.stores.Checkpoints.LoadCheckpoint(ctx, "Contact"); err != nil {
		return err
	}
	if err := e.stores.Checkpoints.SaveCheckpoint(ctx, api.Checkpoint{Table: "Contact", Phase: api.PhaseStreaming, ReplayID: []byte{1}}); err != nil {
		return err
	}
	_ = e.stores.Reporter.Report(ctx, e.Status())
	close(e.started)
	<-ctx.Done()
	err := e.stores.Checkpoints.SaveCheckpoint(context.WithoutCancel(ctx), api.Checkpoint{Table: "Contact", Phase: api.PhaseStreaming, ReplayID: []byte{2}})
	e.drainErr <- err
	return nil
}

func (e *fakeEngine) Status() api.Status {
	return api.Status{State: api.StateStreaming, Revision: e.revision, Tables: []api.TableStatus{{Table: "Contact", Phase: api.PhaseStreaming}}}
}

// options returns Run's options with a fake engine, handed over on engines when built.
func options(c *client.Client) (remote.Options, chan *fakeEngine) {
	engines := make(chan *fakeEngine, 1)
	return remote.Options{
		Client: c, ConnectorID: "c1", MinHeartbeatGap: 10 * time.Millisecond, AcquireBackoffMax: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
		NewEngine: func(cfg api.Config, s agent.Stores, _ *slog.Logger) (remote.Engine, error) {
			e := &fakeEngine{stores: s, revision: cfg.Revision, started: make(chan struct{}), drainErr: make(chan error, 1)}
			engines <- e
			return e, nil
		},
	}, engines
}

// started waits for the engine to be built and running.
func started(t *testing.T, engines chan *fakeEngine) *fakeEngine {
	t.Helper()
	select {
	case e := <-engines:
		select {
		case <-e.started:
			return e
		case <-time.After(5 * time.Second):
		}
	case <-time.After(5 * time.Second):
	}
	t.Fatal("the agent did not start within 5 s")
	return nil
}

func runAsync(ctx context.Context, o remote.Options) chan error {
	done := make(chan error, 1)
	go func() { done <- remote.Run(ctx, o) }()
	return done
}

func waitDone(t *testing.T, done chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %s", within)
		return nil
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewerRevisionDrainsCommitsReleasesAndExitsCleanly(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	done := runAsync(t.Context(), o)
	eng := started(t, engines)
	waitFor(t, 5*time.Second, "a heartbeat carrying the agent's status", func() bool {
		return f.get(func(f *fakeCP) bool { return len(f.heartbeats) > 0 && f.heartbeats[len(f.heartbeats)-1].Revision == 1 })
	})
	f.set(func(f *fakeCP) { f.desired = 2 })
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil after a newer revision was desired", err)
	}
	if err := <-eng.drainErr; err != nil {
		t.Errorf("the drain's checkpoint was refused: %v", err)
	}
	f.get(func(f *fakeCP) bool {
		if got := f.checkpoints["Contact"].ReplayID; len(got) != 1 || got[0] != 2 {
			t.Errorf("stored position %v, want the drained position [2]", got)
		}
		if !f.released {
			t.Error("the lease was not released")
		}
		return true
	})
}

func TestDeactivationDrainsAndReleases(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	done := runAsync(t.Context(), o)
	eng := started(t, engines)
	f.set(func(f *fakeCP) { f.active = false })
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil after deactivation", err)
	}
	if err := <-eng.drainErr; err != nil {
		t.Errorf("the drain's checkpoint was refused: %v", err)
	}
	if !f.get(func(f *fakeCP) bool { return f.released }) {
		t.Error("the lease was not released")
	}
}

func TestSignalDrainsAndReleases(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, o)
	eng := started(t, engines)
	cancel()
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil after the signal", err)
	}
	if err := <-eng.drainErr; err != nil {
		t.Errorf("the drain's checkpoint was refused: %v", err)
	}
	if !f.get(func(f *fakeCP) bool { return f.released && f.checkpoints["Contact"].ReplayID[0] == 2 }) {
		t.Error("the drained position was not stored or the lease not released")
	}
}

func TestLostLeaseStopsAtOnceAndNeverWritesAgain(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	done := runAsync(t.Context(), o)
	eng := started(t, engines)
	f.set(func(f *fakeCP) { f.lost = true })
	err := waitDone(t, done, 5*time.Second)
	if !errors.Is(err, remote.ErrLeaseLost) {
		t.Fatalf("Run = %v, want ErrLeaseLost", err)
	}
	// The engine drains after Run returned (a process exits here); its final save must be refused locally.
	select {
	case derr := <-eng.drainErr:
		if !errors.Is(derr, remote.ErrLeaseLost) {
			t.Errorf("the stale agent's checkpoint save returned %v, want ErrLeaseLost", derr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not see its context cancelled")
	}
	f.get(func(f *fakeCP) bool {
		if f.writesAfterLost > 0 {
			t.Errorf("%d store requests reached the control plane after the lease was lost", f.writesAfterLost)
		}
		if f.checkpoints["Contact"].ReplayID[0] != 1 {
			t.Errorf("the stale agent overwrote the checkpoint: %v", f.checkpoints["Contact"].ReplayID)
		}
		return true
	})
}

func TestLeaseThatCannotBeRenewedStopsTheAgentWhenItExpires(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	done := runAsync(t.Context(), o)
	eng := started(t, engines)
	f.set(func(f *fakeCP) { f.heartbeatFail = http.StatusServiceUnavailable })
	start := time.Now()
	err := waitDone(t, done, 10*time.Second)
	if !errors.Is(err, remote.ErrLeaseLost) {
		t.Fatalf("Run = %v, want ErrLeaseLost once the lease expired", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("stopping took %s for a 0.3 s lease", el)
	}
	select {
	case derr := <-eng.drainErr:
		if !errors.Is(derr, remote.ErrLeaseLost) {
			t.Errorf("the agent whose lease expired could still save a checkpoint: %v", derr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not see its context cancelled")
	}
}

func TestWaitsForTheLeaseWhileAnotherAgentHoldsIt(t *testing.T) {
	f, c := newFakeCP(t)
	f.set(func(f *fakeCP) { f.conflicts = 3 })
	o, engines := options(c)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, o)
	started(t, engines)
	var acquires int
	f.get(func(f *fakeCP) bool { acquires = f.acquires; return true })
	if acquires != 4 {
		t.Errorf("acquired after %d requests, want 4 (three refusals, then the grant)", acquires)
	}
	cancel()
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestAgentThatCannotStartReportsWhyUntilTheConfigurationChanges(t *testing.T) {
	f, c := newFakeCP(t)
	o, _ := options(c)
	o.NewEngine = func(api.Config, agent.Stores, *slog.Logger) (remote.Engine, error) {
		return nil, errors.New("dataverse client secret: environment variable DV_SECRET is not set")
	}
	done := runAsync(t.Context(), o)
	waitFor(t, 5*time.Second, "a failed status with the reason", func() bool {
		return f.get(func(f *fakeCP) bool {
			n := len(f.heartbeats)
			return n >= 2 && f.heartbeats[n-1].State == api.StateFailed && strings.Contains(f.heartbeats[n-1].Reason, "DV_SECRET")
		})
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while the configuration was unchanged (the supervisor would restart it in a loop)", err)
	default:
	}
	f.set(func(f *fakeCP) { f.desired = 2 })
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil once a new revision is desired", err)
	}
	if !f.get(func(f *fakeCP) bool { return f.released }) {
		t.Error("the lease was not released")
	}
}

func TestDeadLettersAndRefusedTokenGoThroughTheAPI(t *testing.T) {
	f, c := newFakeCP(t)
	o, engines := options(c)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, o)
	eng := started(t, engines)
	if err := eng.stores.DeadLetters.AddDeadLetters(t.Context(), []api.DeadLetter{{Table: "Contact", RecordID: "003x", Code: "mapping"}}); err != nil {
		t.Fatal(err)
	}
	if !f.get(func(f *fakeCP) bool { return len(f.deadLetters) == 1 && f.deadLetters[0].RecordID == "003x" }) {
		t.Error("the dead letter did not reach the control plane")
	}
	cancel()
	if err := waitDone(t, done, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	bad, err := client.New(client.Config{Endpoint: c.Endpoint(), Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Run(t.Context(), remote.Options{Client: bad, ConnectorID: "c1", Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("Run with a wrong token = %v, want an unauthenticated error at once", err)
	}
}
