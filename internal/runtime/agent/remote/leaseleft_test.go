package remote

import (
	"testing"
	"time"
)

// The lease's local deadline counts what the control plane says is left when it says so (it renews only
// when due), the TTL otherwise, and never more than the TTL.
func TestTheLeaseLastsWhatTheAnswerSaysAtMostTheTTL(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want time.Duration
	}{
		{0, 20 * time.Second},            // a control plane that renews at every heartbeat
		{16.5, 16500 * time.Millisecond}, // renewed 3.5 s ago
		{25, 20 * time.Second},           // never beyond the TTL
		{0.25, 250 * time.Millisecond},   // nearly out: the write fence stops writes
	} {
		if got := leaseLeft(20*time.Second, c.in); got != c.want {
			t.Errorf("leaseLeft(20s, %v) = %s, want %s", c.in, got, c.want)
		}
	}
}
