package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/sfid"
)

// env is one scenario's sandbox and working directory.
type env struct {
	o   options
	dir string
	sb  *sandbox.Sandbox
}

func newEnv(o options, contacts, accounts int) (*env, error) {
	dir, err := os.MkdirTemp("", "crmsync-bench-")
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: contacts, Accounts: accounts, Seed: 42})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if !o.DefaultBudget {
		// See options.DefaultBudget: the throttled scenario sets its own budget.
		sb.Dataverse.SetLimits(dataverse.Limits{ExecutionTime: dataverse.Duration(1000 * time.Hour)})
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
	return harness.StartAgent(e.o.Crmsync, cfg, e.dir, filepath.Join(e.dir, "state"), logw)
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
	case "intake":
		res, err = scenarioIntake(o, o.Param)
	case "output":
		res, err = scenarioOutput(o, o.Param)
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

// scenarioLoad: the initial load of n contacts and n/5 accounts by an agent process.
func scenarioLoad(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, n/5)
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
	s, err := a.WaitStatus(time.Hour, harness.Streaming)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start).Seconds()
	rss, err := a.PeakRSS()
	if err != nil {
		return nil, err
	}
	records := float64(n + n/5)
	return &Result{Figures: map[string]float64{
		"records":                     records,
		"records_per_second":          records / elapsed,
		"salesforce_calls_per_1000":   float64(s.SalesforceCalls) / records * 1000,
		"dataverse_requests_per_1000": float64(s.DataverseCalls) / records * 1000,
		"peak_rss_mib":                float64(rss) / (1 << 20),
	}}, nil
}

// bulkRows builds pre-mapped UpsertMultiple bodies of 1,000 contacts each.
func bulkRows(team string, n int) [][]byte {
	var bodies [][]byte
	for start := 0; start < n; start += 1000 {
		var buf bytes.Buffer
		buf.WriteString(`{"Targets":[`)
		for i := start; i < min(start+1000, n); i++ {
			if i > start {
				buf.WriteByte(',')
			}
			id := fmt.Sprintf("003BENCH%07d", i)
			fmt.Fprintf(&buf, `{"@odata.type":"Microsoft.Dynamics.CRM.contact","contactid":"%s","firstname":"Bench","lastname":"Row %d","emailaddress1":"row%d@example.com","telephone1":"555-%04d","ownerid@odata.bind":"/teams(%s)"}`,
				sfid.MustGUID(id), i, i, i%10000, team)
		}
		buf.WriteString(`]}`)
		bodies = append(bodies, buf.Bytes())
	}
	return bodies
}

// dvToken gets a Dataverse token with a plain HTTP client.
func dvToken(sb *sandbox.Sandbox) (string, error) {
	i := sb.Info.Dataverse
	resp, err := sb.HTTPClient().PostForm(i.AuthorityURL+"/"+i.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {i.ClientID}, "client_secret": {i.ClientSecret}, "scope": {i.EnvironmentURL + "/.default"}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("dataverse token (HTTP %d): %w", resp.StatusCode, err)
	}
	return t.AccessToken, nil
}

// scenarioIntake: the sandbox's own intake, from a trivial writer sending pre-mapped UpsertMultiple
// batches of 1,000 contacts with 4 in flight (as the agent does).
func scenarioIntake(o options, n int) (*Result, error) {
	e, err := newEnv(o, 0, 0)
	if err != nil {
		return nil, err
	}
	defer e.close()
	tok, err := dvToken(e.sb)
	if err != nil {
		return nil, err
	}
	bodies := bulkRows(e.sb.Info.Dataverse.TeamID, n)
	hc := e.sb.HTTPClient()
	u := e.sb.Info.Dataverse.EnvironmentURL + "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.UpsertMultiple"
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := time.Now()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(bodies[i]))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("UpsertMultiple: HTTP %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return &Result{Figures: map[string]float64{"records": float64(n), "records_per_second": float64(n) / elapsed}}, nil
}

// scenarioOutput: the sandbox's own output, from a trivial reader draining a Bulk query of n contacts.
func scenarioOutput(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, 0)
	if err != nil {
		return nil, err
	}
	defer e.close()
	i := e.sb.Info.Salesforce
	hc := e.sb.HTTPClient()
	resp, err := hc.PostForm(i.InstanceURL+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {i.ClientID}, "client_secret": {i.ClientSecret}})
	if err != nil {
		return nil, err
	}
	var t struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&t)
	resp.Body.Close()
	call := func(method, path string, body string) (*http.Response, error) {
		req, _ := http.NewRequest(method, i.InstanceURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+t.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		return hc.Do(req)
	}
	base := "/services/data/v" + i.APIVersion + "/jobs/query"
	start := time.Now()
	resp, err = call(http.MethodPost, base, `{"operation":"query","query":"SELECT Id, FirstName, LastName, Email, Phone, Fax, MobilePhone, AssistantName, AssistantPhone, Birthdate, Department, Description, Salutation, AccountId FROM Contact"}`)
	if err != nil {
		return nil, err
	}
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	for job.State != "JobComplete" {
		time.Sleep(100 * time.Millisecond)
		resp, err = call(http.MethodGet, base+"/"+job.ID, "")
		if err != nil {
			return nil, err
		}
		_ = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
	}
	rows, locator := 0, ""
	for {
		q := "?maxRecords=50000"
		if locator != "" {
			q += "&locator=" + locator
		}
		resp, err = call(http.MethodGet, base+"/"+job.ID+"/results"+q, "")
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rows += bytes.Count(b, []byte("\n")) - 1
		locator = resp.Header.Get("Sforce-Locator")
		if locator == "" || locator == "null" {
			break
		}
	}
	elapsed := time.Since(start).Seconds()
	return &Result{Figures: map[string]float64{"records": float64(rows), "records_per_second": float64(rows) / elapsed}}, nil
}

// scenarioNaive: what a simple integration does, one PATCH upsert per record, one at a time.
func scenarioNaive(o options, n int) (*Result, error) {
	e, err := newEnv(o, 0, 0)
	if err != nil {
		return nil, err
	}
	defer e.close()
	tok, err := dvToken(e.sb)
	if err != nil {
		return nil, err
	}
	hc := e.sb.HTTPClient()
	team := e.sb.Info.Dataverse.TeamID
	start := time.Now()
	for i := 0; i < n; i++ {
		id := sfid.MustGUID(fmt.Sprintf("003NAIVE%07d", i))
		body := fmt.Sprintf(`{"firstname":"Naive","lastname":"Row %d","emailaddress1":"row%d@example.com","ownerid@odata.bind":"/teams(%s)"}`, i, i, team)
		req, _ := http.NewRequest(http.MethodPatch, e.sb.Info.Dataverse.EnvironmentURL+"/api/data/v9.2/contacts("+id.String()+")", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return nil, fmt.Errorf("PATCH: HTTP %d", resp.StatusCode)
		}
	}
	elapsed := time.Since(start).Seconds()
	return &Result{Figures: map[string]float64{"records": float64(n), "records_per_second": float64(n) / elapsed}}, nil
}

// streamingAgent starts an agent over a sandbox of 5,000 contacts and 1,000 accounts and waits until it
// streams.
func streamingAgent(o options) (*env, *harness.Agent, error) {
	e, err := newEnv(o, 5000, 1000)
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
// agent measures it for every change.
func scenarioCDC(o options, rate int) (*Result, error) {
	e, a, err := streamingAgent(o)
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
		"latency_samples":             float64(lat.Samples),
		"dataverse_requests_per_1000": float64(s.DataverseCalls-before.DataverseCalls) / float64(changes) * 1000,
	}}, nil
}

// scenarioBacklog: the agent is stopped while n changes accumulate (at 1,000 a second, the highest CDC rate
// measured), then started; the time to drain and the rate.
func scenarioBacklog(o options, n int) (*Result, error) {
	e, a, err := streamingAgent(o)
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
// 10-second window, so service protection limits it: throughput as a fraction of the budget's maximum (60
// requests of 1,000 rows per 10 s), and 429 answers per 1,000 records.
func scenarioThrottled(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, n/5)
	if err != nil {
		return nil, err
	}
	defer e.close()
	const requests, window = 60, 10 * time.Second
	e.sb.Dataverse.SetLimits(dataverse.Limits{Requests: requests, Window: dataverse.Duration(window)})
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
