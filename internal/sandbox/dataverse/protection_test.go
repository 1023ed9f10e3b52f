package dataverse

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func retryAfter(t *testing.T, r result) time.Duration {
	t.Helper()
	s, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || s < 1 {
		t.Fatalf("Retry-After %q on %d %s", r.header.Get("Retry-After"), r.status, r.raw)
	}
	return time.Duration(s) * time.Second
}

func expect429(t *testing.T, r result, code string) time.Duration {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != code {
		t.Fatalf("got %d %s, want 429 %s", r.status, r.raw, code)
	}
	if r.header.Get("x-ms-dop-hint") == "" {
		t.Error("429 without x-ms-dop-hint")
	}
	return retryAfter(t, r)
}

// Once the per-user request budget of the window is spent, the following
// requests get 429 / 0x80072322 with Retry-After until the window slides; x-ms-ratelimit headers count down.
func TestRequestBudgetThrottlesWithRetryAfterUntilTheWindowSlides(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Limits = Limits{Requests: 5, Window: Duration(60 * time.Second)} })
	env.login()
	for i := 0; i < 5; i++ {
		r := env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
		if got := r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests"); got != strconv.Itoa(4-i) {
			t.Errorf("request %d: burst remaining %q, want %d", i, got, 4-i)
		}
		env.clock.Advance(time.Second)
	}
	r := env.call(http.MethodGet, "WhoAmI", nil)
	wait := expect429(t, r, codeRequestLimit)
	if got := r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests"); got != "0" {
		t.Errorf("burst remaining on the 429 = %q, want 0", got)
	}
	if r.errorMessage(t) != "Number of requests exceeded the limit of 5 over time window of 60 seconds." {
		t.Errorf("message %q", r.errorMessage(t))
	}
	if wait != 55*time.Second { // the first request (at 0 s) leaves the 60 s window at 60 s; now is 5 s
		t.Errorf("Retry-After = %v, want 55s", wait)
	}
	env.clock.Advance(wait)
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
	c := env.emu.Counters()
	if c["throttled"] != 1 || c["early_retries"] != 0 {
		t.Errorf("counters = %v", c)
	}
}

// Spec 7.1: modelled execution time is budgeted too (0x80072321); bulk items cost more than single writes.
func TestExecutionTimeBudgetThrottles(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.Limits = Limits{ExecutionTime: Duration(10 * time.Second), Costs: Costs{BulkItem: Duration(time.Second), BulkBase: Duration(time.Millisecond)}}
	})
	env.login()
	env.mustStatus(env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(10, 0, env.emu.TeamID())), http.StatusNoContent)
	r := env.call(http.MethodGet, "WhoAmI", nil)
	expect429(t, r, codeTimeLimit)
	if got := r.errorMessage(t); got != "Combined execution time of incoming requests exceeded limit of 10,000 milliseconds over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later." {
		t.Errorf("message %q", got)
	}
	if retryAfter(t, r) != 300*time.Second {
		t.Errorf("Retry-After = %v, want 300s", retryAfter(t, r))
	}
}

// Spec 7.1: going over the concurrency limit fails at once with 0x80072326.
func TestConcurrencyLimitFailsAtOnce(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Limits = Limits{Concurrency: 2} })
	env.login()
	// Two requests of the application user are in flight.
	for i := 0; i < 2; i++ {
		if _, err := env.emu.prot.admit(userApp); err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
	}
	r := env.call(http.MethodGet, "WhoAmI", nil)
	if wait := expect429(t, r, codeConcurrencyLimit); wait != time.Second {
		t.Errorf("Retry-After = %v, want 1s", wait)
	}
	if r.errorMessage(t) != "Number of concurrent requests exceeded the limit of 2." {
		t.Errorf("message %q", r.errorMessage(t))
	}
	env.emu.prot.done(userApp, 0)
	env.clock.Advance(time.Second)
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
}

// A 429 storm answers the next N requests (or every request for D) with Retry-After R;
// requests that arrive before their Retry-After expired are counted as early retries and get longer waits.
func TestStormsAndEarlyRetries(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	var s Storm
	if status := env.adminCall(http.MethodPut, "/throttle", Storm{Count: 2, RetryAfter: Duration(3 * time.Second)}, &s); status != http.StatusOK {
		t.Fatalf("PUT /throttle: %d", status)
	}
	if wait := expect429(t, env.call(http.MethodGet, "WhoAmI", nil), codeRequestLimit); wait != 3*time.Second {
		t.Fatalf("Retry-After = %v, want 3s", wait)
	}
	env.clock.Advance(3 * time.Second) // a client that waits exactly Retry-After is not early
	expect429(t, env.call(http.MethodGet, "WhoAmI", nil), codeRequestLimit)
	if n := env.emu.EarlyRetries(); n != 0 {
		t.Fatalf("early retries after an honoured Retry-After = %d", n)
	}
	env.clock.Advance(time.Second) // too soon: 1 s of 3 s
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
	if n := env.emu.EarlyRetries(); n != 1 {
		t.Fatalf("early retries = %d, want 1", n)
	}

	// A storm by duration, with a code of choice; early arrivals get longer waits.
	env.clock.Advance(3 * time.Second) // past the last Retry-After, so the next request is not early
	if err := env.emu.SetStorm(Storm{Duration: Duration(10 * time.Second), RetryAfter: Duration(2 * time.Second), Code: codeTimeLimit}); err != nil {
		t.Fatal(err)
	}
	first := expect429(t, env.call(http.MethodGet, "WhoAmI", nil), codeTimeLimit)
	// A request arriving within earlyGrace of the 429 was already on the wire: throttled, but not early.
	if again := expect429(t, env.call(http.MethodGet, "WhoAmI", nil), codeTimeLimit); again != first {
		t.Errorf("a request in flight during the 429 got Retry-After %v, want %v", again, first)
	}
	env.clock.Advance(earlyGrace + 100*time.Millisecond)
	second := expect429(t, env.call(http.MethodGet, "WhoAmI", nil), codeTimeLimit)
	if second <= first {
		t.Errorf("an early retry got Retry-After %v, not longer than %v", second, first)
	}
	env.clock.Advance(10 * time.Second)
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
	if err := env.emu.SetStorm(Storm{Code: "0x1"}); err == nil {
		t.Error("SetStorm accepted an unknown code")
	}
	var counters map[string]int64
	env.adminCall(http.MethodGet, "/counters", nil, &counters)
	if counters["throttled"] != 5 || counters["early_retries"] != 2 {
		t.Errorf("counters = %v", counters)
	}
}

// The protector's arithmetic, without HTTP: the window frees requests as they age out.
func TestProtectorWindowSlides(t *testing.T) {
	env := newTestEnv(t)
	p := newProtector(env.clock, Limits{Requests: 3, Window: Duration(10 * time.Second)}.withDefaults())
	for i := 0; i < 3; i++ {
		if _, err := p.admit(1); err != nil {
			t.Fatal(err)
		}
		p.done(1, time.Millisecond)
		env.clock.Advance(2 * time.Second)
	}
	_, err := p.admit(1)
	if err == nil || err.retryAfter != 4*time.Second { // first at 0 s leaves at 10 s; now is 6 s
		t.Fatalf("admit at 6 s: %v", err)
	}
	if _, err := p.admit(2); err != nil {
		t.Errorf("another user shares the budget: %v", err)
	}
	env.clock.Advance(4 * time.Second)
	if _, err := p.admit(1); err != nil {
		t.Errorf("admit at 10 s: %v", err)
	}
}
