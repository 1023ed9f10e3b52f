package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestDelayDoublesUpToTheCapWithJitterBelow(t *testing.T) {
	p := Policy{Base: 250 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.5}
	for n, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 15 * time.Second, 15 * time.Second} {
		for range 200 {
			if d := p.Delay(n); d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s; want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := (Policy{Base: time.Second, Max: time.Minute}).Delay(3); d != 8*time.Second {
		t.Errorf("without jitter Delay(3) = %s; want 8s exactly", d)
	}
	if d := (Policy{Base: time.Second}).Delay(1000); d <= 0 {
		t.Errorf("an uncapped policy's Delay(1000) = %s; want a positive duration, not an overflow", d)
	}
	if d := (Policy{Base: time.Second, Max: time.Minute}).Wait(0, 5*time.Second); d != 5*time.Second {
		t.Errorf("Wait with a floor of 5s = %s; want the floor", d)
	}
}

func TestAfterReadsSecondsFractionsAndDates(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"0.5", 500 * time.Millisecond}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		h := http.Header{}
		if c.v != "" {
			h.Set("Retry-After", c.v)
		}
		if got := After(h, now); got != c.want {
			t.Errorf("Retry-After %q: %s; want %s", c.v, got, c.want)
		}
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on an ended context: %v; want context.Canceled", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("Sleep did not return when its context ended")
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on an ended context: %v", err)
	}
	if err := Sleep(t.Context(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms): %v", err)
	}
}
