package chaos_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// cpToken is the control plane's API token in the scenarios; a test value, not a secret.
const cpToken = "chaos-token-0123456789abcdef0123"

// cpEnv is a sandbox, a `crmsync serve` process and one `crmsync agent` process started by hand (as on
// another host, with serve's --local-agents=false) and restarted by the test whenever it exits or is
// killed, as a process manager would.
type cpEnv struct {
	t       *testing.T
	name    string
	seed    uint64
	rng     *rand.Rand
	dir     string
	sb      *sandbox.Sandbox
	addr    string
	c       *client.Client
	logPath string
	began   time.Time

	// dataDir is serve's --data-dir; serveWrap prefixes its command line (nsenter into a mount namespace).
	dataDir   string
	serveWrap []string

	mu        sync.Mutex
	serve     *exec.Cmd
	agent     *exec.Cmd
	agentDone chan struct{}
	stopping  bool
	starts    int
	conn      api.Connector
	maps      map[string]api.TableMapping
	manager   sync.WaitGroup
}

func newCPEnv(t *testing.T, name string, contacts, accounts int, opts ...func(*cpEnv)) *cpEnv {
	t.Helper()
	skipShort(t)
	e := &cpEnv{t: t, name: name, seed: scenarioSeed(t), dir: t.TempDir(), began: time.Now(), maps: map[string]api.TableMapping{}}
	e.dataDir = filepath.Join(e.dir, "cp")
	for _, o := range opts {
		o(e)
	}
	e.rng = rand.New(rand.NewPCG(e.seed, 0xc9))
	t.Logf("scenario %s: seed %d (CHAOS_SEED=%d repeats it), profile %s", name, e.seed, e.seed, profile.Name)
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(e.dir, "sandbox"), Contacts: contacts, Accounts: accounts,
		Seed: int64(e.seed % (1 << 40))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	e.sb = sb
	e.addr = testenv.FreeAddr(t)
	e.logPath = filepath.Join(e.dir, "processes.log")
	if e.c, err = client.New(client.Config{Endpoint: "http://" + e.addr, Token: cpToken, Timeout: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "token"), []byte(cpToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startServe()
	t.Cleanup(e.cleanup)
	return e
}

// logFile opens the shared log of the scenario's processes for appending.
func (e *cpEnv) logFile() *os.File {
	f, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// startServe starts `crmsync serve` on the scenario's address and data directory, waiting for /healthz.
func (e *cpEnv) startServe() {
	e.t.Helper()
	cmd := e.serveCommand()
	logf := e.logFile()
	// Through a pipe, written by the test: a file-size limit on the process (the simulated full disk) must
	// not cut its log.
	out := struct{ io.Writer }{logf}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	e.mu.Lock()
	e.serve = cmd
	e.mu.Unlock()
	waitFor(e.t, 30*time.Second, "the control plane to answer /healthz", func() bool {
		ctx, cancel := context.WithTimeout(e.t.Context(), time.Second)
		defer cancel()
		_, err := e.c.Health(ctx)
		return err == nil
	})
}

// serveCommand is `crmsync serve` on the scenario's address and data directory, not started.
func (e *cpEnv) serveCommand() *exec.Cmd {
	args := append(append([]string(nil), e.serveWrap...), testenv.Crmsync(e.t), "serve", "--data-dir", e.dataDir, "--listen", e.addr,
		"--lease-ttl", "3s", "--local-agents=false", "--log-level", "info")
	args = append(args, harness.ServeArgs(e.sb.Info)...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+cpToken)
	return cmd
}

// killServe SIGKILLs the control plane; its agent keeps running.
func (e *cpEnv) killServe() {
	e.mu.Lock()
	cmd := e.serve
	e.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	waitExit(cmd)
}

// waitExit waits (bounded) until a process started with a Wait goroutine has been reaped.
func waitExit(cmd *exec.Cmd) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runAgents starts the agent and keeps one running (restarting it at once whenever it exits) until cleanup.
// The agent enrolls once, with a token scoped to the connector from `crmsync agents enroll-token` (as an
// operator would on the control plane's host); every start after that uses, and rotates, its credential file.
func (e *cpEnv) runAgents() {
	// In the control plane's mount namespace, when it has one: the socket is in its data directory.
	args := append(append([]string(nil), e.serveWrap...), testenv.Crmsync(e.t), "agents", "enroll-token", "--data-dir", e.dataDir, "--connector", e.conn.ID)
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		e.t.Fatalf("crmsync agents enroll-token: %v", err)
	}
	enrollFile, credFile := filepath.Join(e.dir, "enroll-token"), filepath.Join(e.dir, "agent", "credential")
	if err := os.WriteFile(enrollFile, out, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.manager.Add(1)
	go func() {
		defer e.manager.Done()
		for {
			e.mu.Lock()
			if e.stopping {
				e.mu.Unlock()
				return
			}
			logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				e.mu.Unlock()
				e.t.Error(err)
				return
			}
			cmd := exec.Command(testenv.Crmsync(e.t), "agent", "--control-plane", "http://"+e.addr, "--connector", e.conn.ID,
				"--credential-file", credFile, "--enroll-token-file", enrollFile, "--log-level", "info")
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				e.mu.Unlock()
				logf.Close()
				e.t.Error(err)
				return
			}
			done := make(chan struct{})
			e.agent, e.agentDone = cmd, done
			e.starts++
			e.mu.Unlock()
			_ = cmd.Wait()
			logf.Close()
			close(done)
		}
	}()
}

// killAgent SIGKILLs the running agent (the manager starts another) and returns whether one ran.
func (e *cpEnv) killAgent() bool {
	e.mu.Lock()
	cmd, done := e.agent, e.agentDone
	e.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		e.t.Error("a killed agent was not reaped within 30 s")
	}
	return true
}

func (e *cpEnv) cleanup() {
	e.mu.Lock()
	e.stopping = true
	agent, serve := e.agent, e.serve
	e.mu.Unlock()
	if agent != nil {
		_ = agent.Process.Signal(syscall.SIGKILL)
	}
	e.manager.Wait()
	if serve != nil {
		_ = serve.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { waitExit(serve); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
		}
	}
	if e.t.Failed() {
		e.t.Logf("last lines of the processes' log:\n%s", tail(e.logPath, 400))
	}
}

// connectorSpec describes the sandbox with inline secrets (the control plane stores them encrypted and hands
// them to the agent with its lease).
func (e *cpEnv) connectorSpec() api.ConnectorSpec {
	i := e.sb.Info
	return api.ConnectorSpec{
		Name: connectorName(e.name), TeamID: i.Dataverse.TeamID,
		Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion,
			PubSubAddr: i.Salesforce.PubSubAddr, Auth: "jwt_bearer", ClientID: i.Salesforce.ClientID,
			Username: i.Salesforce.Username, PrivateKey: string(i.Salesforce.PrivateKeyPEM), CAFile: i.Salesforce.CAFile},
		Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL,
			TenantID: i.Dataverse.TenantID, ClientID: i.Dataverse.ClientID, ClientSecret: i.Dataverse.ClientSecret, CAFile: i.Dataverse.CAFile},
		Tuning: &api.Tuning{FlushInterval: api.Duration(50 * time.Millisecond)},
	}
}

// connectorName turns a scenario name into a valid connector name (letters, digits, '.', '_', '-').
func connectorName(scenario string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, scenario)
	return strings.Trim(name, "-")
}

// createConnector creates the connector with Account and Contact mappings and activates it.
func (e *cpEnv) createConnector(spec api.ConnectorSpec) {
	e.t.Helper()
	ctx := e.t.Context()
	conn, err := e.c.CreateConnector(ctx, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn = *conn
	for _, src := range []string{"Account", "Contact"} {
		m, err := e.c.CreateMapping(ctx, conn.ID, mapping.TableConfig{SourceTable: src, UsePredefined: true})
		if err != nil {
			e.t.Fatal(err)
		}
		e.maps[src] = *m
	}
	if _, err := e.c.SetActivation(ctx, conn.ID, true); err != nil {
		e.t.Fatal(err)
	}
}

// status fetches the connector's status, tolerating a control plane that is restarting.
func (e *cpEnv) status() (*api.ConnectorStatus, bool) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	st, err := e.c.Status(ctx, e.conn.ID)
	return st, err == nil
}

// streamingAll reports whether every table streams with nothing pending at the latest revision.
func streamingAll(st *api.ConnectorStatus) bool {
	if st.State != api.StateStreaming || len(st.Tables) != 2 || st.DeployedRevision != st.LatestRevision {
		return false
	}
	for _, t := range st.Tables {
		if t.Phase != api.PhaseStreaming || t.Reason != "" || t.LagSeconds > 0 {
			return false
		}
	}
	return true
}

// settle waits until the connector streams at its latest revision and has written every change made so far
// (probing again every few seconds, see env.settle).
func (e *cpEnv) settle(timeout time.Duration) *api.ConnectorStatus {
	e.t.Helper()
	var last *api.ConnectorStatus
	defer func() {
		if e.t.Failed() && last != nil {
			e.t.Logf("last status: state %s %q, revision %d/%d", last.State, last.Reason, last.DeployedRevision, last.LatestRevision)
			for _, ts := range last.Tables {
				e.t.Logf("  %s: phase %s %q position %d lag %.1f load %d/%d recoveries %q error %q", ts.Table, ts.Phase, ts.Reason,
					ts.Position, ts.LagSeconds, ts.LoadDone, ts.LoadTotal, ts.Recoveries, ts.LastError)
			}
		}
	}()
	var probes map[string]uint64
	var probed time.Time
	waitFor(e.t, timeout, "the connector to write every change", func() bool {
		st, ok := e.status()
		if !ok {
			return false
		}
		last = st
		if !streamingAll(st) {
			return false
		}
		if probes == nil || time.Since(probed) > 5*time.Second {
			probes, probed = probeAll(e.t, e.sb), time.Now()
			return false
		}
		for _, ts := range st.Tables {
			if ts.Position < probes[ts.Table] {
				return false
			}
		}
		return true
	})
	return last
}

// reconciledCP checks received = written + dead-lettered + skipped for every table the agent reports.
func reconciledCP(t *testing.T, st *api.ConnectorStatus) {
	t.Helper()
	for _, ts := range st.Tables {
		if ts.Received != ts.Written+ts.DeadLettered+ts.Skipped {
			t.Errorf("%s: received %d != written %d + dead-lettered %d + skipped %d", ts.Table, ts.Received, ts.Written, ts.DeadLettered, ts.Skipped)
		}
	}
}

// probeAll makes one change per table and returns its replay ID per table.
func probeAll(t *testing.T, sb *sandbox.Sandbox) map[string]uint64 {
	t.Helper()
	probes := map[string]uint64{}
	for _, obj := range []string{"Account", "Contact"} {
		res, err := sb.Salesforce.Mutate(obj, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range res.ReplayIDs {
			probes[obj] = max(probes[obj], id)
		}
	}
	return probes
}

// finish compares the whole dataset and reports the scenario.
func (e *cpEnv) finish(iterations int, faults int64, tables ...compare.Table) {
	e.t.Helper()
	if len(tables) == 0 {
		tables = []compare.Table{compare.Account(), compare.Contact(true)}
	}
	finishScenario(e.t, e.name, e.seed, e.began, iterations, faults, e.sb, nil, tables)
}

func (e *cpEnv) describe(st *api.ConnectorStatus) string {
	if st == nil {
		return "no status"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s rev %d/%d", st.State, st.DeployedRevision, st.LatestRevision)
	for _, ts := range st.Tables {
		fmt.Fprintf(&b, "; %s %s %d/%d", ts.Table, ts.Phase, ts.LoadDone, ts.LoadTotal)
	}
	return b.String()
}
