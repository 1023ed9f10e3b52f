package dataverse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Several application users. Dataverse keeps its service-protection limits per user (requests, execution
// time and concurrency per 5-minute window), application users included, so a client that signs in as
// several of them has several budgets. The client keeps, per user, its token, its throttle gate (a 429 holds
// that user's requests until its Retry-After has passed), its concurrency (adapted to that user's
// x-ms-dop-hint and throttling) and the budget the service says it has left (x-ms-ratelimit-* headers), and
// sends each request as the user with the most budget left among those free to send now: a throttled user's
// share of the load moves to the others until its wait is over.

// Credentials are one application user's client id and secret (a value: the caller resolves references).
type Credentials struct {
	ClientID     string
	ClientSecret string
}

// appUser is one application user the client signs in as. Its gate and concurrency fields are guarded by
// the client's users.mu.
type appUser struct {
	index int
	cred  Credentials

	tokMu  sync.Mutex
	tokSrc oauth2.TokenSource
	tokCtx context.Context

	gatedUntil time.Time // no request is sent as this user before then (Retry-After + margin)
	limit      int       // concurrent requests allowed now
	max        int       // the ceiling: MaxConcurrency, then the x-ms-dop-hint
	inFlight   int
	successes  int
	// remaining is the execution time the service last said this user has left in its window (-1: not
	// known yet); remainingReq the request count.
	remaining    time.Duration
	remainingReq int

	requests, throttled int64
}

// users is the client's set of application users and the scheduler that picks one per request.
type users struct {
	mu   sync.Mutex
	all  []*appUser
	wake chan struct{} // closed (and replaced) whenever a slot frees or a limit grows
}

func newUsers(creds []Credentials, maxConcurrency int) *users {
	us := &users{wake: make(chan struct{})}
	for i, c := range creds {
		us.all = append(us.all, &appUser{index: i, cred: c, limit: maxConcurrency, max: maxConcurrency, remaining: -1, remainingReq: -1})
	}
	return us
}

// broadcast wakes every waiter of acquire. Caller holds mu.
func (us *users) broadcast() {
	close(us.wake)
	us.wake = make(chan struct{})
}

// acquire waits until some user may send (its gate open, a concurrency slot free), takes the slot and
// returns the user: the one with the most execution time left in its window, then the most requests left,
// then the fewest requests in flight, then the lowest index.
func (us *users) acquire(ctx context.Context) (*appUser, error) {
	for {
		us.mu.Lock()
		now := time.Now()
		var best *appUser
		var reopen time.Time
		for _, u := range us.all {
			if u.gatedUntil.After(now) {
				if reopen.IsZero() || u.gatedUntil.Before(reopen) {
					reopen = u.gatedUntil
				}
				continue
			}
			if u.inFlight >= u.limit {
				continue
			}
			if best == nil || u.better(best) {
				best = u
			}
		}
		if best != nil {
			best.inFlight++
			us.mu.Unlock()
			return best, nil
		}
		wake := us.wake
		us.mu.Unlock()
		var timer *time.Timer
		var reopened <-chan time.Time
		if !reopen.IsZero() {
			timer = time.NewTimer(time.Until(reopen))
			reopened = timer.C
		}
		select {
		case <-wake:
		case <-reopened:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// better reports whether u should take a request before o.
func (u *appUser) better(o *appUser) bool {
	ur, or := u.remaining, o.remaining
	// Unknown (no answer yet) counts as the most: nothing has been charged to that user that we know of.
	if ur < 0 {
		ur = math.MaxInt64
	}
	if or < 0 {
		or = math.MaxInt64
	}
	if ur != or {
		return ur > or
	}
	if u.remainingReq != o.remainingReq && u.remainingReq >= 0 && o.remainingReq >= 0 {
		return u.remainingReq > o.remainingReq
	}
	if u.inFlight != o.inFlight {
		return u.inFlight < o.inFlight
	}
	return u.index < o.index
}

// release gives back u's slot and records what the answer said: the budget left, the x-ms-dop-hint, and
// a success (which may grow u's concurrency back) or a throttle (which halves it and closes u's gate).
func (us *users) release(u *appUser, h http.Header, outcome outcome, wait time.Duration) {
	us.mu.Lock()
	defer us.mu.Unlock()
	u.inFlight--
	if h != nil {
		if v := h.Get("x-ms-ratelimit-time-remaining-xrm-requests"); v != "" {
			if ms, err := strconv.ParseFloat(strings.ReplaceAll(v, ",", ""), 64); err == nil {
				u.remaining = time.Duration(ms * float64(time.Millisecond))
			}
		}
		if n, err := strconv.Atoi(h.Get("x-ms-ratelimit-burst-remaining-xrm-requests")); err == nil {
			u.remainingReq = n
		}
		if hint, err := strconv.Atoi(h.Get("x-ms-dop-hint")); err == nil && hint > 0 {
			// The hint is per user, and never above 52 (the per-user maximum).
			u.max = min(hint, 52)
			u.limit = min(u.limit, u.max)
		}
	}
	switch outcome {
	case outcomeSuccess:
		u.successes++
		if u.successes >= u.limit*4 && u.limit < u.max {
			u.limit++
			u.successes = 0
		}
	case outcomeThrottled:
		u.throttled++
		u.limit = max(1, u.limit/2)
		u.successes = 0
		if until := time.Now().Add(wait + retryMargin); until.After(u.gatedUntil) {
			u.gatedUntil = until
		}
	}
	us.broadcast()
}

// outcome is what an answer means for its user's scheduling.
type outcome int

const (
	outcomeOther outcome = iota
	outcomeSuccess
	outcomeThrottled
)

// count counts a request sent as u.
func (us *users) count(u *appUser) {
	us.mu.Lock()
	u.requests++
	us.mu.Unlock()
}

// concurrency is the sum of every user's current limit.
func (us *users) concurrency() int {
	us.mu.Lock()
	defer us.mu.Unlock()
	n := 0
	for _, u := range us.all {
		n += u.limit
	}
	return n
}

// UserStats is one application user's share of a client's requests.
type UserStats struct {
	ClientID string
	// Requests counts the HTTP requests sent as this user; Throttled its 429 answers.
	Requests, Throttled int64
	// Concurrency is its current limit on concurrent requests; InFlight what it has in flight now.
	Concurrency, InFlight int
	// RemainingTime and RemainingRequests are what the service last said this user has left of its
	// execution-time and request budgets in the current window; negative before the first answer.
	RemainingTime     time.Duration
	RemainingRequests int
	// ThrottledFor is how long its current Retry-After still holds it (0 when free to send).
	ThrottledFor time.Duration
}

// Users returns each application user's statistics, the configured user first.
func (c *Client) Users() []UserStats {
	c.users.mu.Lock()
	defer c.users.mu.Unlock()
	out := make([]UserStats, 0, len(c.users.all))
	for _, u := range c.users.all {
		out = append(out, UserStats{ClientID: u.cred.ClientID, Requests: u.requests, Throttled: u.throttled,
			Concurrency: u.limit, InFlight: u.inFlight, RemainingTime: u.remaining, RemainingRequests: u.remainingReq,
			ThrottledFor: max(0, time.Until(u.gatedUntil))})
	}
	return out
}

// resetTokenSource starts a new token source for u (after a 401: the token was revoked or expired early).
func (c *Client) resetTokenSource(u *appUser) {
	u.tokMu.Lock()
	defer u.tokMu.Unlock()
	cc := &clientcredentials.Config{
		ClientID:     u.cred.ClientID,
		ClientSecret: u.cred.ClientSecret,
		TokenURL:     c.cfg.AuthorityURL + "/" + url.PathEscape(c.cfg.TenantID) + "/oauth2/v2.0/token",
		Scopes:       []string{c.cfg.EnvironmentURL + "/.default"},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	// The token source outlives any one request, so it gets its own context carrying the HTTP client.
	u.tokCtx = context.WithValue(context.Background(), oauth2.HTTPClient, c.http)
	u.tokSrc = oauth2.ReuseTokenSourceWithExpiry(nil, cc.TokenSource(u.tokCtx), time.Minute)
}

// token returns a valid access token of u (refreshed a minute before expiry).
func (c *Client) token(u *appUser) (string, error) {
	u.tokMu.Lock()
	src := u.tokSrc
	u.tokMu.Unlock()
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return "", &AuthError{ClientID: u.cred.ClientID, Status: statusOf(re), Code: re.ErrorCode, Description: re.ErrorDescription}
		}
		return "", fmt.Errorf("requesting a dataverse token for client %s: %w", u.cred.ClientID, err)
	}
	return tok.AccessToken, nil
}

// UserStatus is Users in the form an agent reports it (api.Status.ApplicationUsers).
func (c *Client) UserStatus() []api.ApplicationUserStatus {
	users := c.Users()
	out := make([]api.ApplicationUserStatus, 0, len(users))
	for _, u := range users {
		st := api.ApplicationUserStatus{ClientID: u.ClientID, Requests: u.Requests, Throttled: u.Throttled,
			Concurrency: u.Concurrency, InFlight: u.InFlight, ThrottledForSeconds: u.ThrottledFor.Seconds()}
		if u.RemainingTime >= 0 {
			v := u.RemainingTime.Seconds()
			st.RemainingExecutionSeconds = &v
		}
		if u.RemainingRequests >= 0 {
			v := u.RemainingRequests
			st.RemainingRequests = &v
		}
		out = append(out, st)
	}
	return out
}
