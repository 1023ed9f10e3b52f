package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	dvsandbox "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faultproxy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

// fleet is the replicated deployment (docs/scaling.md) on one machine: a sandbox, a private PostgreSQL, several `crmsync serve`
// replicas on it and a pool of `crmsync agent` processes (each with an identity of its own, reaching the
// replicas through fault proxies the test can cut: a partition, on loopback). Network namespaces would make
// them separate hosts; the proxies give the same cut of the agent's control-plane link without needing them.
type fleet struct {
	t        *testing.T
	dir      string
	sb       *sandbox.Sandbox
	pg       *pgtest.Cluster
	storeURL string
	keyFile  string
	ttl      time.Duration
	c        *client.Client // every replica's URL
	replicas []*fleetProc
	agents   []*fleetProc
	conns    []api.Connector
	writes   *writeLog
	logPath  string
}

// fleetProc is one serve or agent process, restartable.
type fleetProc struct {
	name    string
	args    []string
	url     string              // serve: its API
	proxies []*faultproxy.Proxy // agent: its links to the replicas
	agentID string              // agent: its identity
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// writeLog records every Dataverse write's lease tag and time (sandbox.Options.DataverseRequest).
type writeLog struct {
	mu     sync.Mutex
	writes []tagged
}

type tagged struct {
	at  time.Time
	tag string
}

func (w *writeLog) see(r *http.Request) {
	if r.Method == http.MethodGet {
		return
	}
	w.mu.Lock()
	w.writes = append(w.writes, tagged{time.Now(), r.Header.Get(dataverse.FenceHeader)})
	w.mu.Unlock()
}

func newFleet(t *testing.T, seed uint64, contacts, accounts, replicas, agents int) *fleet {
	t.Helper()
	skipShort(t)
	f := &fleet{t: t, dir: t.TempDir(), ttl: 5 * time.Second, writes: &writeLog{}}
	f.logPath = filepath.Join(f.dir, "processes.log")
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(f.dir, "sandbox"), Contacts: contacts, Accounts: accounts,
		Seed: int64(seed % (1 << 40)), DataverseRequest: f.writes.see})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	f.sb = sb
	// Not the budget under test: every connector writes as the sandbox's one application user, and 30 of them
	// make more than its 6,000 requests per 5-minute window on a busy machine; Dataverse (and the sandbox) then
	// answers 429 to every connector until the window slides (minutes), which is faithful but hides failover.
	sb.Dataverse.SetLimits(dvsandbox.Limits{Requests: 1 << 30, ExecutionTime: dvsandbox.Duration(1000 * time.Hour)})
	f.pg = pgtest.New(t)
	if f.storeURL, err = f.pg.CreateDatabase(t.Context(), "crmsync"); err != nil {
		t.Fatal(err)
	}
	f.keyFile = filepath.Join(f.dir, "secret.key")
	if err := os.WriteFile(filepath.Join(f.dir, "token"), []byte(cpToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range replicas {
		addr := testenv.FreeAddr(t)
		p := &fleetProc{name: fmt.Sprintf("serve-%d", i), url: "http://" + addr}
		p.args = append([]string{"serve", "--data-dir", filepath.Join(f.dir, p.name), "--listen", addr, "--store", f.storeURL,
			"--key-file", f.keyFile, "--lease-ttl", f.ttl.String(), "--local-agents=false", "--log-level", "info"}, harness.ServeArgs(sb.Info)...)
		f.replicas = append(f.replicas, p)
		urls = append(urls, p.url)
		f.start(p)
		f.waitHealthy(p)
	}
	if f.c, err = client.New(client.Config{Endpoint: strings.Join(urls, ","), Token: cpToken, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i := range agents {
		f.agents = append(f.agents, f.newAgent(i, urls))
	}
	t.Cleanup(f.cleanup)
	return f
}

// newAgent enrolls a pool agent (through replica 0's local socket) and starts it behind its proxies.
func (f *fleet) newAgent(i int, urls []string) *fleetProc {
	f.t.Helper()
	p := &fleetProc{name: fmt.Sprintf("agent-%d", i)}
	var via []string
	for _, u := range urls {
		px, err := faultproxy.Listen(f.t.Context(), "127.0.0.1:0", strings.TrimPrefix(u, "http://"))
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { px.Close() })
		p.proxies = append(p.proxies, px)
		via = append(via, "http://"+px.Addr())
	}
	tok, err := exec.Command(testenv.Crmsync(f.t), "agents", "enroll-token", "--data-dir", filepath.Join(f.dir, "serve-0")).Output() //nolint:gosec // G204: the test's binary
	if err != nil {
		f.t.Fatalf("crmsync agents enroll-token: %v", err)
	}
	enroll, cred := filepath.Join(f.dir, p.name+".enroll"), filepath.Join(f.dir, p.name, "credential")
	if err := os.WriteFile(enroll, tok, 0o600); err != nil {
		f.t.Fatal(err)
	}
	out, err := exec.Command(testenv.Crmsync(f.t), "agent", "--control-plane", strings.Join(via, ","), "--enroll-token-file", enroll, //nolint:gosec // G204: the test's binary
		"--credential-file", cred, "--enroll-only").CombinedOutput()
	if err != nil {
		f.t.Fatalf("enrolling %s: %v\n%s", p.name, err, out)
	}
	b, _ := os.ReadFile(cred)
	p.agentID, _, _ = strings.Cut(strings.TrimSpace(string(b)), ".")
	p.args = []string{"agent", "--control-plane", strings.Join(via, ","), "--credential-file", cred, "--max-connectors", "40",
		"--log-level", "info"}
	f.start(p)
	return p
}

func (f *fleet) start(p *fleetProc) {
	f.t.Helper()
	logf, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(testenv.Crmsync(f.t), p.args...) //nolint:gosec // G204: the test's binary
	cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+cpToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

func (f *fleet) waitHealthy(p *fleetProc) {
	f.t.Helper()
	c, _ := client.New(client.Config{Endpoint: p.url, Token: cpToken, Timeout: time.Second})
	waitFor(f.t, 30*time.Second, p.name+" to answer /healthz", func() bool {
		_, err := c.Health(f.t.Context())
		return err == nil
	})
}

// kill SIGKILLs a process and waits for it.
func (f *fleet) kill(p *fleetProc) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		f.t.Errorf("%s was not reaped within 30 s of SIGKILL", p.name)
	}
}

func (f *fleet) cleanup() {
	for _, p := range append(append([]*fleetProc(nil), f.agents...), f.replicas...) {
		p.mu.Lock()
		cmd, done := p.cmd, p.done
		p.mu.Unlock()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	if f.t.Failed() {
		f.t.Logf("last lines of the processes' log:\n%s", tail(f.logPath, 300))
	}
}

// createConnectors declares n connectors of the sandbox (Account and Contact each) and activates them, a few at
// a time (activation runs the preflight checks).
func (f *fleet) createConnectors(n int) {
	f.t.Helper()
	i := f.sb.Info
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			spec := api.ConnectorSpec{Name: fmt.Sprintf("fleet-%02d", k), TeamID: i.Dataverse.TeamID,
				Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion,
					PubSubAddr: i.Salesforce.PubSubAddr, Auth: "jwt_bearer", ClientID: i.Salesforce.ClientID,
					Username: i.Salesforce.Username, PrivateKey: string(i.Salesforce.PrivateKeyPEM), CAFile: i.Salesforce.CAFile},
				Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL,
					TenantID: i.Dataverse.TenantID, ClientID: i.Dataverse.ClientID, ClientSecret: i.Dataverse.ClientSecret, CAFile: i.Dataverse.CAFile},
				Tuning: &api.Tuning{FlushInterval: api.Duration(100 * time.Millisecond)},
			}
			conn, err := f.c.CreateConnector(f.t.Context(), spec)
			if err != nil {
				f.t.Error(err)
				return
			}
			for _, src := range []string{"Account", "Contact"} {
				if _, err := f.c.CreateMapping(f.t.Context(), conn.ID, mapping.TableConfig{SourceTable: src, UsePredefined: true}); err != nil {
					f.t.Error(err)
					return
				}
			}
			if _, err := f.c.SetActivation(f.t.Context(), conn.ID, true); err != nil {
				f.t.Error(err)
				return
			}
			mu.Lock()
			f.conns = append(f.conns, *conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if f.t.Failed() {
		f.t.FailNow()
	}
}

// statuses reads every connector's status (nil when the API cannot answer now).
func (f *fleet) statuses() map[string]*api.ConnectorStatus {
	out := map[string]*api.ConnectorStatus{}
	for _, c := range f.conns {
		ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
		st, err := f.c.Status(ctx, c.ID)
		cancel()
		if err != nil {
			return nil
		}
		out[c.ID] = st
	}
	return out
}

// streamingExcept reports whether every connector streams at its latest revision under a live agent that is
// not one of the excluded, and how many do.
func (f *fleet) streamingExcept(excluded ...string) (bool, string) {
	sts := f.statuses()
	if sts == nil {
		return false, "the API did not answer"
	}
	n, by, example := 0, map[string]int{}, ""
	for _, st := range sts {
		if st.Agent == nil || slices.Contains(excluded, st.Agent.ID) || !streams(st) || time.Since(st.Agent.HeartbeatAt) > f.ttl {
			if example == "" {
				example = describeStatus(st)
			}
			continue
		}
		n++
		by[st.Agent.ID]++
	}
	return n == len(f.conns), fmt.Sprintf("%d/%d streaming, by agent %v; not: %s", n, len(f.conns), by, example)
}

// waitStreaming waits until every connector streams under a live agent other than the excluded ones. The
// bound is generous (the machine may be busy with other tests): how long it took is logged, and measured by
// bench/scale, not asserted here.
func (f *fleet) waitStreaming(what string, excluded ...string) {
	f.t.Helper()
	const bound = 3 * time.Minute
	deadline, state := time.Now().Add(bound), ""
	for {
		ok, s := f.streamingExcept(excluded...)
		if ok {
			return
		}
		state = s
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for %s: %s", bound, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streams reports whether a connector streams every table at its latest revision (lag aside: Salesforce
// keeps changing during the scenario).
func streams(st *api.ConnectorStatus) bool {
	if st.State != api.StateStreaming || len(st.Tables) != 2 || st.DeployedRevision != st.LatestRevision {
		return false
	}
	for _, t := range st.Tables {
		if t.Phase != api.PhaseStreaming {
			return false
		}
	}
	return true
}

func describeStatus(st *api.ConnectorStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: state %s %q, revision %d/%d", st.Name, st.State, st.Reason, st.DeployedRevision, st.LatestRevision)
	if st.Agent != nil {
		fmt.Fprintf(&b, ", agent %s heartbeat %s ago", st.Agent.ID, time.Since(st.Agent.HeartbeatAt).Round(time.Millisecond))
	}
	for _, t := range st.Tables {
		fmt.Fprintf(&b, "; %s %s %q lag %.1f", t.Table, t.Phase, t.Reason, t.LagSeconds)
	}
	return b.String()
}

// settle waits until every connector streams and has written every change made so far.
func (f *fleet) settle(timeout time.Duration) {
	f.t.Helper()
	// One probe per table once every connector streams; then wait for every connector to pass it. (Probing
	// again while waiting never ends on a busy machine, where reading 30 statuses takes longer than the
	// period between probes.)
	var probes map[string]uint64
	state := ""
	deadline, logged := time.Now().Add(timeout), time.Now()
	for {
		ok, s := f.streamingExcept()
		state = s
		if time.Since(logged) > 30*time.Second {
			f.t.Logf("settling: %s; %s", state, f.behind(probes))
			logged = time.Now()
		}
		switch {
		case ok && probes == nil:
			probes = probeAll(f.t, f.sb)
		case ok && f.passed(probes):
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for every connector to write every change: %s", timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// behind describes the first connector table whose position is below its probe.
func (f *fleet) behind(probes map[string]uint64) string {
	if probes == nil {
		return "not probed yet"
	}
	for _, st := range f.statuses() {
		for _, ts := range st.Tables {
			if ts.Position < probes[ts.Table] {
				return fmt.Sprintf("%s %s at position %d < probe %d (%s)", st.Name, ts.Table, ts.Position, probes[ts.Table], describeStatus(st))
			}
		}
	}
	return "every table passed its probe"
}

func (f *fleet) passed(probes map[string]uint64) bool {
	sts := f.statuses()
	if sts == nil {
		return false
	}
	for _, st := range sts {
		for _, ts := range st.Tables {
			if ts.Position < probes[ts.Table] {
				return false
			}
		}
	}
	return true
}

// leaseWatch samples PostgreSQL's leases table every 100 ms. A lease is current from when it is granted until
// its expiry (the latest expires_at seen: renewals push it) or until its row is seen gone or replaced, whichever
// comes first. A Dataverse write carrying a lease's tag after that end is a stale write. While PostgreSQL is
// down nothing is sampled: a lease's known expiry still bounds it.
type leaseWatch struct {
	mu     sync.Mutex
	expiry map[string]time.Time // by tag: the latest expires_at seen
	gone   map[string]time.Time // by tag: the first sample without it, after it was seen
	stop   func()
}

// end is when the lease with this tag stopped being current (zero when it was never seen).
func (w *leaseWatch) end(tag string) time.Time {
	e := w.expiry[tag]
	if g, ok := w.gone[tag]; ok && g.Before(e) {
		return g
	}
	return e
}

func (f *fleet) watchLeases() *leaseWatch {
	w := &leaseWatch{expiry: map[string]time.Time{}, gone: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				_ = conn.Close(context.Background())
			}
		}()
		for ctx.Err() == nil {
			if conn == nil {
				c, err := pgx.Connect(ctx, f.storeURL)
				if err != nil {
					_ = retry.Sleep(ctx, 200*time.Millisecond)
					continue
				}
				conn = c
			}
			rows, err := conn.Query(ctx, `SELECT id, expires_at FROM leases`)
			var leases []struct {
				ID      string
				Expires int64
			}
			if err == nil {
				leases, err = pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
					ID      string
					Expires int64
				}])
			}
			if err != nil {
				_ = conn.Close(context.Background())
				conn = nil
				continue
			}
			now := time.Now()
			w.mu.Lock()
			present := map[string]bool{}
			for _, l := range leases {
				tag := remote.LeaseTag(l.ID)
				present[tag] = true
				if e := time.Unix(0, l.Expires); e.After(w.expiry[tag]) {
					w.expiry[tag] = e
				}
			}
			for tag := range w.expiry {
				if _, ok := w.gone[tag]; !ok && !present[tag] {
					w.gone[tag] = now
				}
			}
			w.mu.Unlock()
			_ = retry.Sleep(ctx, 100*time.Millisecond)
		}
	}()
	return w
}

// staleWrites counts the writes made after their lease stopped being current (allowing the sampling period
// and a write's flight time), and the writes that carried no tag or one of no lease ever seen.
func (f *fleet) staleWrites(w *leaseWatch) (stale, untagged int, examples []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f.writes.mu.Lock()
	defer f.writes.mu.Unlock()
	const slack = 300 * time.Millisecond
	for _, wr := range f.writes.writes {
		end := w.end(wr.tag)
		switch {
		case wr.tag == "" || end.IsZero():
			untagged++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("a write at %s with tag %q (no lease seen)", wr.at.Format("15:04:05.000"), wr.tag))
			}
		case wr.at.After(end.Add(slack)):
			stale++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("a write at %s under lease %s, current until %s", wr.at.Format("15:04:05.000"), wr.tag, end.Format("15:04:05.000")))
			}
		}
	}
	return stale, untagged, examples
}

// TestChaosReplicasAndPool is the failover test of replicas and pools: three serve replicas on PostgreSQL and three pool
// agents run 30 connectors against the sandbox while Salesforce changes. A replica is SIGKILLed (the API keeps
// answering through the others), an agent is SIGKILLed (its connectors stream again on the others within the
// lease TTL and a check-in), an agent is cut off the control plane past its lease (it stops writing; the
// others take over; when the link returns it writes nothing under its old leases and takes a share again),
// PostgreSQL is restarted (everything resumes). Then every connector's Dataverse equals Salesforce, and no
// Dataverse write carried a lease that was no longer current. The long profile adds rounds of random kills of
// replicas and agents with 60 connectors.
func TestChaosReplicasAndPool(t *testing.T) {
	connectors, rounds := 30, 0
	if profile.Long {
		connectors, rounds = 60, 20
	}
	if n, err := strconv.Atoi(os.Getenv("CHAOS_FLEET_CONNECTORS")); err == nil && n > 0 {
		connectors = n // a smaller fleet while working on the scenario
	}
	seed := scenarioSeed(t)
	rng := rand.New(rand.NewPCG(seed, 15))
	f := newFleet(t, seed, 200, 40, 3, 3)
	began := time.Now()
	lw := f.watchLeases()
	f.createConnectors(connectors)
	cs := startChanges(t, f.sb, seed, 200*time.Millisecond, 100000)
	f.settle(4 * time.Minute)
	t.Logf("%d connectors streaming on %d agents after %s", len(f.conns), len(f.agents), time.Since(began).Round(time.Second))
	faults := int64(0)

	// 1. SIGKILL a replica: the API keeps answering through the others.
	f.kill(f.replicas[0])
	faults++
	for i := range 10 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if _, err := f.c.ListConnectors(ctx); err != nil {
			t.Errorf("API call %d after a replica's SIGKILL: %v", i, err)
		}
		cancel()
	}
	f.start(f.replicas[0])
	f.waitHealthy(f.replicas[0])
	t.Logf("a replica's SIGKILL: the API answered through the others (%s)", time.Since(began).Round(time.Second))

	// 2. SIGKILL an agent: its connectors stream again elsewhere.
	victim := f.agents[0]
	killed := time.Now()
	f.kill(victim)
	faults++
	f.waitStreaming("the killed agent's connectors to stream elsewhere", victim.agentID)
	t.Logf("an agent's SIGKILL: its connectors streamed elsewhere %s later (lease TTL %s)", time.Since(killed).Round(100*time.Millisecond), f.ttl)
	f.start(victim)

	// 3. Partition an agent from the control plane past its lease.
	cut := f.agents[1]
	for _, px := range cut.proxies {
		px.SetReachable(false)
	}
	faults++
	f.waitStreaming("the cut-off agent's connectors to stream elsewhere", cut.agentID)
	t.Logf("an agent cut off the control plane: its connectors streamed elsewhere (%s)", time.Since(began).Round(time.Second))
	for _, px := range cut.proxies {
		px.SetReachable(true)
	}

	// 4. Restart PostgreSQL.
	if err := f.pg.Kill(); err != nil {
		t.Fatal(err)
	}
	faults++
	time.Sleep(2 * time.Second) // down for a while: not a synchronisation, the outage itself
	if err := f.pg.Start(); err != nil {
		t.Fatal(err)
	}
	f.waitStreaming("every connector to stream again after PostgreSQL's restart")
	t.Logf("PostgreSQL restarted: every connector streams again (%s)", time.Since(began).Round(time.Second))
	for range rounds {
		faults += f.randomKill(rng)
	}
	cs.stop()
	f.settle(5 * time.Minute)
	t.Logf("settled: every connector wrote every change (%s)", time.Since(began).Round(time.Second))
	lw.stop()
	stale, untagged, ex := f.staleWrites(lw)
	f.writes.mu.Lock()
	total := len(f.writes.writes)
	f.writes.mu.Unlock()
	t.Logf("%d Dataverse writes: %d carried a stale lease, %d no lease tag", total, stale, untagged)
	if stale > 0 || untagged > 0 {
		t.Errorf("%d writes under a lease no longer current, %d untagged:\n  %s", stale, untagged, strings.Join(ex, "\n  "))
	}
	finishScenario(t, "replicas-and-pool", seed, began, 4+rounds, faults, f.sb, nil, []compare.Table{compare.Account(), compare.Contact(true)})
}

// randomKill SIGKILLs a replica or an agent drawn at random, leaves it down for 1 to 8 s (the outage itself,
// not a synchronisation) and starts it again.
func (f *fleet) randomKill(rng *rand.Rand) int64 {
	procs := append(append([]*fleetProc(nil), f.replicas...), f.agents...)
	p := procs[rng.IntN(len(procs))]
	f.kill(p)
	f.t.Logf("SIGKILL %s", p.name)
	time.Sleep(time.Duration(1000+rng.IntN(7000)) * time.Millisecond)
	f.start(p)
	if p.url != "" {
		f.waitHealthy(p)
	}
	return 1
}
