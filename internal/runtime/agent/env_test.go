package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	sbdataverse "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
)

// env is a sandbox plus an agent configuration pointing at it.
type env struct {
	sb  *sandbox.Sandbox
	dir string
	cfg agent.Config
}

func newEnv(t testing.TB, contacts, accounts int) *env {
	t.Helper()
	return newEnvWith(t, sandbox.Options{Contacts: contacts, Accounts: accounts})
}

// newEnvWith is newEnv with more sandbox options (the directory and seed are set here).
func newEnvWith(t testing.TB, opts sandbox.Options) *env {
	t.Helper()
	dir := t.TempDir()
	opts.Dir, opts.Seed = filepath.Join(dir, "sandbox"), 7
	sb, err := sandbox.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	info := sb.Info
	cfg := agent.Config{
		Connector: "test",
		TeamID:    info.Dataverse.TeamID,
		Salesforce: agent.SalesforceConfig{
			LoginURL: info.Salesforce.LoginURL, APIVersion: info.Salesforce.APIVersion, PubSubAddr: info.Salesforce.PubSubAddr,
			Auth: "jwt_bearer", ClientID: info.Salesforce.ClientID, Username: info.Salesforce.Username,
			PrivateKeyFile: info.Salesforce.PrivateKeyFile, CAFile: info.Salesforce.CAFile,
		},
		Dataverse: agent.DataverseConfig{
			EnvironmentURL: info.Dataverse.EnvironmentURL, AuthorityURL: info.Dataverse.AuthorityURL, TenantID: info.Dataverse.TenantID,
			ClientID: info.Dataverse.ClientID, ClientSecret: info.Dataverse.ClientSecret, CAFile: info.Dataverse.CAFile,
		},
		Tables: mapping.ResolveAll([]mapping.TableConfig{
			{SourceTable: "Account", UsePredefined: true},
			{SourceTable: "Contact", UsePredefined: true},
		}),
		Tuning: agent.Tuning{FlushInterval: agent.Duration(50 * time.Millisecond)},
	}
	return &env{sb: sb, dir: dir, cfg: cfg}
}

// liftExecutionBudget lifts the Dataverse sandbox's execution-time budget (the other service-protection limits
// stay), for a test about something else that writes more than one application user's first window holds:
// about 60,000 rows at the default 20 ms of modelled execution per row, after which the budget paces writes at
// about 200 rows/s (docs/sandbox-dataverse.md).
func (e *env) liftExecutionBudget() {
	e.sb.Dataverse.SetLimits(sbdataverse.Limits{ExecutionTime: sbdataverse.Duration(1000 * time.Hour)})
}

// running is an in-process agent.
type running struct {
	a     *agent.Agent
	store *localstore.Store
	stop  func()
	done  chan error
}

// start runs an agent in-process with its state in stateDir (reused across restarts).
func (e *env) start(t *testing.T, stateDir string) *running {
	t.Helper()
	if stateDir == "" {
		stateDir = filepath.Join(e.dir, "state")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := localstore.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := e.cfg
	cfg.Resolve() // the test made the config (and may have changed its tables): it resolves it, as the control plane does
	a, err := agent.New(cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, log)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, store: store, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("agent ended with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30 s")
		}
		store.Close()
	}
	t.Cleanup(r.stop)
	return r
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streaming reports whether every table finished loading and streams with nothing pending.
func streaming(s agent.Status) bool {
	if len(s.Tables) == 0 {
		return false
	}
	for _, t := range s.Tables {
		if t.Phase != agent.PhaseStreaming || t.Reason != "" || t.LagSeconds > 0 {
			return false
		}
	}
	return true
}

// settle waits until every table streams with nothing pending and has written every change made so far.
// It proves the second part with a probe: one more change per table, committed after everything else, so
// once the table's position passes the probe's replay ID every earlier change of its topic is written
// (events are applied in commit order).
func (e *env) settle(t *testing.T, r *running, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the agent to stream", func() bool { return streaming(r.a.Status()) })
	probes := map[string]uint64{}
	for _, ts := range r.a.Status().Tables {
		res, err := e.sb.Salesforce.Mutate(ts.Table, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		probes[ts.Table] = lastReplay(res.ReplayIDs)
	}
	waitFor(t, timeout, "the agent to write every change", func() bool {
		s := r.a.Status()
		if !streaming(s) {
			return false
		}
		for _, ts := range s.Tables {
			if ts.Position < probes[ts.Table] {
				return false
			}
		}
		return true
	})
}

// lastReplay returns the largest replay ID.
func lastReplay(ids []uint64) uint64 {
	var m uint64
	for _, id := range ids {
		m = max(m, id)
	}
	return m
}

// compareAll compares every record and fails the test on any difference.
func (e *env) compareAll(t *testing.T, skip map[string]bool, tables ...compare.Table) []compare.Result {
	t.Helper()
	if len(tables) == 0 {
		tables = []compare.Table{compare.Account(), compare.Contact(true)}
	}
	res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, e.sb.Info.Dataverse.TeamID, skip, tables...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Log(r)
		if r.Differences() > 0 {
			t.Errorf("%s\n  %v", r, r.Examples)
		}
	}
	return res
}

// reconciled checks received = written + dead-lettered + skipped for every table.
func reconciled(t *testing.T, s agent.Status) {
	t.Helper()
	for _, ts := range s.Tables {
		if ts.Received != ts.Written+ts.DeadLettered+ts.Skipped {
			t.Errorf("%s: received %d != written %d + dead-lettered %d + skipped %d", ts.Table, ts.Received, ts.Written, ts.DeadLettered, ts.Skipped)
		}
	}
}

func faultsConfig(rate float64, status, limit int) faults.Config {
	return faults.Config{ErrorRate: rate, ErrorStatus: status, Limit: limit, PathPrefix: "/api/data/", Seed: 3}
}
