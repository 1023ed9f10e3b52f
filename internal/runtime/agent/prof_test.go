package agent_test

import (
	"os"
	"testing"
	"time"
)

// TestProfileLoad is a helper for profiling (go test -run TestProfileLoad -cpuprofile); it only runs with
// CRMSYNC_PROFILE=1.
func TestProfileLoad(t *testing.T) {
	if os.Getenv("CRMSYNC_PROFILE") == "" {
		t.Skip("set CRMSYNC_PROFILE=1")
	}
	e := newEnv(t, 100000, 20000)
	start := time.Now()
	r := e.start(t, "")
	waitFor(t, 5*time.Minute, "load", func() bool { return streaming(r.a.Status()) })
	t.Logf("loaded 120,000 records in %s", time.Since(start))
}
