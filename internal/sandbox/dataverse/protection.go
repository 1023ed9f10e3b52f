package dataverse

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// Service protection (spec 7.1), as Microsoft publishes it for every user, application users included, per
// web server: over a 5-minute sliding window, 6,000 requests and 1,200 s of combined execution time; about 52
// concurrent requests. Once a window's budget is exhausted the FOLLOWING requests get 429 with Retry-After until
// enough of the window has slid by; concurrent requests beyond the limit fail at once. The sandbox is one web
// server (a trial environment's setup), so its limits are a user's whole budget. Every response carries
// x-ms-dop-hint, the recommended degree of parallelism.
//
// Execution time is modelled, not measured: each operation has a cost (Limits.Costs) so tests can exhaust the
// budget deterministically. The default cost of a bulk item (20 ms) is calibrated against published
// third-party measurements on real environments — about 200 records/s for one application user loading with
// bulk messages at a parallelism of 5, and a second user nearly doubling it (202 → 394 records/s) — which is
// what 1,200 s of execution per 300 s allows at 20 ms a record: 4 s of execution per second / 20 ms = 200
// records/s. A request arriving before its user's last Retry-After expired is counted as an early retry and,
// while still throttled, gets a longer Retry-After (spec 7.1 "longer waits"), as Dataverse lengthens the wait
// of a client that keeps sending.

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("300s"); a JSON number is
// taken as nanoseconds, like faults.Config's durations.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "5m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "300s"-style strings and nanosecond numbers.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string such as \"300s\" or nanoseconds, got %s", b)
	}
	*d = Duration(n)
	return nil
}

// Costs is the modelled execution time of each kind of operation, charged against the execution-time budget.
type Costs struct {
	Read     Duration `json:"read"`
	Metadata Duration `json:"metadata"`
	WhoAmI   Duration `json:"whoami"`
	// Write is one create, update, upsert or delete sent alone (or as a $batch operation): a bulk item's
	// work plus the overhead of a request of its own.
	Write      Duration `json:"write"`
	BulkBase   Duration `json:"bulk_base"`  // per bulk message
	BulkItem   Duration `json:"bulk_item"`  // per item of a bulk message
	BatchBase  Duration `json:"batch_base"` // per $batch, plus the cost of each operation in it
	Throttled  Duration `json:"throttled"`  // charged for nothing; throttled requests do not run
	Unexpected Duration `json:"unexpected"` // other requests
}

// DefaultBulkItemCost is the modelled execution time of one item of a bulk message (see the calibration
// above): one application user sustains about 1,200 s / 300 s / 20 ms = 200 records/s once its first
// window's budget is spent.
const DefaultBulkItemCost = 20 * time.Millisecond

// Limits configures service protection, the x-ms-dop-hint header and the token lifetime. Zero fields take
// the defaults of spec 7.1 (6,000 requests and 20 minutes per 300 s, 52 concurrent).
type Limits struct {
	Requests      int      `json:"requests"`       // per window and user
	ExecutionTime Duration `json:"execution_time"` // per window and user
	Concurrency   int      `json:"concurrency"`    // concurrent requests per user
	Window        Duration `json:"window"`
	// DOPHint is the x-ms-dop-hint value (recommended degree of parallelism).
	DOPHint int `json:"dop_hint"`
	// TokenLifetime is the lifetime of access tokens issued from now on.
	TokenLifetime Duration `json:"token_lifetime"`
	// ConcurrencyRetryAfter is the Retry-After of a concurrency 429 (1 s by default).
	ConcurrencyRetryAfter Duration `json:"concurrency_retry_after"`
	// EarlyRetryPenalty lengthens the Retry-After given to a request that arrived early, per consecutive
	// early arrival (1 s by default).
	EarlyRetryPenalty Duration `json:"early_retry_penalty"`
	Costs             Costs    `json:"costs"`
}

func (l Limits) withDefaults() Limits {
	def := func(d *Duration, v time.Duration) {
		if *d <= 0 {
			*d = Duration(v)
		}
	}
	if l.Requests <= 0 {
		l.Requests = 6000
	}
	def(&l.ExecutionTime, 20*time.Minute)
	if l.Concurrency <= 0 {
		l.Concurrency = 52
	}
	def(&l.Window, 300*time.Second)
	if l.DOPHint <= 0 {
		l.DOPHint = 8
	}
	def(&l.TokenLifetime, 3599*time.Second)
	def(&l.ConcurrencyRetryAfter, time.Second)
	def(&l.EarlyRetryPenalty, time.Second)
	c := &l.Costs
	def(&c.Read, 10*time.Millisecond)
	def(&c.Metadata, 20*time.Millisecond)
	def(&c.WhoAmI, 2*time.Millisecond)
	def(&c.Write, DefaultBulkItemCost+5*time.Millisecond)
	def(&c.BulkBase, 20*time.Millisecond)
	def(&c.BulkItem, DefaultBulkItemCost)
	def(&c.BatchBase, 5*time.Millisecond)
	def(&c.Unexpected, 5*time.Millisecond)
	return l
}

// Storm makes the API answer 429 regardless of the budgets: the next Count requests, or every request until
// Duration has passed (from when the storm is set), with Retry-After and an error code of spec 7.1.
type Storm struct {
	Count      int      `json:"count,omitempty"`
	Duration   Duration `json:"duration,omitempty"`
	RetryAfter Duration `json:"retry_after,omitempty"` // 5 s when zero
	// Code is 0x80072322 (requests, default), 0x80072321 (execution time) or 0x80072326 (concurrency).
	Code string `json:"code,omitempty"`
}

// earlyGrace is how long after a 429 a request may still arrive without counting as an early retry: the
// time a request sent just before the client received the 429 needs to reach the server.
const earlyGrace = 250 * time.Millisecond

type windowEvent struct {
	at   int64 // unix nanoseconds
	cost time.Duration
}

type userWindow struct {
	events       []windowEvent // oldest first, from head
	head         int
	cost         time.Duration // sum of events[head:]
	inflight     int
	blockedUntil time.Time
	throttledAt  time.Time // when the last 429 was sent
	earlyStreak  int
}

func (u *userWindow) prune(cutoff int64) {
	for u.head < len(u.events) && u.events[u.head].at <= cutoff {
		u.cost -= u.events[u.head].cost
		u.head++
	}
	if u.head > 1024 && u.head*2 > len(u.events) {
		u.events = append(u.events[:0], u.events[u.head:]...)
		u.head = 0
	}
}

func (u *userWindow) count() int { return len(u.events) - u.head }

type protector struct {
	clock *clock.Clock
	mu    sync.Mutex
	lim   Limits
	users map[uint16]*userWindow
	storm Storm
	until time.Time // storm end when Duration is set
}

func newProtector(c *clock.Clock, l Limits) *protector {
	return &protector{clock: c, lim: l, users: map[uint16]*userWindow{}}
}

func (p *protector) reset(l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lim = l
	p.users = map[uint16]*userWindow{}
	p.storm = Storm{}
	p.until = time.Time{}
}

func (p *protector) currentLimits() Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lim
}

func (p *protector) setLimits(l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lim = l.withDefaults()
}

func (p *protector) setStorm(s Storm) error {
	switch s.Code {
	case "":
		s.Code = codeRequestLimit
	case codeRequestLimit, codeTimeLimit, codeConcurrencyLimit:
	default:
		return fmt.Errorf("storm code %q must be %s, %s or %s", s.Code, codeRequestLimit, codeTimeLimit, codeConcurrencyLimit)
	}
	if s.Count < 0 || s.Duration < 0 || s.RetryAfter < 0 {
		return fmt.Errorf("storm count, duration and retry_after must not be negative")
	}
	if s.RetryAfter == 0 {
		s.RetryAfter = Duration(5 * time.Second)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.storm = s
	p.until = time.Time{}
	if s.Duration > 0 {
		p.until = p.clock.Now().Add(time.Duration(s.Duration))
	}
	return nil
}

func (p *protector) window(user uint16) *userWindow {
	u := p.users[user]
	if u == nil {
		u = &userWindow{}
		p.users[user] = u
	}
	return u
}

func throttleError(code string, l Limits, retry time.Duration) *apiError {
	e := &apiError{status: http.StatusTooManyRequests, code: code, retryAfter: retry}
	switch code {
	case codeRequestLimit:
		e.message = fmt.Sprintf("Number of requests exceeded the limit of %d over time window of %d seconds.", l.Requests, int64(time.Duration(l.Window)/time.Second))
	case codeTimeLimit:
		e.message = fmt.Sprintf("Combined execution time of incoming requests exceeded limit of %s milliseconds over time window of %d seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
			groupThousands(strconv.FormatInt(time.Duration(l.ExecutionTime).Milliseconds(), 10)), int64(time.Duration(l.Window)/time.Second))
	default:
		e.message = fmt.Sprintf("Number of concurrent requests exceeded the limit of %d.", l.Concurrency)
	}
	return e
}

// ceilSeconds rounds up to whole seconds, at least one: Retry-After is sent in whole seconds.
func ceilSeconds(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return s * time.Second
}

// admit decides whether user may run a request now. On success the caller must call done with the request's
// cost. early reports that the request arrived before the user's last Retry-After expired.
func (p *protector) admit(user uint16) (early bool, err *apiError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	u := p.window(user)
	l := p.lim
	// Requests already on the wire when a 429 was sent could not have known about it: only a request arriving
	// later than earlyGrace after the 429 counts as an early retry (and lengthens the wait). Earlier ones are
	// simply throttled too.
	if now.Before(u.blockedUntil) && now.Sub(u.throttledAt) > earlyGrace {
		early = true
		u.earlyStreak++
	}
	throttle := func(code string, retry time.Duration) *apiError {
		if early {
			retry += time.Duration(u.earlyStreak) * time.Duration(l.EarlyRetryPenalty)
		}
		retry = ceilSeconds(retry)
		u.blockedUntil, u.throttledAt = now.Add(retry), now
		return throttleError(code, l, retry)
	}
	if p.storm.Count > 0 || (!p.until.IsZero() && now.Before(p.until)) {
		if p.storm.Count > 0 {
			p.storm.Count--
		}
		return early, throttle(p.storm.Code, time.Duration(p.storm.RetryAfter))
	}
	u.prune(now.Add(-time.Duration(l.Window)).UnixNano())
	if u.inflight >= l.Concurrency {
		return early, throttle(codeConcurrencyLimit, time.Duration(l.ConcurrencyRetryAfter))
	}
	if u.count() >= l.Requests {
		// The window frees a request when the oldest counted one slides out.
		idx := u.head + u.count() - l.Requests
		return early, throttle(codeRequestLimit, time.Unix(0, u.events[idx].at).Add(time.Duration(l.Window)).Sub(now))
	}
	if u.cost >= time.Duration(l.ExecutionTime) {
		over := u.cost - time.Duration(l.ExecutionTime)
		var freed time.Duration
		at := now
		for i := u.head; i < len(u.events); i++ {
			freed += u.events[i].cost
			if freed > over {
				at = time.Unix(0, u.events[i].at).Add(time.Duration(l.Window))
				break
			}
		}
		return early, throttle(codeTimeLimit, at.Sub(now))
	}
	u.inflight++
	u.earlyStreak = 0
	return early, nil
}

// done records an admitted request's cost and frees its concurrency slot; it returns the remaining
// request count and execution time for the x-ms-ratelimit-* headers.
func (p *protector) done(user uint16, cost time.Duration) (remainingRequests int, remainingTime time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	u := p.window(user)
	u.inflight--
	u.events = append(u.events, windowEvent{at: now.UnixNano(), cost: cost})
	u.cost += cost
	u.prune(now.Add(-time.Duration(p.lim.Window)).UnixNano())
	return max(0, p.lim.Requests-u.count()), max(0, time.Duration(p.lim.ExecutionTime)-u.cost)
}

// remaining reports the budgets left to user without recording anything (for headers on 429 answers).
func (p *protector) remaining(user uint16) (int, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.window(user)
	u.prune(p.clock.Now().Add(-time.Duration(p.lim.Window)).UnixNano())
	return max(0, p.lim.Requests-u.count()), max(0, time.Duration(p.lim.ExecutionTime)-u.cost)
}

// formatRemainingTime renders milliseconds as Dataverse does in x-ms-ratelimit-time-remaining-xrm-requests
// ("1,199,955.00").
func formatRemainingTime(d time.Duration) string {
	ms := d.Milliseconds()
	return groupThousands(strconv.FormatInt(ms, 10)) + ".00"
}
