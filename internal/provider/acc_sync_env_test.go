package provider

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/backupjobs"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/supervisor"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// syncEnv is everything a real sync needs: the sandbox (Salesforce and Dataverse emulators, files in a
// directory as `crmsync sandbox --dir` writes them), and an in-process control plane with the real preflight
// checks, the real backups (a first activation backs up the destination tables, as `crmsync serve` does) and
// a supervisor that starts real `crmsync agent` processes.
type syncEnv struct {
	*controlPlane
	sb       *sandbox.Sandbox
	sbDir    string
	agentLog string
}

type syncOptions struct {
	contacts, accounts int
	// sandbox adjusts the sandbox's options (secrets, faults) before it starts.
	sandbox func(*sandbox.Options)
	// noSupervisor leaves agents to the test (a scripted agent).
	noSupervisor bool
}

func startSyncEnv(t *testing.T, opts syncOptions) *syncEnv {
	t.Helper()
	accPreCheck(t)
	dir := t.TempDir()
	sbOpts := sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: opts.contacts, Accounts: opts.accounts, Seed: 6}
	if opts.sandbox != nil {
		opts.sandbox(&sbOpts)
	}
	sb, err := sandbox.Start(t.Context(), sbOpts)
	if err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() { _ = sb.Close() })

	st, err := store.OpenSQLite(filepath.Join(dir, "cp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	// The supervisor needs the API's URL before the server exists: start the listener first.
	handler := http.NotFoundHandler()
	var mu sync.RWMutex
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		h := handler
		mu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)

	env := &syncEnv{sb: sb, sbDir: sbOpts.Dir, agentLog: filepath.Join(dir, "agents.log")}
	clk := &testClock{}
	st.Now = func() time.Time { return clk.Now().UTC() } // one clock for leases, revisions and status
	var deployer controlplane.Deployer
	if !opts.noSupervisor {
		logf, err := os.Create(env.agentLog)
		if err != nil {
			t.Fatal(err)
		}
		sup := supervisor.New(supervisor.Config{
			Store: st, ControlPlaneURL: hs.URL, Binary: testenv.Crmsync(t),
			Credentials: func(ctx context.Context, connectorID string) (api.AgentCredential, error) {
				return st.CreateLocalAgent(ctx, connectorID, "local:"+connectorID, "acc")
			},
			Revoke: func(ctx context.Context, agentID string) { _ = st.RevokeAgent(ctx, agentID, "supervisor") },
			Output: logf, ConvergeInterval: time.Second, StopTimeout: 15 * time.Second, Backoff: 500 * time.Millisecond,
		})
		deployer = sup
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := sup.Run(ctx); err != nil {
				t.Errorf("supervisor: %v", err)
			}
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("the supervisor did not stop its agents within 30s")
			}
			_ = logf.Close()
			if t.Failed() {
				if b, err := os.ReadFile(env.agentLog); err == nil {
					lines := strings.Split(string(b), "\n")
					t.Logf("last agent log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
				}
			}
		})
	}
	// The sandbox's loopback host and its files (key, CA) are allowed, as crmsync serve allows them with
	// --allow-host and --allow-ref-dir.
	hosts := policy.Hosts{Allow: []string{"127.0.0.1"}}
	refs := policy.Refs{Dirs: []string{filepath.Dir(env.sb.Info.Salesforce.PrivateKeyFile)}, EnvPrefixes: []string{"CRMSYNC_"}}
	checker := preflight.NewChecker(preflight.Config{Logger: slog.New(slog.DiscardHandler), Hosts: hosts, Refs: refs})
	// Backups run beside the API, with the checker's clients and their files under the store's directory.
	safe := backupjobs.New(backupjobs.Config{Store: st, DataDir: filepath.Join(dir, "cp"), Clients: checker.Clients, Deployer: deployer,
		RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second})
	safeCtx, stopSafe := context.WithCancel(context.Background())
	if err := safe.Start(safeCtx); err != nil {
		stopSafe()
		t.Fatalf("starting the backups: %v", err)
	}
	t.Cleanup(func() { stopSafe(); safe.Wait() })
	srv, err := controlplane.New(controlplane.Config{
		Store: st, Token: accToken, Checker: checker, Deployer: deployer, Safeguards: safe,
		LeaseTTL: 3 * time.Second, Now: clk.Now, Hosts: hosts, Refs: refs,
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	handler = srv.Handler()
	mu.Unlock()
	c, err := client.New(client.Config{Endpoint: hs.URL, Token: accToken, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	env.controlPlane = &controlPlane{URL: hs.URL, Store: st, Client: c, server: hs, clock: clk}
	return env
}

// sandboxJSON is the path of the sandbox's sandbox.json.
func (e *syncEnv) sandboxJSON() string { return filepath.Join(e.sbDir, "sandbox.json") }

// connectorHCL is a crmsync_connector "sandbox" for this sandbox, as the quickstart declares it.
func (e *syncEnv) connectorHCL(name, teamID string) string {
	return e.connectorHCLWith(name, teamID, fmt.Sprintf("client_secret   = %q", e.sb.Info.Dataverse.ClientSecret))
}

// connectorHCLWith is connectorHCL with another Dataverse credential argument (a reference, a write-only secret).
func (e *syncEnv) connectorHCLWith(name, teamID, dataverseCredential string) string {
	sf, dv := e.sb.Info.Salesforce, e.sb.Info.Dataverse
	return fmt.Sprintf(`
resource "crmsync_connector" "sandbox" {
  name    = %q
  team_id = %q
  salesforce = {
    login_url        = %q
    instance_url     = %q
    api_version      = %q
    pubsub_addr      = %q
    auth             = "jwt_bearer"
    client_id        = %q
    username         = %q
    private_key_file = %q
    ca_file          = %q
  }
  dataverse = {
    environment_url = %q
    authority_url   = %q
    tenant_id       = %q
    client_id       = %q
    %s
    ca_file         = %q
  }
}
`, name, teamID, sf.LoginURL, sf.InstanceURL, sf.APIVersion, sf.PubSubAddr, sf.ClientID, sf.Username, sf.PrivateKeyFile, sf.CAFile,
		dv.EnvironmentURL, dv.AuthorityURL, dv.TenantID, dv.ClientID, dataverseCredential, dv.CAFile)
}

// status reads a connector's status by name.
func (e *syncEnv) statusOf(t *testing.T, name string) *api.ConnectorStatus {
	t.Helper()
	c, err := e.Client.FindConnector(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.Client.Status(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// compare checks Dataverse against Salesforce, table by table.
func (e *syncEnv) compare(tables ...compare.Table) error {
	res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, e.sb.Info.Dataverse.TeamID, nil, tables...)
	if err != nil {
		return err
	}
	var problems []string
	for _, r := range res {
		if r.Differences() > 0 || r.Compared == 0 {
			problems = append(problems, fmt.Sprintf("%s %v", r, r.Examples))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("Dataverse differs from Salesforce:\n%s", strings.Join(problems, "\n"))
	}
	return nil
}

// TestMain removes the binaries built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}
