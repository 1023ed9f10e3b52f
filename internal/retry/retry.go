// Package retry owns how crmsync waits before trying again: one exponential backoff Policy with jitter, the
// server's Retry-After, and a sleep that ends with its context. Every client (Salesforce, Dataverse, the
// control plane's) and every retry loop (the agent's tables, the lease, the supervisor, backups) uses it.
// It imports nothing of the project's, so any floor may.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is an exponential backoff: the delay before retry n (n from 0) is Base·2ⁿ, capped at Max (no cap
// when 0), and Jitter of it (a fraction from 0 to 1) is drawn at random below: the delay is uniform in
// [d·(1−Jitter), d], so clients that failed together do not retry together.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay returns the wait before retry n.
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for i := 0; i < n && d > 0 && (p.Max <= 0 || d < p.Max) && d <= time.Duration(1<<62); i++ {
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	if j := min(p.Jitter, 1); j > 0 && d > 0 {
		d -= time.Duration(rand.Int64N(int64(float64(d)*j) + 1))
	}
	return d
}

// Wait is Delay, but never shorter than floor: what the server asked for (After).
func (p Policy) Wait(n int, floor time.Duration) time.Duration { return max(p.Delay(n), floor) }

// Sleep waits for d or until ctx ends, and then returns ctx's error. It returns at once when d is not
// positive (ctx's error if it has ended).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After reads a Retry-After header: a number of seconds (Dataverse sends fractions) or an HTTP date. It
// returns 0 when the header is absent, unreadable or in the past.
func After(h http.Header, now time.Time) time.Duration {
	s := strings.TrimSpace(h.Get("Retry-After"))
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 || n > float64(1<<33) {
			return 0
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(s); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
