package agent

import (
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// loadMeter measures a table's load rate from the progress its status reports see: records per second over
// the last api.LoadRateWindow, Dataverse's service-protection window, so the rate of a budget-bound load
// counts the waits the budget imposes, not only the bursts between them. A resumed load is measured from where
// it resumed (the rows loaded before do not inflate it); a new load starts a new measure.
type loadMeter struct {
	mu      sync.Mutex
	samples []loadSample // oldest first; the first is at or before the window's start once it is full
}

type loadSample struct {
	at   time.Time
	done int64
}

// minLoadRateSpan is how long a load must have been observed before its rate is reported: a rate over a few
// hundred milliseconds is noise.
const minLoadRateSpan = 3 * time.Second

// observe records that done records of the running load were written at now (loading false: no load runs)
// and returns the rate in records per second, 0 while unknown.
func (m *loadMeter) observe(now time.Time, done int64, loading bool) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !loading {
		m.samples = m.samples[:0]
		return 0
	}
	if n := len(m.samples); n > 0 && done < m.samples[n-1].done {
		m.samples = m.samples[:0] // the load started over
	}
	if n := len(m.samples); n == 0 || now.Sub(m.samples[n-1].at) >= time.Second {
		m.samples = append(m.samples, loadSample{now, done})
	}
	// Keep one sample at or before the window's start, so the rate spans the whole window.
	cut := now.Add(-api.LoadRateWindow)
	drop := 0
	for drop+1 < len(m.samples) && !m.samples[drop+1].at.After(cut) {
		drop++
	}
	if drop > 0 {
		m.samples = append(m.samples[:0], m.samples[drop:]...)
	}
	first := m.samples[0]
	span := now.Sub(first.at)
	if span < minLoadRateSpan {
		return 0
	}
	return float64(done-first.done) / span.Seconds()
}

// loadETA is the time a load of total records with done written has left at rate (0 when unknown).
func loadETA(done, total int64, rate float64) float64 {
	if rate <= 0 || total <= done {
		return 0
	}
	return float64(total-done) / rate
}
