package chaos_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
)

// TestChaosThrottlingStormsAndServerErrors: during the initial load and then CDC under a steady stream,
// Dataverse throws 429 storms with a long Retry-After (5 s quick, 30 s long) and bursts of 500/503, and
// Salesforce answers bursts of 503 and of 429 with Retry-After, on REST and Bulk alike. Nothing is lost, and
// no Dataverse request is sent before a Retry-After expired.
func TestChaosThrottlingStormsAndServerErrors(t *testing.T) {
	e := newEnv(t, "throttling/429-storms+5xx-bursts", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	e.cfg.Tuning.BatchSize, e.cfg.Tuning.PageSize = 200, 1000
	sf, dv := e.sb.Salesforce, e.sb.Dataverse
	var faultCount int64
	burst := func(round int) {
		// Counts of the previous burst, before Set zeroes them.
		faultCount += dv.Faults().Counts().Errors + sf.Faults().Counts().Errors
		status := []int{503, 500}[round%2]
		dv.Faults().Set(faults.Config{ErrorRate: 0.3, ErrorStatus: status, Limit: 10, PathPrefix: "/api/data/", Seed: e.rng.Uint64() | 1})
		sfStatus, retryAfter := 503, time.Duration(0)
		if round%2 == 1 {
			sfStatus, retryAfter = 429, 3*time.Second
		}
		sf.Faults().Set(faults.Config{ErrorRate: 0.3, ErrorStatus: sfStatus, RetryAfter: retryAfter, Limit: 6,
			PathPrefix: "/services/data/", Seed: e.rng.Uint64() | 1})
	}
	storm := func() {
		// Every throttled request waits out its Retry-After before the next one goes: a storm of n lasts
		// n × Retry-After.
		if err := dv.SetStorm(dataverse.Storm{Count: profile.StormSize, RetryAfter: dataverse.Duration(profile.StormRetryAfter)}); err != nil {
			t.Fatal(err)
		}
	}
	storm()
	burst(0)
	r := e.startAgent("")
	waitFor(t, 5*time.Minute, "the initial load to finish through storms and bursts", func() bool { return streaming(r.a.Status()) })
	cs := e.startChanges(100*time.Millisecond, 100_000)
	for round := 1; round <= min(profile.Rounds, 4); round++ {
		e.iterations++
		storm()
		burst(round)
		time.Sleep(time.Duration(profile.StormSize)*profile.StormRetryAfter + 2*time.Second)
	}
	cs.stop()
	faultCount += dv.Faults().Counts().Errors + sf.Faults().Counts().Errors
	dv.Faults().Reset()
	sf.Faults().Reset()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	throttled := dv.Counters()["throttled"]
	e.faults = faultCount + throttled
	t.Logf("%d changes; Dataverse throttled %d requests, %d 5xx injected on both sides; agent saw %d throttles", cs.changes(), throttled, faultCount, s.Throttled)
	if throttled == 0 || faultCount == 0 {
		t.Errorf("faults did not fire: %d throttled, %d errors", throttled, faultCount)
	}
	if early := dv.EarlyRetries(); early != 0 {
		t.Errorf("%d Dataverse requests were sent before their Retry-After expired", early)
	}
	e.finish()
}

// TestChaosTokensExpireMidLoad: both sides' access tokens expire in the middle of the initial load and again
// under CDC (Salesforce revokes every session; the sandbox clock moves past Dataverse's token lifetime);
// the agent gets new tokens and loses nothing.
func TestChaosTokensExpireMidLoad(t *testing.T) {
	e := newEnv(t, "throttling/tokens-expired-mid-load", envOptions{contacts: profile.Contacts, accounts: profile.Accounts,
		dataverse: dataverse.Config{TokenLifetime: 10 * time.Minute}})
	e.cfg.Tuning.BatchSize, e.cfg.Tuning.PageSize, e.cfg.Tuning.WriteConcurrency = 100, 500, 1
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 50 * time.Millisecond, PathPrefix: "/api/data/"})
	expire := func() {
		e.iterations++
		e.sb.Salesforce.ExpireTokens()
		e.sb.Clock.Advance(11 * time.Minute)
	}
	r := e.startAgent("")
	// Twice during the load, at a third and two thirds.
	for _, frac := range []float64{1.0 / 3, 2.0 / 3} {
		waitFor(t, 3*time.Minute, "the load to progress", func() bool {
			done, total := loadProgress(r.a.Status())
			return total > 0 && float64(done) >= frac*float64(total) || streaming(r.a.Status())
		})
		if streaming(r.a.Status()) {
			t.Log("the load finished before the tokens could expire in it again")
			break
		}
		expire()
	}
	e.sb.Dataverse.Faults().Reset()
	cs := e.startChanges(100*time.Millisecond, 100_000)
	for round := 0; round < profile.Rounds; round++ {
		time.Sleep(2 * time.Second)
		expire()
	}
	cs.stop()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	unauthorized := e.sb.Dataverse.Counters()["unauthorized"]
	tokens := e.sb.Salesforce.Counters()["oauth.token"]
	e.faults = int64(e.iterations) * 2
	t.Logf("Dataverse refused %d requests with an expired token; Salesforce granted %d tokens", unauthorized, tokens)
	if unauthorized == 0 {
		t.Error("no Dataverse request met an expired token")
	}
	if tokens < 2 {
		t.Errorf("%d Salesforce token requests: expired sessions were not renewed", tokens)
	}
	e.finish()
}

// TestChaosAPIBudgetExhausted: Salesforce's daily API budget runs out in the middle of the initial load.
// The agent pauses (status says why) and backs off instead of spinning: while the budget is spent it makes
// at most a few calls per table per doubling of the time, then resumes when the budget is back and loses
// nothing.
func TestChaosAPIBudgetExhausted(t *testing.T) {
	e := newEnv(t, "throttling/api-budget-exhausted", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	e.cfg.Tuning.BatchSize, e.cfg.Tuning.PageSize, e.cfg.Tuning.WriteConcurrency = 100, 500, 1
	sf := e.sb.Salesforce
	// A slow Dataverse keeps the load going long enough for the budget to run out in its middle.
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 100 * time.Millisecond, PathPrefix: "/api/data/"})
	r := e.startAgent("")
	waitFor(t, 2*time.Minute, "the load to start", func() bool {
		done, total := loadProgress(r.a.Status())
		return total > 0 && done > 0
	})
	set := sf.Settings()
	usage := sf.LimitUsage().APIRequests
	set.APIRequestsMax = usage.Used + 3
	if err := sf.SetSettings(set); err != nil {
		t.Fatal(err)
	}
	hold := 12 * time.Second
	if profile.Long {
		hold = 2 * time.Minute
	}
	waitFor(t, time.Minute, "the budget to be spent", func() bool {
		u := sf.LimitUsage().APIRequests
		return u.Used >= u.Max
	})
	before := r.a.Status().SalesforceCalls
	start := time.Now()
	paused := false
	for time.Since(start) < hold {
		for _, ts := range r.a.Status().Tables {
			paused = paused || strings.HasPrefix(ts.Reason, "paused")
		}
		time.Sleep(100 * time.Millisecond)
	}
	calls := r.a.Status().SalesforceCalls - before
	// Per table, a retry of the step that failed (a few calls at most) after 1, 2, 4, ... s.
	bound := int64(2 * 4 * (2 + math.Log2(hold.Seconds())))
	t.Logf("%d Salesforce calls in %s while the budget was spent (bound %d)", calls, hold, bound)
	if calls > bound {
		t.Errorf("the agent made %d calls in %s against a spent budget (bound %d): it spins instead of pausing", calls, hold, bound)
	}
	if !paused {
		t.Error("status never said the table was paused")
	}
	set.APIRequestsMax = 1_000_000
	if err := sf.SetSettings(set); err != nil {
		t.Fatal(err)
	}
	e.sb.Dataverse.Faults().Reset()
	e.iterations, e.faults = 1, calls
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	e.finish()
}
