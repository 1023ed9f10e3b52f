package agent

import (
	"math"
	"testing"
	"time"
)

// A budget-bound load goes in bursts: the rate must count the waits between them (it is measured over
// Dataverse's 5-minute window), a resumed load must not count the rows loaded before it resumed, and a new load
// must start a new measure.
func TestLoadMeterMeasuresOverTheServiceProtectionWindow(t *testing.T) {
	var m loadMeter
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	if r := m.observe(at(0), 500_000, true); r != 0 {
		t.Fatalf("rate with one sample = %v, want 0 (unknown)", r)
	}
	if r := m.observe(at(1), 500_100, true); r != 0 {
		t.Fatalf("rate after 1 s = %v, want 0 (too short to tell)", r)
	}
	// Resumed at 500,000: 60,000 rows in the first 10 s (the first window's budget), then 200 rows/s.
	m.observe(at(10), 560_000, true)
	if r := m.observe(at(20), 562_000, true); math.Abs(r-3100) > 1 {
		t.Errorf("rate after 20 s = %.0f, want 3,100 (62,000 rows since the resume, not the 562,000 of the load)", r)
	}
	done := int64(562_000)
	for s := 21; s <= 900; s++ {
		done += 200
		m.observe(at(float64(s)), done, true)
	}
	r := m.observe(at(900), done, true)
	if math.Abs(r-200) > 1 {
		t.Errorf("rate after 15 min = %.1f, want 200 (the last 5 minutes, the burst gone)", r)
	}
	if eta := loadETA(done, 1_000_000, r); math.Abs(eta-(1_000_000-float64(done))/200) > 5 {
		t.Errorf("eta = %.0f s", eta)
	}
	if len(m.samples) > 302 {
		t.Errorf("%d samples kept, want about one a second over the window", len(m.samples))
	}
	// A new load (progress goes back to 0) starts a new measure; no load, no rate.
	if r := m.observe(at(901), 10, true); r != 0 {
		t.Errorf("rate of a new load's first sample = %v, want 0", r)
	}
	if r := m.observe(at(905), 400, true); math.Abs(r-97.5) > 0.1 {
		t.Errorf("rate of the new load = %v, want 97.5", r)
	}
	if r := m.observe(at(906), 400, false); r != 0 || len(m.samples) != 0 {
		t.Errorf("rate when not loading = %v with %d samples, want 0 and none", r, len(m.samples))
	}
	if eta := loadETA(10, 10, 5); eta != 0 {
		t.Errorf("eta of a finished load = %v", eta)
	}
}
