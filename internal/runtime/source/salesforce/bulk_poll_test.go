package salesforce

import (
	"testing"
	"time"
)

// TestBulkJobPollNoticesCompletionWithinAQuarterOfItsTime pins WaitQueryJob's polling: a job that completes
// between two polls is noticed at most a quarter of its running time (and 50 ms) after it completes, while a
// long job still costs few API calls. Polling that grew by half from 100 ms noticed a 300 ms job at 475 ms.
func TestBulkJobPollNoticesCompletionWithinAQuarterOfItsTime(t *testing.T) {
	if first := bulkPollWait(0); first != 50*time.Millisecond {
		t.Errorf("first wait %s, want 50ms", first)
	}
	waited := time.Duration(0)
	polls := 1 // the poll right after creating the job
	for waited < 10*time.Minute {
		next := bulkPollWait(waited)
		if limit := max(50*time.Millisecond, waited/4); next > limit {
			t.Fatalf("after %s, the next poll waits %s: more than %s (a quarter of the time so far)", waited, next, limit)
		}
		if next > 5*time.Second {
			t.Fatalf("after %s, the next poll waits %s: more than the 5 s cap", waited, next)
		}
		waited += next
		polls++
		if waited <= 10*time.Second && polls > 30 {
			t.Fatalf("%d polls in the first %s: too many API calls for a short job", polls, waited)
		}
	}
	if polls > 160 {
		t.Errorf("%d polls over 10 minutes, want at most 160 (one per 5 s once the job is long)", polls)
	}
}
