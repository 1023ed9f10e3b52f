package main

import (
	"io"
	"net/http"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
)

// TestProfilerIsServedOnlyWithPprof checks the agent's --pprof switch: without it /debug/pprof/ is not there;
// with it the profiler answers next to /status.
func TestProfilerIsServedOnlyWithPprof(t *testing.T) {
	status := func() agent.Status { return agent.Status{} }
	for _, withPprof := range []bool{false, true} {
		srv, addr, err := serveAgentHTTP(t.Context(), "127.0.0.1:0", status, withPprof)
		if err != nil {
			t.Fatal(err)
		}
		get := func(path string) int {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		want := http.StatusNotFound
		if withPprof {
			want = http.StatusOK
		}
		if got := get("/debug/pprof/cmdline"); got != want {
			t.Errorf("--pprof=%v: /debug/pprof/cmdline answered %d, want %d", withPprof, got, want)
		}
		if got := get("/status"); got != http.StatusOK {
			t.Errorf("--pprof=%v: /status answered %d", withPprof, got)
		}
		srv.Close()
	}
}
