package tally

import (
	"sync"
	"testing"
)

func TestCountsAddUpConcurrentlyAndSnapshotsAreCopies(t *testing.T) {
	var c Counts
	if s := c.Snapshot(); s == nil || len(s) != 0 {
		t.Fatalf("zero value snapshot = %v; want an empty map", s)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add("requests", 1)
				c.Add("rows", 3)
			}
		}()
	}
	wg.Wait()
	if got := c.Get("requests"); got != 8000 {
		t.Errorf("requests = %d; want 8000", got)
	}
	s := c.Snapshot()
	if s["rows"] != 24000 || c.Get("never") != 0 {
		t.Errorf("snapshot %v, never = %d", s, c.Get("never"))
	}
	s["rows"] = 0
	if c.Get("rows") != 24000 {
		t.Error("changing a snapshot changed the counts")
	}
}
