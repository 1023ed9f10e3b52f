// Package e2e_test runs the control plane end to end with real processes: a `crmsync serve` process whose
// supervisor starts `crmsync agent` processes, against an in-process sandbox.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

const token = "e2e-token-0123456789abcdef"

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// env is a sandbox, a control plane process and a client to it.
type env struct {
	t       *testing.T
	dir     string
	sb      *sandbox.Sandbox
	addr    string
	serve   *exec.Cmd
	serveMu sync.Mutex
	logPath string
	c       *client.Client
	// connectors created by the test: their agent processes are found (and, at the end, stopped) by the
	// connector ID on their command line.
	connectors []string
	serveArgs  []string
	hosts      int // agents started by hand, each as on a host of its own
}

func newEnv(t *testing.T, contacts, accounts int, serveArgs ...string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds crmsync and runs processes")
	}
	dir := t.TempDir()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: contacts, Accounts: accounts, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	e := &env{t: t, dir: dir, sb: sb, addr: testenv.FreeAddr(t), logPath: filepath.Join(dir, "serve.log"), serveArgs: serveArgs}
	e.c, err = client.New(client.Config{Endpoint: "http://" + e.addr, Token: token, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.startServe()
	t.Cleanup(e.cleanup)
	return e
}

// startServe starts `crmsync serve` on the env's address and data directory and waits for /healthz.
func (e *env) startServe() {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	args := append([]string{"serve", "--data-dir", filepath.Join(e.dir, "cp"), "--listen", e.addr, "--lease-ttl", "3s", "--log-level", "info"}, harness.ServeArgs(e.sb.Info)...)
	args = append(args, e.serveArgs...)
	cmd := exec.Command(testenv.Crmsync(e.t), args...)
	cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+token)
	var out io.Writer = logf
	if testing.Verbose() {
		out = io.MultiWriter(logf, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	// The file stays open until the process has exited (Wait closes the copy of a non-file writer).
	e.t.Cleanup(func() { logf.Close() })
	e.serveMu.Lock()
	e.serve = cmd
	e.serveMu.Unlock()
	e.waitFor(20*time.Second, "the control plane to answer /healthz", func() bool {
		ctx, cancel := context.WithTimeout(e.t.Context(), time.Second)
		defer cancel()
		_, err := e.c.Health(ctx)
		return err == nil
	})
}

// killServe SIGKILLs the control plane: its agents keep running, orphaned.
func (e *env) killServe() {
	e.serveMu.Lock()
	defer e.serveMu.Unlock()
	_ = e.serve.Process.Signal(syscall.SIGKILL)
	_ = e.serve.Wait()
}

// stopServe sends SIGTERM and waits (bounded) for a clean exit.
func (e *env) stopServe(within time.Duration) error {
	e.serveMu.Lock()
	defer e.serveMu.Unlock()
	if e.serve.ProcessState != nil {
		return nil
	}
	_ = e.serve.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.serve.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		_ = e.serve.Process.Kill()
		err := <-done
		return fmt.Errorf("crmsync serve did not stop within %s of SIGTERM (then killed: %w)", within, err)
	}
}

func (e *env) cleanup() {
	if err := e.stopServe(60 * time.Second); err != nil {
		e.t.Error(err)
	}
	// Agents orphaned by a killed control plane stop on their own once their lease cannot be renewed; make
	// sure none outlives the test.
	for _, id := range e.connectors {
		for _, pid := range agentPIDs(id) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if e.t.Failed() && !testing.Verbose() {
		if b, err := os.ReadFile(e.logPath); err == nil {
			lines := strings.Split(string(b), "\n")
			e.t.Logf("last lines of the control plane's log:\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	}
}

// enrollToken creates an enrollment token for a connector as an operator does on the control plane's host
// (`crmsync agents enroll-token`), into a file.
func (e *env) enrollToken(connectorID string) string {
	e.t.Helper()
	out, err := exec.Command(testenv.Crmsync(e.t), "agents", "enroll-token", "--data-dir", filepath.Join(e.dir, "cp"), "--connector", connectorID).Output()
	if err != nil {
		e.t.Fatalf("crmsync agents enroll-token: %v", err)
	}
	f := filepath.Join(e.dir, "enroll-"+connectorID)
	if err := os.WriteFile(f, out, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// startAgent starts `crmsync agent --control-plane` by hand, as on another host: each call is another host,
// with an identity of its own, enrolled with a token scoped to the connector; its output goes to the control
// plane's log.
func (e *env) startAgent(connectorID string) *exec.Cmd {
	e.t.Helper()
	e.hosts++
	credFile := filepath.Join(e.dir, "agents", fmt.Sprintf("host-%d", e.hosts), "credential")
	args := []string{"agent", "--control-plane", "http://" + e.addr, "--connector", connectorID, "--credential-file", credFile,
		"--enroll-token-file", e.enrollToken(connectorID)}
	cmd := exec.Command(testenv.Crmsync(e.t), args...)
	cmd.Env = os.Environ()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { logf.Close() })
	var out io.Writer = logf
	if testing.Verbose() {
		out = io.MultiWriter(logf, os.Stderr)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd
}

// serveLog returns the control plane's log so far (its agents' lines included).
func (e *env) serveLog() string {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// agentPIDs finds the agent processes of a connector by its ID on their command line (Linux /proc).
func agentPIDs(connectorID string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[1] == "agent" && slicesContains(args, connectorID) {
			if st, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat")); err == nil && isZombie(st) {
				continue
			}
			out = append(out, pid)
		}
	}
	return out
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isZombie reads the state field of /proc/PID/stat ("pid (comm) S ...").
func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectorSpec describes the sandbox, with inline secrets (the control plane stores them encrypted and
// hands them to the agent with its lease).
func (e *env) connectorSpec(name, teamID string) api.ConnectorSpec {
	i := e.sb.Info
	return api.ConnectorSpec{
		Name: name, TeamID: teamID,
		Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion,
			PubSubAddr: i.Salesforce.PubSubAddr, Auth: "jwt_bearer", ClientID: i.Salesforce.ClientID,
			Username: i.Salesforce.Username, PrivateKey: string(i.Salesforce.PrivateKeyPEM), CAFile: i.Salesforce.CAFile},
		Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL,
			TenantID: i.Dataverse.TenantID, ClientID: i.Dataverse.ClientID, ClientSecret: i.Dataverse.ClientSecret, CAFile: i.Dataverse.CAFile},
		Tuning: &api.Tuning{FlushInterval: api.Duration(50 * time.Millisecond)},
	}
}

// createConnector creates a connector with Account and Contact mappings.
func (e *env) createConnector(spec api.ConnectorSpec) (api.Connector, map[string]api.TableMapping) {
	e.t.Helper()
	ctx := e.t.Context()
	conn, err := e.c.CreateConnector(ctx, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	e.connectors = append(e.connectors, conn.ID)
	maps := map[string]api.TableMapping{}
	for _, src := range []string{"Account", "Contact"} {
		m, err := e.c.CreateMapping(ctx, conn.ID, mapping.TableConfig{SourceTable: src, UsePredefined: true})
		if err != nil {
			e.t.Fatal(err)
		}
		maps[src] = *m
	}
	return *conn, maps
}

func (e *env) status(id string) *api.ConnectorStatus {
	e.t.Helper()
	st, err := e.c.Status(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// statusOK fetches status, tolerating a control plane that is restarting.
func (e *env) statusOK(id string) (*api.ConnectorStatus, bool) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	st, err := e.c.Status(ctx, id)
	return st, err == nil
}

// streamingAll reports whether every table streams with nothing pending at the latest revision.
func streamingAll(st *api.ConnectorStatus, tables int) bool {
	if st.State != api.StateStreaming || len(st.Tables) != tables || st.DeployedRevision != st.LatestRevision {
		return false
	}
	for _, t := range st.Tables {
		if t.Phase != api.PhaseStreaming || t.Reason != "" || t.LagSeconds > 0 {
			return false
		}
	}
	return true
}

// settle waits until the connector streams and has written every change made so far: one more change per
// table, committed after all others, must be passed by the table's stored position (events apply in commit
// order).
func (e *env) settle(id string, timeout time.Duration) *api.ConnectorStatus {
	e.t.Helper()
	e.waitFor(timeout, "the connector to stream", func() bool {
		st, ok := e.statusOK(id)
		return ok && streamingAll(st, 2)
	})
	probes := map[string]uint64{}
	for _, obj := range []string{"Account", "Contact"} {
		res, err := e.sb.Salesforce.Mutate(obj, 1, "")
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range res.ReplayIDs {
			probes[obj] = max(probes[obj], r)
		}
	}
	var last *api.ConnectorStatus
	e.waitFor(timeout, "every change to be written", func() bool {
		st, ok := e.statusOK(id)
		if !ok || !streamingAll(st, 2) {
			return false
		}
		for _, t := range st.Tables {
			if t.Position < probes[t.Table] {
				return false
			}
		}
		last = st
		return true
	})
	return last
}

// compareAll fails the test on any difference between Salesforce and Dataverse.
func (e *env) compareAll(tables ...compare.Table) {
	e.t.Helper()
	if len(tables) == 0 {
		tables = []compare.Table{compare.Account(), compare.Contact(true)}
	}
	res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, e.sb.Info.Dataverse.TeamID, nil, tables...)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		e.t.Log(r)
		if r.Differences() > 0 || r.Compared == 0 {
			e.t.Errorf("%s\n  %v", r, r.Examples)
		}
	}
}

// crmsync runs the CLI against the env's control plane and returns its output.
func (e *env) crmsync(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Crmsync(e.t), args...)
	cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+token, "CRMSYNC_ENDPOINT=http://"+e.addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("crmsync %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// contactIDs lists the live Contact Ids of the sandbox.
func (e *env) contactIDs() []string {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.sb.Salesforce.Export(&buf, "Contact"); err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			ID        string `json:"Id"`
			IsDeleted bool   `json:"IsDeleted"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			e.t.Fatal(err)
		}
		if !rec.IsDeleted {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

// preflightChecks extracts the checks of a preflight_failed answer.
func preflightChecks(t *testing.T, err error) []api.PreflightCheck {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || !errors.Is(err, client.ErrPreflightFailed) {
		t.Fatalf("activation answered %v, want preflight_failed", err)
	}
	var checks []api.PreflightCheck
	if err := json.Unmarshal(ce.Body.Details, &checks); err != nil {
		var wrapped struct {
			Checks []api.PreflightCheck `json:"checks"`
		}
		if err2 := json.Unmarshal(ce.Body.Details, &wrapped); err2 != nil {
			t.Fatalf("preflight details %s: %v", ce.Body.Details, err)
		}
		checks = wrapped.Checks
	}
	return checks
}
