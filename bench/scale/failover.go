package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
)

// failoverResult is the failover scenario's figures.
type failoverResult struct {
	Kills      int       `json:"kills"`
	Connectors int       `json:"connectors"`
	LeaseTTL   string    `json:"lease_ttl"`
	P50        float64   `json:"p50_seconds"`
	Max        float64   `json:"max_seconds"`
	Mean       float64   `json:"mean_seconds"`
	Samples    []float64 `json:"samples_seconds"`
}

type failoverEnv struct {
	o      options
	dir    string
	sb     *sandbox.Sandbox
	serve  *proc
	c      *client.Client
	agents []*poolAgent
	conns  []string
}

type poolAgent struct {
	p  *proc
	id string
}

func failover(o options) (failoverResult, error) {
	res := failoverResult{Connectors: o.failConns, LeaseTTL: o.leaseTTL.String()}
	dir, err := os.MkdirTemp("", "crmsync-failover-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	e := &failoverEnv{o: o, dir: dir}
	defer e.close()
	if err := e.setup(); err != nil {
		return res, err
	}
	for k := range o.kills {
		d, err := e.killOne()
		if err != nil {
			return res, fmt.Errorf("kill %d: %w", k+1, err)
		}
		fmt.Fprintf(os.Stderr, "scale: failover kill %d/%d: %.1f s\n", k+1, o.kills, d.Seconds())
		res.Samples = append(res.Samples, d.Seconds())
	}
	res.Kills = len(res.Samples)
	s := append([]float64(nil), res.Samples...)
	sort.Float64s(s)
	if len(s) > 0 {
		res.P50, res.Max = s[len(s)/2], s[len(s)-1]
		for _, v := range s {
			res.Mean += v / float64(len(s))
		}
	}
	return res, nil
}

func (e *failoverEnv) setup() error {
	if err := e.declare(); err != nil {
		return err
	}
	for k := range 2 {
		a, err := e.startAgent(k, 10)
		if err != nil {
			return err
		}
		e.agents = append(e.agents, a)
	}
	_, err := e.waitStreaming("", 5*time.Minute)
	return err
}

// declare starts the sandbox and one control plane and declares and activates o.failConns connectors.
func (e *failoverEnv) declare() error {
	if err := e.startControlPlane(); err != nil {
		return err
	}
	return e.createConnectors()
}

// startControlPlane starts the sandbox and one control plane (SQLite).
func (e *failoverEnv) startControlPlane() error {
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Dir: filepath.Join(e.dir, "sandbox"), Contacts: 200, Accounts: 40, Seed: 15})
	if err != nil {
		return err
	}
	e.sb = sb
	if e.serve, err = startServe(e.o.crmsync, filepath.Join(e.dir, "serve"), append([]string{"--lease-ttl", e.o.leaseTTL.String()}, harness.ServeArgs(sb.Info)...)...); err != nil {
		return err
	}
	if e.c, err = client.New(client.Config{Endpoint: e.serve.url, Token: benchToken, Timeout: 2 * time.Minute}); err != nil {
		return err
	}
	return nil
}

// createConnectors declares and activates o.failConns connectors of the sandbox.
func (e *failoverEnv) createConnectors() error {
	i := e.sb.Info
	for k := range e.o.failConns {
		conn, err := e.c.CreateConnector(context.Background(), api.ConnectorSpec{Name: fmt.Sprintf("failover-%02d", k), TeamID: i.Dataverse.TeamID,
			Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion, PubSubAddr: i.Salesforce.PubSubAddr,
				Auth: "jwt_bearer", ClientID: i.Salesforce.ClientID, Username: i.Salesforce.Username, PrivateKey: string(i.Salesforce.PrivateKeyPEM), CAFile: i.Salesforce.CAFile},
			Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL, TenantID: i.Dataverse.TenantID,
				ClientID: i.Dataverse.ClientID, ClientSecret: i.Dataverse.ClientSecret, CAFile: i.Dataverse.CAFile}})
		if err != nil {
			return err
		}
		for _, src := range []string{"Account", "Contact"} {
			if _, err := e.c.CreateMapping(context.Background(), conn.ID, mapping.TableConfig{SourceTable: src, UsePredefined: true}); err != nil {
				return err
			}
		}
		if _, err := e.c.SetActivation(context.Background(), conn.ID, true); err != nil {
			return err
		}
		e.conns = append(e.conns, conn.ID)
	}
	return nil
}

// startAgent enrolls a pool agent and starts it.
func (e *failoverEnv) startAgent(k, maxConnectors int) (*poolAgent, error) {
	out, err := exec.Command(e.o.crmsync, "agents", "enroll-token", "--data-dir", filepath.Join(e.dir, "serve", "data")).Output() //nolint:gosec // G204: the binary under test
	if err != nil {
		return nil, fmt.Errorf("enroll-token: %w", err)
	}
	enroll, cred := filepath.Join(e.dir, fmt.Sprintf("agent-%d.enroll", k)), filepath.Join(e.dir, fmt.Sprintf("agent-%d", k), "credential")
	if err := os.WriteFile(enroll, out, 0o600); err != nil {
		return nil, err
	}
	if b, err := exec.Command(e.o.crmsync, "agent", "--control-plane", e.serve.url, "--enroll-token-file", enroll, "--credential-file", cred, "--enroll-only").CombinedOutput(); err != nil { //nolint:gosec // G204: the binary under test
		return nil, fmt.Errorf("enrolling: %w: %s", err, b)
	}
	b, _ := os.ReadFile(cred)
	id, _, _ := strings.Cut(strings.TrimSpace(string(b)), ".")
	p, err := startProc(e.o.crmsync, filepath.Join(e.dir, fmt.Sprintf("agent-%d.log", k)), "agent", "--control-plane", e.serve.url,
		"--credential-file", cred, "--max-connectors", strconv.Itoa(maxConnectors), "--log-level", "warn")
	return &poolAgent{p: p, id: id}, err
}

// holders returns, when every connector streams under a live agent other than excluded, the number each
// agent runs.
func (e *failoverEnv) holders(excluded string) (map[string]int, bool) {
	by := map[string]int{}
	for _, id := range e.conns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := e.c.Status(ctx, id)
		cancel()
		if err != nil || st.Agent == nil || st.Agent.ID == excluded || st.State != api.StateStreaming ||
			time.Since(st.Agent.HeartbeatAt) > e.o.leaseTTL || !allTablesStreaming(st) {
			return nil, false
		}
		by[st.Agent.ID]++
	}
	return by, true
}

func allTablesStreaming(st *api.ConnectorStatus) bool {
	if len(st.Tables) == 0 {
		return false
	}
	for _, t := range st.Tables {
		if t.Phase != api.PhaseStreaming {
			return false
		}
	}
	return true
}

func (e *failoverEnv) waitStreaming(excluded string, timeout time.Duration) (map[string]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if by, ok := e.holders(excluded); ok {
			return by, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the connectors did not all stream within %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// killOne SIGKILLs the agent running the most connectors (after both run some), measures until every
// connector streams on the other, and restarts it.
func (e *failoverEnv) killOne() (time.Duration, error) {
	var by map[string]int
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := e.waitStreaming("", 3*time.Minute)
		if err != nil {
			return 0, err
		}
		if len(b) == len(e.agents) {
			by = b
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the pool did not spread the connectors over both agents: %v", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	victim := e.agents[0]
	for _, a := range e.agents {
		if by[a.id] > by[victim.id] {
			victim = a
		}
	}
	killed := time.Now()
	victim.p.stop(syscall.SIGKILL)
	if _, err := e.waitStreaming(victim.id, 5*time.Minute); err != nil {
		return 0, err
	}
	d := time.Since(killed)
	return d, victim.p.start(e.o.crmsync)
}

func (e *failoverEnv) close() {
	for _, a := range e.agents {
		a.p.stop(syscall.SIGTERM)
	}
	if e.serve != nil {
		e.serve.stop(syscall.SIGTERM)
	}
	if e.sb != nil {
		e.sb.Close()
	}
}
