package agent

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// tableStats is what a table reports about itself: its counters, its phase, its health (health.go) and its
// change latencies. The pipeline's parts tell it what they did; status reads it. The counters are atomics;
// mu guards the rest.
//
// The counters add up: received = written + dead-lettered + skipped once everything received is settled.
// Work that is abandoned to be done again from the stored position is taken back out (rollback), so a change
// is never counted twice.
type tableStats struct {
	log *slog.Logger

	received, written, deadLettered, skipped atomic.Int64
	// deadLetterEvents counts the records put in the dead-letter store. It only grows: neither a successful
	// retry nor a rollback takes it back (the refusal happened), so it serves a true Prometheus counter.
	deadLetterEvents atomic.Int64

	mu          sync.Mutex
	phase       string
	reason      string
	lastEventAt time.Time
	// oldestPending is the commit time of the oldest received change not yet written (zero when none).
	oldestPending time.Time
	lastErr       string
	lastErrAt     time.Time
	// failures are the permanent errors the table is stuck on, by side (health.go).
	failures map[string]tableFailure

	// latencies is a ring of the last change latencies (commit → acknowledged), for status.
	latencies []time.Duration
	latNext   int
	// latHist counts every change latency since the agent started, for the control plane's histogram.
	latHist api.Histogram
	// loadRate measures the running load's rate, for its ETA.
	loadRate loadMeter
}

func (s *tableStats) setPhase(phase, reason string) {
	s.mu.Lock()
	s.phase, s.reason = phase, reason
	s.mu.Unlock()
	s.log.Info("table phase", "phase", phase, "reason", reason)
}

// streamingQuietly reports whether the table streams with nothing else going on (no catch-up, no pause).
func (s *tableStats) streamingQuietly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase == PhaseStreaming && s.reason == ""
}

// recordError keeps err as the table's last error.
func (s *tableStats) recordError(err error) {
	s.mu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), time.Now()
	s.mu.Unlock()
}

// counts is a snapshot of a table's counters.
type counts struct{ received, written, deadLettered, skipped int64 }

func (s *tableStats) counts() counts {
	return counts{s.received.Load(), s.written.Load(), s.deadLettered.Load(), s.skipped.Load()}
}

// rollback puts the counters back to a snapshot when the work counted since is abandoned, to be done (and
// counted) again from the stored position: counters count work whose result stands, so they add up.
func (s *tableStats) rollback(c counts) {
	s.received.Store(c.received)
	s.written.Store(c.written)
	s.deadLettered.Store(c.deadLettered)
	s.skipped.Store(c.skipped)
}

// tally counts what a write did.
func (s *tableStats) tally(o writer.Outcome) {
	s.written.Add(o.Written)
	s.deadLettered.Add(o.Refused)
	s.skipped.Add(o.Skipped)
}

// windowOpened notes the commit time of the first change of a window not yet written (the lag's start).
func (s *tableStats) windowOpened(firstCommit time.Time) {
	s.mu.Lock()
	s.oldestPending = firstCommit
	s.mu.Unlock()
}

// windowWritten notes that a window's changes, committed at the given times, are written now.
func (s *tableStats) windowWritten(commits []time.Time, now time.Time) {
	var last time.Time
	for _, c := range commits {
		if c.After(last) {
			last = c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastEventAt, s.oldestPending = last, time.Time{}
	for _, c := range commits {
		d := now.Sub(c)
		s.latHist.Observe(max(0, d.Seconds()))
		if len(s.latencies) < latencySamples {
			s.latencies = append(s.latencies, d)
			continue
		}
		s.latencies[s.latNext] = d
		s.latNext = (s.latNext + 1) % latencySamples
	}
}

const latencySamples = 1 << 16

// fill sets the status fields the stats know: phase (failed while a permanent error holds), counters,
// errors, lag, latency, and the running load's rate and ETA (from ts.LoadDone and ts.LoadTotal, set by the
// caller).
func (s *tableStats) fill(ts *TableStatus) {
	ts.Received, ts.Written, ts.DeadLettered, ts.Skipped = s.received.Load(), s.written.Load(), s.deadLettered.Load(), s.skipped.Load()
	ts.DeadLetterEvents = s.deadLetterEvents.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	ts.Phase, ts.Reason = s.phase, s.reason
	ts.LastEventAt, ts.LastError, ts.LastErrorAt = s.lastEventAt, s.lastErr, s.lastErrAt
	ts.Latency = summarize(s.latencies)
	if s.latHist.Count > 0 {
		h := s.latHist
		h.Counts = slices.Clone(h.Counts)
		ts.LatencyHistogram = &h
	}
	loading := s.phase == PhaseInitialLoad || s.phase == PhaseResync
	ts.LoadRate = s.loadRate.observe(time.Now(), ts.LoadDone, loading)
	ts.LoadETASeconds = loadETA(ts.LoadDone, ts.LoadTotal, ts.LoadRate)
	if len(s.failures) > 0 {
		ts.Phase, ts.Reason = PhaseFailed, s.failureReason()
	}
	if !s.oldestPending.IsZero() {
		ts.LagSeconds = max(0, time.Since(s.oldestPending).Seconds())
	}
}

func summarize(samples []time.Duration) *Latency {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))].Seconds() }
	return &Latency{Samples: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: s[len(s)-1].Seconds()}
}

// noteError records a failed attempt: every error is the table's last error; a permanent one also fails
// the table (its side) until that side works again.
func (s *tableStats) noteError(err error) {
	s.recordError(err)
	reason, side, permanent := permanentError(err)
	if !permanent {
		return
	}
	s.mu.Lock()
	if s.failures == nil {
		s.failures = map[string]tableFailure{}
	}
	f, had := s.failures[side]
	if !had || f.reason != reason {
		since := time.Now().UTC()
		if had {
			since = f.since
		}
		s.failures[side] = tableFailure{reason: reason, since: since}
	}
	s.mu.Unlock()
	if !had {
		s.log.Error("table failed on an error that needs a person; retrying in the background", "side", side, "reason", reason)
	}
}

// worked clears a side's failure: it just succeeded.
func (s *tableStats) worked(side string) {
	s.mu.Lock()
	f, had := s.failures[side]
	delete(s.failures, side)
	s.mu.Unlock()
	if had {
		s.log.Info("table recovered", "side", side, "failed_for", time.Since(f.since).Round(time.Second).String())
	}
}

// failureReason is the table's current failure, "" when none. Caller holds mu.
func (s *tableStats) failureReason() string {
	var out []string
	for _, side := range slices.Sorted(maps.Keys(s.failures)) {
		f := s.failures[side]
		out = append(out, f.reason+" (since "+f.since.Format(time.RFC3339)+"; retrying)")
	}
	return strings.Join(out, "; ")
}
