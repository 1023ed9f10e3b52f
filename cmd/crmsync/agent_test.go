package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
)

// TestProfilerIsServedOnlyWithPprof checks the agent's --pprof switch: without it /debug/pprof/ is not there;
// with it the profiler answers next to /status.
func TestProfilerIsServedOnlyWithPprof(t *testing.T) {
	status := func() agent.Status { return agent.Status{} }
	for _, withPprof := range []bool{false, true} {
		srv, addr, err := serveAgentHTTP(t.Context(), "127.0.0.1:0", "test", status, withPprof)
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

// Two standalone agents on one --state-dir both streamed and wrote. An agent whose
// state directory another process holds refuses to start, naming that process.
func TestAStandaloneAgentOnAHeldStateDirRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	holder, err := localstore.Open(state)
	if err != nil {
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		if holder, err = localstore.Open(state); err != nil {
			t.Fatal(err)
		}
	}
	defer holder.Close()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(`connector: held
team_id: 6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10
salesforce:
  login_url: https://login.salesforce.com
  instance_url: https://acme.my.salesforce.com
  auth: client_credentials
  client_id: cid
  client_secret_env: HELD_SF_SECRET
dataverse:
  environment_url: https://acme.crm.dynamics.com
  tenant_id: acme.onmicrosoft.com
  client_id: a1b2c3d4-0000-4000-8000-0000000000aa
  client_secret_env: HELD_DV_SECRET
tables:
  - source_table: Contact
    use_predefined_mappings: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HELD_SF_SECRET", "s")
	t.Setenv("HELD_DV_SECRET", "s")
	cmd := newAgentCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--config", cfg, "--state-dir", state, "--listen", "127.0.0.1:0", "--log-level", "error"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("an agent on a held state directory: %v; want a refusal naming the holder's pid", err)
	}
}
