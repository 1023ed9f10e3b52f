package chaos_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/chaos"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faultproxy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// profileSpec sizes the suite. The quick profile runs in a few minutes inside `make test`; the long one is
// `make chaos PROFILE=long`.
type profileSpec struct {
	Name string
	Long bool
	// Contacts and Accounts seed most scenarios' Salesforce org.
	Contacts, Accounts int
	// Kills is the number of SIGKILLs of the process-kill scenario, spread over its four phases.
	Kills int
	// Outages are the unreachable periods of the network scenario: real time the side is down, and how far
	// the sandbox clock moves on while it is (so tokens expire and retention runs out without waiting).
	Outages []outage
	// StormRetryAfter is the Retry-After of the 429 storms, StormSize the number of requests each throttles.
	StormRetryAfter time.Duration
	StormSize       int
	// Rounds is how many rounds of injected faults the network, throttling and stream scenarios run.
	Rounds int
}

type outage struct {
	name        string
	real, clock time.Duration
}

var profile = func() profileSpec {
	if strings.EqualFold(os.Getenv("CHAOS_PROFILE"), "long") {
		return profileSpec{
			Name: "long", Long: true, Contacts: 12000, Accounts: 2000, Kills: 200,
			Outages:         []outage{{"1s", time.Second, 0}, {"30s", 30 * time.Second, 0}, {"10m", 30 * time.Second, 10 * time.Minute}},
			StormRetryAfter: 30 * time.Second, StormSize: 2, Rounds: 8,
		}
	}
	return profileSpec{
		Name: "quick", Contacts: 2000, Accounts: 300, Kills: 12,
		// The "30 s" outage is real for 8 s (past the clients' own retries) and 30 s on the sandbox clock.
		Outages:         []outage{{"1s", time.Second, 0}, {"30s", 8 * time.Second, 30 * time.Second}, {"10m", 3 * time.Second, 10 * time.Minute}},
		StormRetryAfter: 5 * time.Second, StormSize: 2, Rounds: 3,
	}
}()

var (
	resultsMu sync.Mutex
	results   []chaos.Result
)

func TestMain(m *testing.M) {
	code := m.Run()
	resultsMu.Lock()
	if len(results) > 0 {
		table := chaos.Table(profile.Name, results)
		fmt.Print("\n" + table)
		if path := os.Getenv("CHAOS_REPORT"); path != "" {
			if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "writing the chaos report:", err)
			}
		}
	}
	resultsMu.Unlock()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// skipShort skips the scenarios under -short: they start sandboxes, agents and processes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos scenarios run sandboxes and agents; skipped under -short")
	}
}

// scenarioSeed is CHAOS_SEED when set (to repeat a run), else a fresh one; it is logged and reported.
func scenarioSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED %q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// env is one scenario's sandbox, optionally with a fault proxy in front of every listener, and the agent
// configuration pointing at it.
type env struct {
	t       *testing.T
	name    string
	seed    uint64
	rng     *rand.Rand
	dir     string
	sb      *sandbox.Sandbox
	proxies map[string]*faultproxy.Proxy // by sandbox listener name
	cfg     agent.Config
	began   time.Time

	// What the scenario reports.
	iterations int
	faults     int64
	// skip names Salesforce records expected to be absent from Dataverse (dead-lettered on purpose).
	skip   map[string]bool
	tables []compare.Table
}

type envOptions struct {
	contacts, accounts int
	// proxied puts a fault proxy in front of every listener but the admin API.
	proxied    bool
	salesforce salesforce.Config
	dataverse  dataverse.Config
}

func newEnv(t *testing.T, name string, o envOptions) *env {
	t.Helper()
	skipShort(t)
	e := &env{t: t, name: name, seed: scenarioSeed(t), dir: t.TempDir(), began: time.Now(), skip: map[string]bool{},
		proxies: map[string]*faultproxy.Proxy{}, tables: []compare.Table{compare.Account(), compare.Contact(true)}}
	e.rng = rand.New(rand.NewPCG(e.seed, 0x5eed))
	t.Logf("scenario %s: seed %d (CHAOS_SEED=%d repeats it), profile %s", name, e.seed, e.seed, profile.Name)
	sbLog, err := os.Create(filepath.Join(e.dir, "sandbox.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sbLog.Close() })
	opts := sandbox.Options{
		Dir: filepath.Join(e.dir, "sandbox"), Contacts: o.contacts, Accounts: o.accounts, Seed: int64(e.seed % (1 << 40)),
		Salesforce: o.salesforce, Dataverse: o.dataverse,
		Logger: slog.New(slog.NewTextHandler(sbLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.proxied {
		opts.Front = func(listener, addr string) (string, error) {
			if listener == "admin" {
				return addr, nil
			}
			p, err := faultproxy.Listen(context.Background(), "127.0.0.1:0", addr)
			if err != nil {
				return "", err
			}
			e.proxies[listener] = p
			return p.Addr(), nil
		}
	}
	sb, err := sandbox.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sb.Close()
		for _, p := range e.proxies {
			p.Close()
		}
	})
	e.sb = sb
	e.cfg = harness.AgentConfig(sb.Info)
	e.cfg.Connector = name
	e.cfg.Salesforce.InstanceURL = sb.Info.Salesforce.InstanceURL
	e.cfg.Tuning.FlushInterval = agent.Duration(50 * time.Millisecond)
	e.cfg.Tuning.StatusInterval = agent.Duration(250 * time.Millisecond)
	return e
}

// side returns the proxies of one side: "salesforce" (login, instance, Pub/Sub) or "dataverse" (environment,
// authority).
func (e *env) side(name string) []*faultproxy.Proxy {
	var out []*faultproxy.Proxy
	for l, p := range e.proxies {
		if strings.HasPrefix(l, name) || (name == "salesforce" && l == "pubsub") || (name == "dataverse" && l == "authority") {
			out = append(out, p)
		}
	}
	return out
}

// proxyFaults sums the faults every proxy injected.
func (e *env) proxyFaults() int64 {
	var n int64
	for _, p := range e.proxies {
		n += p.Counts().Faults()
	}
	return n
}

// running is an agent running in the test process, with its state in a local store.
type running struct {
	a       *agent.Agent
	store   *localstore.Store
	stop    func()
	stopped bool
}

// startAgent runs an agent in-process with its state in stateDir (reused across restarts; "" for the
// scenario's default). Its log goes to agent.log in the scenario's directory, shown when the test fails.
func (e *env) startAgent(stateDir string) *running {
	e.t.Helper()
	if stateDir == "" {
		stateDir = filepath.Join(e.dir, "state")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	store, err := localstore.Open(stateDir)
	if err != nil {
		e.t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, "agent.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := e.cfg
	cfg.Resolve() // the test made the config (and may have changed its tables): it resolves it, as the control plane does
	a, err := agent.New(cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, log)
	if err != nil {
		store.Close()
		logf.Close()
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	r := &running{a: a, store: store}
	r.stop = func() {
		if r.stopped {
			return
		}
		r.stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("agent ended with %v", err)
			}
		case <-time.After(time.Minute):
			e.t.Error("the agent did not stop within a minute")
		}
		store.Close()
		logf.Close()
	}
	e.t.Cleanup(func() {
		r.stop()
		if e.t.Failed() {
			e.t.Logf("last lines of the agent's log:\n%s", tail(logPath, 60))
		}
	})
	return r
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
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
func streaming(s agent.Status) bool { return harness.Streaming(s) }

// settle waits until every table streams with nothing pending and has written every change made so far:
// one more change per table, committed after all others, must be passed by the table's stored position
// (events are applied in commit order).
func (e *env) settle(r *running, timeout time.Duration) agent.Status {
	e.t.Helper()
	var last agent.Status
	defer func() {
		if e.t.Failed() {
			e.t.Logf("last status: %s", describe(last))
		}
	}()
	waitFor(e.t, timeout, "the agent to stream", func() bool {
		last = r.a.Status()
		return streaming(last)
	})
	// A stream that (re)subscribed at the tip after a probe was committed never sees it (the load before
	// it read the probe's change instead), and its position stays unknown until the next change: probe
	// again every few seconds.
	probes, probed := e.probe(), time.Now()
	waitFor(e.t, timeout, "the agent to write every change", func() bool {
		last = r.a.Status()
		if streaming(last) && passed(last.Tables, probes) {
			return true
		}
		if time.Since(probed) > 5*time.Second {
			probes, probed = e.probe(), time.Now()
		}
		return false
	})
	return last
}

// probe makes one change per table and returns its replay ID per table.
func (e *env) probe() map[string]uint64 {
	e.t.Helper()
	probes := map[string]uint64{}
	for _, obj := range []string{"Account", "Contact"} {
		res, err := e.sb.Salesforce.Mutate(obj, 1, "")
		if err != nil {
			e.t.Fatal(err)
		}
		for _, id := range res.ReplayIDs {
			probes[obj] = max(probes[obj], id)
		}
	}
	return probes
}

// describe is a status in one line per table, for failure messages.
func describe(s agent.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state %s %q", s.State, s.Reason)
	for _, ts := range s.Tables {
		fmt.Fprintf(&b, "\n  %s: phase %s %q, position %d, lag %.1fs, load %d/%d, received %d written %d dead %d skipped %d, last error %q, recoveries %q",
			ts.Table, ts.Phase, ts.Reason, ts.Position, ts.LagSeconds, ts.LoadDone, ts.LoadTotal, ts.Received, ts.Written,
			ts.DeadLettered, ts.Skipped, ts.LastError, ts.Recoveries)
	}
	return b.String()
}

func passed(tables []agent.TableStatus, probes map[string]uint64) bool {
	if len(tables) == 0 {
		return false
	}
	for _, ts := range tables {
		if ts.Position < probes[ts.Table] {
			return false
		}
	}
	return true
}

// finish compares the whole dataset, reports the scenario's line and fails the test on any difference or
// duplicate.
func (e *env) finish() chaos.Result {
	e.t.Helper()
	return finishScenario(e.t, e.name, e.seed, e.began, e.iterations, e.faults, e.sb, e.skip, e.tables)
}

func finishScenario(t *testing.T, name string, seed uint64, began time.Time, iterations int, faults int64,
	sb *sandbox.Sandbox, skip map[string]bool, tables []compare.Table) chaos.Result {
	t.Helper()
	res, err := compare.Compare(sb.Salesforce, sb.Dataverse, sb.Info.Dataverse.TeamID, skip, tables...)
	if err != nil {
		t.Fatal(err)
	}
	r := chaos.Result{Scenario: name, Iterations: iterations, Faults: faults, Seed: seed, Elapsed: time.Since(began)}
	for _, c := range res {
		t.Log(c)
		r.Compared += c.Compared + c.Deleted
		r.Differences += c.Missing + c.Extra + c.Mismatched
		r.Duplicates += c.Duplicates
		if c.Differences() > 0 {
			t.Errorf("%s\n  %s", c, strings.Join(c.Examples, "\n  "))
		}
		if c.Compared == 0 {
			t.Errorf("%s: no record compared", c.Table)
		}
	}
	t.Log(r.Line())
	resultsMu.Lock()
	results = append(results, r)
	resultsMu.Unlock()
	return r
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

// changeStream makes a steady stream of Salesforce changes (updates of random records, some creates and
// deletes) until stop is called or max rounds ran; it returns the number of changes made.
type changeStream struct {
	stop  func()
	done  chan struct{}
	mu    sync.Mutex
	count int
	err   error
}

func (e *env) startChanges(every time.Duration, maxRounds int) *changeStream {
	return startChanges(e.t, e.sb, e.seed, every, maxRounds)
}

func startChanges(t *testing.T, sb *sandbox.Sandbox, seed uint64, every time.Duration, maxRounds int) *changeStream {
	ctx, cancel := context.WithCancel(t.Context())
	cs := &changeStream{done: make(chan struct{})}
	rng := rand.New(rand.NewPCG(seed, 0xc4a9e))
	cs.stop = func() {
		cancel()
		<-cs.done
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.err != nil {
			t.Errorf("making changes: %v", cs.err)
		}
	}
	go func() {
		defer close(cs.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < maxRounds; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n, err := oneChange(sb, rng, i)
			cs.mu.Lock()
			cs.count += n
			if err != nil && cs.err == nil {
				cs.err = err
			}
			cs.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return cs
}

func (cs *changeStream) changes() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.count
}

// oneChange makes one round of changes: updates of a few random records, now and then creates, a delete
// and an undelete.
func oneChange(sb *sandbox.Sandbox, rng *rand.Rand, round int) (int, error) {
	sf := sb.Salesforce
	obj := "Contact"
	if round%4 == 0 {
		obj = "Account"
	}
	n := 1 + rng.IntN(5)
	if _, err := sf.Mutate(obj, n, ""); err != nil {
		return 0, err
	}
	switch round % 10 {
	case 3:
		if _, err := sf.Generate("Contact", 2, ""); err != nil {
			return n, err
		}
		n += 2
	case 7:
		ids := liveIDs(sb, "Contact", 1+rng.IntN(50))
		if len(ids) > 0 {
			id := ids[len(ids)-1]
			if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", ID: id}}}); err != nil {
				return n, err
			}
			n++
			if rng.IntN(2) == 0 {
				if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "undelete", Object: "Contact", IDs: []string{id}}}}); err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// liveIDs returns up to n Ids of live records of an object, in Id order.
func liveIDs(sb *sandbox.Sandbox, object string, n int) []string {
	var buf strings.Builder
	if err := sb.Salesforce.Export(&buf, object); err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if len(out) == n {
			break
		}
		if strings.Contains(line, `"IsDeleted":false`) {
			if i := strings.Index(line, `"Id":"`); i >= 0 && len(line) >= i+24 {
				out = append(out, line[i+6:i+24])
			}
		}
	}
	return out
}

// loadProgress returns the rows loaded and the rows to load over every table.
func loadProgress(s agent.Status) (done, total int64) {
	for _, ts := range s.Tables {
		done, total = done+ts.LoadDone, total+ts.LoadTotal
	}
	return done, total
}
