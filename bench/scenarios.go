package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
)

// env is one scenario's sandbox and working directory.
type env struct {
	o   options
	dir string
	sb  *sandbox.Sandbox
}

// budget is the Dataverse service-protection budget a scenario runs under: every scenario names its own.
type budget int

const (
	// budgetDefault is the sandbox's default: Dataverse's published limits per application user (6,000
	// requests and 1,200 s of execution time per 5 minutes, 52 concurrent), a bulk item modelled at 20 ms, so
	// about 200 records/s sustained per user (docs/sandbox-dataverse.md).
	budgetDefault budget = iota
	// budgetNoExecutionTime lifts the execution-time budget alone (the request count and concurrency limits
	// stay): the scenario measures the sync's own speed, not the service's allowance.
	budgetNoExecutionTime
)

// liftedExecutionTime is "no execution-time budget" in practice: far beyond any run's modelled cost.
const liftedExecutionTime = dataverse.Duration(1000 * time.Hour)

func newEnv(o options, contacts, accounts int, b budget) (*env, error) {
	dir, err := os.MkdirTemp("", "crmsync-bench-")
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: contacts, Accounts: accounts, Seed: 42})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if b == budgetNoExecutionTime {
		sb.Dataverse.SetLimits(dataverse.Limits{ExecutionTime: liftedExecutionTime})
	}
	if o.Latency > 0 {
		sb.Dataverse.Faults().Set(faults.Config{Latency: o.Latency, PathPrefix: "/api/data/"})
		sb.Salesforce.Faults().Set(faults.Config{Latency: o.Latency, PathPrefix: "/services/data/"})
	}
	return &env{o: o, dir: dir, sb: sb}, nil
}

func (e *env) close() {
	e.sb.Close()
	os.RemoveAll(e.dir)
}

func (e *env) agent(cfg api.Config) (*harness.Agent, error) {
	var logw io.Writer
	if os.Getenv("CRMSYNC_BENCH_AGENT_LOG") != "" {
		logw = os.Stderr
	}
	var extra []string
	if e.o.AgentCPUProfile != "" {
		extra = append(extra, "--pprof")
	}
	return harness.StartAgent(e.o.Crmsync, cfg, e.dir, filepath.Join(e.dir, "state"), logw, extra...)
}

// agentProfile fetches a CPU profile of the agent's next 20 seconds into file, in the background; wait
// waits for it.
func agentProfile(a *harness.Agent, file string) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		var resp *http.Response
		var err error
		for range 100 { // the agent's listener comes up shortly after the process starts
			if resp, err = http.Get("http://" + a.Addr + "/debug/pprof/profile?seconds=20"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			err = errors.Join(err, f.Close())
		}
		done <- err
	}()
	return func() error { return <-done }
}

func runScenario(o options) (*Result, error) {
	start := time.Now()
	var (
		res *Result
		err error
	)
	base, lat := strings.CutSuffix(o.Scenario, "-lat")
	if !lat {
		o.Latency = 0
	}
	switch base {
	case "load":
		res, err = scenarioLoad(o, o.Param)
	case "intake", "output", "relay":
		var self string
		if self, err = os.Executable(); err == nil {
			res, err = scenarioClients(o, o.Param, base, self)
		}
	case "naive":
		res, err = scenarioNaive(o, o.Param)
	case "cdc":
		res, err = scenarioCDC(o, o.Param)
	case "backlog":
		res, err = scenarioBacklog(o, o.Param)
	case "throttled":
		res, err = scenarioThrottled(o, o.Param)
	case "plan":
		res, err = scenarioPlan(o, o.Param)
	case "users":
		res, err = scenarioUsers(o, o.Param)
	default:
		return nil, fmt.Errorf("unknown scenario %q", o.Scenario)
	}
	if err != nil {
		return nil, err
	}
	res.Scenario, res.Param, res.Seconds = o.Scenario, o.Param, time.Since(start).Seconds()
	if o.Latency > 0 {
		res.Figures["latency_ms"] = float64(o.Latency.Milliseconds())
	}
	return res, nil
}

// scenarioLoad: the initial load of n contacts and n/5 accounts by an agent process, the execution-time
// budget lifted: the sync's own speed, compared with the ceiling's.
func scenarioLoad(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, n/5, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	a, err := e.agent(harness.AgentConfig(e.sb.Info))
	if err != nil {
		return nil, err
	}
	defer a.Kill()
	start := time.Now()
	sandboxCPU0, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	var profiled func() error
	if o.AgentCPUProfile != "" {
		profiled = agentProfile(a, o.AgentCPUProfile)
	}
	s, err := a.WaitStatus(time.Hour, harness.Streaming)
	if err != nil {
		return nil, err
	}
	if profiled != nil {
		if err := profiled(); err != nil {
			return nil, fmt.Errorf("agent CPU profile: %w", err)
		}
	}
	elapsed := time.Since(start).Seconds()
	sandboxCPU, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	rss, err := a.PeakRSS()
	if err != nil {
		return nil, err
	}
	cpu, err := a.CPUTime()
	if err != nil {
		return nil, err
	}
	records := float64(n + n/5)
	return &Result{Figures: map[string]float64{
		"records":                     records,
		"records_per_second":          records / elapsed,
		"agent_cpu_ms_per_1000":       cpu.Seconds() * 1000 / records * 1000,
		"agent_cpu_cores":             cpu.Seconds() / elapsed,
		"sandbox_cpu_cores":           (sandboxCPU - sandboxCPU0).Seconds() / elapsed,
		"sandbox_cpu_ms_per_1000":     (sandboxCPU - sandboxCPU0).Seconds() * 1000 / records * 1000,
		"salesforce_calls_per_1000":   float64(s.SalesforceCalls) / records * 1000,
		"dataverse_requests_per_1000": float64(s.DataverseCalls) / records * 1000,
		"peak_rss_mib":                float64(rss) / (1 << 20),
	}}, nil
}

// streamingAgent starts an agent over a sandbox of 5,000 contacts and 1,000 accounts under budget b and
// waits until it streams.
func streamingAgent(o options, b budget) (*env, *harness.Agent, error) {
	e, err := newEnv(o, 5000, 1000, b)
	if err != nil {
		return nil, nil, err
	}
	a, err := e.agent(harness.AgentConfig(e.sb.Info))
	if err != nil {
		e.close()
		return nil, nil, err
	}
	if _, err := a.WaitStatus(5*time.Minute, harness.Streaming); err != nil {
		a.Kill()
		e.close()
		return nil, nil, err
	}
	// One change per table, so each has a stored stream position (as an agent that has run a while has).
	probes := map[string]uint64{}
	for _, table := range []string{"Account", "Contact"} {
		res, err := e.sb.Salesforce.Mutate(table, 1, "")
		if err != nil {
			a.Kill()
			e.close()
			return nil, nil, err
		}
		probes[table] = res.ReplayIDs[len(res.ReplayIDs)-1]
	}
	if _, err := a.WaitStatus(time.Minute, func(s api.Status) bool {
		for _, t := range s.Tables {
			if t.Position < probes[t.Table] {
				return false
			}
		}
		return len(s.Tables) > 0
	}); err != nil {
		a.Kill()
		e.close()
		return nil, nil, err
	}
	return e, a, nil
}

// produce commits rate contact changes per second for seconds, in ten transactions a second, and returns
// how many it committed and the last replay ID.
func produce(e *env, rate, seconds int) (int, uint64, error) {
	perTick := max(1, rate/10)
	tick := time.NewTicker(time.Second / time.Duration(max(1, rate/perTick)))
	defer tick.Stop()
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	changes := 0
	var last uint64
	for time.Now().Before(end) {
		<-tick.C
		res, err := e.sb.Salesforce.Mutate("Contact", perTick, "")
		if err != nil {
			return changes, last, err
		}
		changes += perTick
		for _, id := range res.ReplayIDs {
			last = max(last, id)
		}
	}
	return changes, last, nil
}

func contactTable(s api.Status) api.TableStatus {
	for _, t := range s.Tables {
		if t.Table == "Contact" {
			return t
		}
	}
	return api.TableStatus{}
}

// scenarioCDC: steady changes at a rate; latency from Salesforce commit to Dataverse acknowledgement, as the
// agent measures it for every change. The execution-time budget is lifted: 1,000 changes/s is five times what
// one application user's execution time sustains (about 200 records/s), so a minute of it would measure the
// budget; the request-count budget (6,000 per 5 minutes, 20/s), which batching must respect, stays.
func scenarioCDC(o options, rate int) (*Result, error) {
	e, a, err := streamingAgent(o, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	defer a.Kill()
	before, _ := a.Status()
	changes, last, err := produce(e, rate, o.CDCSeconds)
	if err != nil {
		return nil, err
	}
	s, err := a.WaitStatus(5*time.Minute, func(s api.Status) bool { return harness.Streaming(s) && contactTable(s).Position >= last })
	if err != nil {
		return nil, err
	}
	lat := contactTable(s).Latency
	if lat == nil {
		return nil, fmt.Errorf("the agent reported no latency")
	}
	return &Result{Figures: map[string]float64{
		"changes": float64(changes), "rate": float64(rate),
		"latency_p50_ms": lat.P50 * 1000, "latency_p95_ms": lat.P95 * 1000, "latency_p99_ms": lat.P99 * 1000, "latency_max_ms": lat.Max * 1000,
		"latency_samples":               float64(lat.Samples),
		"dataverse_requests_per_1000":   float64(s.DataverseCalls-before.DataverseCalls) / float64(changes) * 1000,
		"dataverse_requests_per_second": float64(s.DataverseCalls-before.DataverseCalls) / float64(o.CDCSeconds),
	}}, nil
}

// scenarioBacklog: the agent is stopped while n changes accumulate (at 1,000 a second, the highest CDC rate
// measured), then started; the time to drain and the rate. The default budget: 50,000 changes fit in one
// application user's first window (60,000 bulk items); a larger backlog drains at the budget's pace.
func scenarioBacklog(o options, n int) (*Result, error) {
	e, a, err := streamingAgent(o, budgetDefault)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := a.Stop(time.Minute); err != nil {
		return nil, err
	}
	const rate = 1000
	accStart := time.Now()
	changes, last, err := produce(e, rate, (n+rate-1)/rate)
	if err != nil {
		return nil, err
	}
	accumulated := time.Since(accStart).Seconds()
	start := time.Now()
	a, err = e.agent(harness.AgentConfig(e.sb.Info))
	if err != nil {
		return nil, err
	}
	defer a.Kill()
	if _, err := a.WaitStatus(10*time.Minute, func(s api.Status) bool { return harness.Streaming(s) && contactTable(s).Position >= last }); err != nil {
		return nil, err
	}
	drain := time.Since(start).Seconds()
	return &Result{Figures: map[string]float64{
		"changes": float64(changes), "accumulated_seconds": accumulated, "drain_seconds": drain,
		"changes_per_second": float64(changes) / drain, "speedup": accumulated / drain,
	}}, nil
}

// scenarioThrottled: a load of n contacts (and n/5 accounts) under a Dataverse budget of 60 requests per
// 10-second window (the execution-time budget lifted, so the request count alone binds), so service
// protection limits it: throughput as a fraction of the budget's maximum (60 requests of 1,000 rows per
// 10 s), and 429 answers per 1,000 records.
func scenarioThrottled(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, n/5, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	const requests, window = 60, 10 * time.Second
	e.sb.Dataverse.SetLimits(dataverse.Limits{Requests: requests, Window: dataverse.Duration(window), ExecutionTime: liftedExecutionTime})
	a, err := e.agent(harness.AgentConfig(e.sb.Info))
	if err != nil {
		return nil, err
	}
	defer a.Kill()
	start := time.Now()
	s, err := a.WaitStatus(time.Hour, harness.Streaming)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start).Seconds()
	records := float64(n + n/5)
	maxRate := float64(requests) / window.Seconds() * 1000
	return &Result{Figures: map[string]float64{
		"records": records, "records_per_second": records / elapsed, "budget_max_records_per_second": maxRate,
		"fraction_of_budget": records / elapsed / maxRate,
		"throttled_per_1000": float64(s.Throttled) / records * 1000,
		"dataverse_requests": float64(s.DataverseCalls),
	}}, nil
}

// Budget-bound loads (scenarioUsers) run under Dataverse's published limits with the window scaled down:
// usersWindowScale shortens the 5-minute window and scales its request and execution-time budgets with it,
// so every sustained rate (20 requests/s, 4 s of execution per second, about 200 records/s per user) is
// Microsoft's, but a user's first full window (the burst a fresh user gets at the sync's own speed) holds
// 3,000 rows instead of 60,000 — what lets a run on a shared 2-core machine reach the budget-bound regime of a
// long load within minutes.
const usersWindowScale = 20

// scenarioUsers: a load of n contacts (and n/5 accounts) written as users application users under the default
// budget (window scaled, see usersWindowScale). Figures: the whole load's rate, the sustained rate once the
// budget binds (from when every user has had a 429 to the end), the fraction of the users' combined modelled budget that
// sustained rate is, 429s per 1,000 records, early retries (none), and whether Dataverse holds every row.
func scenarioUsers(o options, users int) (*Result, error) {
	n := o.UsersLoad
	e, err := newEnvUsers(o, n, n/5, users)
	if err != nil {
		return nil, err
	}
	defer e.close()
	// Microsoft's published limits per user (docs/sandbox-dataverse.md), scaled.
	limits := dataverse.Limits{
		Requests:      6000 / usersWindowScale,
		ExecutionTime: dataverse.Duration(20 * time.Minute / usersWindowScale),
		Window:        dataverse.Duration(5 * time.Minute / usersWindowScale),
	}
	e.sb.Dataverse.SetLimits(limits)
	a, err := e.agent(harness.AgentConfig(e.sb.Info))
	if err != nil {
		return nil, err
	}
	defer a.Kill()
	start := time.Now()
	written := func(s api.Status) float64 {
		var w int64
		for _, t := range s.Tables {
			w += t.LoadDone
		}
		return float64(w)
	}
	// Sample every second: the sustained rate is measured once every user has had a 429 (its first window's
	// budget spent) until the end.
	var boundAt time.Time
	var boundWritten float64
	var s api.Status
	for {
		var ok bool
		if s, ok = a.Status(); ok {
			if boundAt.IsZero() && everyUserThrottled(s, users) {
				boundAt, boundWritten = time.Now(), written(s)
			}
			if harness.Streaming(s) {
				break
			}
		}
		if time.Since(start) > time.Hour {
			return nil, errors.New("the load did not finish within an hour")
		}
		time.Sleep(time.Second)
	}
	end := time.Now()
	records := float64(n + n/5)
	costPerRow := dataverse.DefaultBulkItemCost
	perUser := time.Duration(limits.ExecutionTime).Seconds() / time.Duration(limits.Window).Seconds() / costPerRow.Seconds() // rows/s
	figures := map[string]float64{
		"users": float64(users), "records": records,
		"records_per_second":          records / end.Sub(start).Seconds(),
		"budget_records_per_second":   perUser * float64(users),
		"throttled_per_1000":          float64(s.Throttled) / records * 1000,
		"early_retries":               float64(e.sb.Dataverse.EarlyRetries()),
		"dataverse_requests_per_1000": float64(s.DataverseCalls) / records * 1000,
	}
	if !boundAt.IsZero() && end.Sub(boundAt) > 5*time.Second {
		sustained := (records - boundWritten) / end.Sub(boundAt).Seconds()
		figures["sustained_records_per_second"] = sustained
		figures["budget_fraction"] = sustained / (perUser * float64(users))
		figures["bound_seconds"] = end.Sub(boundAt).Seconds()
	}
	contacts, _ := e.sb.Dataverse.Count("contact")
	accounts, _ := e.sb.Dataverse.Count("account")
	figures["dataverse_rows_equal"] = 0
	if contacts == n && accounts == n/5 {
		figures["dataverse_rows_equal"] = 1
	}
	return &Result{Figures: figures, Notes: []string{fmt.Sprintf("window scaled 1/%d: %d requests and %s of execution per %s per user (the sustained rates of Microsoft's limits)",
		usersWindowScale, limits.Requests, time.Duration(limits.ExecutionTime), time.Duration(limits.Window))}}, nil
}

// newEnvUsers is newEnv with users application users in the Dataverse sandbox.
func newEnvUsers(o options, contacts, accounts, users int) (*env, error) {
	dir, err := os.MkdirTemp("", "crmsync-bench-")
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: contacts, Accounts: accounts, Seed: 42,
		Dataverse: dataverse.Config{ApplicationUsers: users - 1}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &env{o: o, dir: dir, sb: sb}, nil
}

// everyUserThrottled reports whether each of the agent's users application users has had a 429.
func everyUserThrottled(s api.Status, users int) bool {
	n := 0
	for _, u := range s.ApplicationUsers {
		if u.Throttled > 0 {
			n++
		}
	}
	return n >= users
}
