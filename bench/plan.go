package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// passingChecker passes every preflight check: the plan scenario measures the provider against a control
// plane, with no Salesforce or Dataverse behind it.
type passingChecker struct{}

func (passingChecker) Preflight(context.Context, api.Connector, store.Secrets, []api.TableMapping) []api.PreflightCheck {
	return []api.PreflightCheck{{Name: "benchmark", OK: true, Message: "preflight is not part of this benchmark"}}
}

func (passingChecker) LiveSchemas(_ context.Context, _ api.Connector, _ store.Secrets, src, dst string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error) {
	return mapping.StandardSource(src), mapping.StandardDestination(dst), 1000, nil
}

// fakeAgents plays the agent of every active connector through the agent protocol, so activations see an
// agent running their revision without 50 real agents on the machine.
func fakeAgents(ctx context.Context, c, agent *client.Client) {
	leases := map[string]*api.Lease{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		conns, err := c.ListConnectors(ctx)
		if err != nil {
			continue
		}
		for _, conn := range conns {
			act, err := c.GetActivation(ctx, conn.ID)
			if err != nil || !act.Active {
				continue
			}
			l := leases[conn.ID]
			if l == nil || l.Revision < conn.Revision {
				if l != nil {
					_ = agent.ReleaseLease(ctx, l.ID)
				}
				if l, err = agent.AcquireLease(ctx, api.LeaseRequest{ConnectorID: conn.ID, Host: "bench"}); err != nil {
					continue
				}
				leases[conn.ID] = l
			}
			st := api.Status{State: api.PhaseStreaming, Revision: l.Revision, StartedAt: time.Now(), Tables: []api.TableStatus{
				{Table: "Account", Destination: "account", Phase: api.PhaseStreaming},
				{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming},
			}}
			if _, err := agent.Heartbeat(ctx, l.ID, api.Heartbeat{Status: st}); errors.Is(err, client.ErrLeaseLost) {
				delete(leases, conn.ID)
			}
		}
	}
}

const planConfig = `terraform {
  required_providers {
    crmsync = { source = "crmsync/crmsync" }
  }
}

provider "crmsync" {}

locals {
  connectors = toset([for i in range(%d) : format("bench-%%02d", i)])
}

resource "crmsync_connector" "c" {
  for_each = local.connectors
  name     = each.key
  team_id  = "7d2c9c5e-1111-4222-8333-944445555666"
  salesforce = {
    login_url        = "https://login.salesforce.com"
    auth             = "jwt_bearer"
    client_id        = "3MVG9benchmark"
    username         = "integration+${each.key}@example.com"
    private_key_file = "/etc/crmsync/${each.key}.key"
  }
  dataverse = {
    environment_url   = "https://${each.key}.crm.dynamics.com"
    tenant_id         = "00000000-0000-0000-0000-000000000001"
    client_id         = "11111111-2222-3333-4444-555555555555"
    client_secret_env = "CRMSYNC_DATAVERSE_SECRET"
  }
}

resource "crmsync_table_mapping" "account" {
  for_each     = local.connectors
  connector_id = crmsync_connector.c[each.key].id
  source_table = "Account"
  columns = {
    websiteurl = { source = "Website" }
  }
}

resource "crmsync_table_mapping" "contact" {
  for_each        = local.connectors
  connector_id    = crmsync_connector.c[each.key].id
  source_table    = "Contact"
  exclude_columns = ["fax"]
  columns = {
    jobtitle = { source = "Title", truncate = true }
  }
  depends_on = [crmsync_table_mapping.account]
}

resource "crmsync_activation" "a" {
  for_each     = local.connectors
  connector_id = crmsync_connector.c[each.key].id
  wait_for     = "running"
  depends_on   = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}
`

// scenarioPlan: `terraform plan` of n connectors with two table mappings each (with column overrides) and
// their activations, against a running control plane; the plan's time and control-plane requests per
// refreshed resource.
func scenarioPlan(o options, n int) (*Result, error) {
	bin, err := filepath.Abs(filepath.Dir(o.Crmsync))
	if err != nil {
		return nil, err
	}
	tf, provider := filepath.Join(bin, "terraform"), filepath.Join(bin, "terraform-provider-crmsync")
	for _, f := range []string{tf, provider} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s is missing (make tools build): %w", f, err)
		}
	}
	dir, err := os.MkdirTemp("", "crmsync-bench-plan-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenSQLite(filepath.Join(dir, "cp"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	const token = "bench-token"
	// The configuration references /etc/crmsync files and CRMSYNC_ variables: allowed, as an operator would.
	srv, err := controlplane.New(controlplane.Config{Store: st, Token: token, Checker: passingChecker{},
		Refs: policy.Refs{Dirs: []string{"/etc/crmsync"}, EnvPrefixes: []string{"CRMSYNC_"}}})
	if err != nil {
		return nil, err
	}
	// The provider's Configure checks the control plane once per plan (its health, then one authenticated
	// list); those are counted apart from the requests that refresh resources.
	var requests, configure atomic.Int64
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := srv.Handler()
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.UserAgent() == "bench-agents":
		case r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/v1/connectors"):
			configure.Add(1)
		default:
			requests.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	endpoint := "http://" + ln.Addr().String()

	// The fake agents read the connectors with the operator token and take leases with an agent identity of
	// their own, as real agents do.
	operator, err := client.New(client.Config{Endpoint: endpoint, Token: token, UserAgent: "bench-agents"})
	if err != nil {
		return nil, err
	}
	cred, err := st.CreateLocalAgent(context.Background(), "", "bench-agents", "bench")
	if err != nil {
		return nil, err
	}
	agents, err := client.New(client.Config{Endpoint: endpoint, Token: cred.Credential, UserAgent: "bench-agents"})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fakeAgents(ctx, operator, agents) }()
	defer func() { stop(); wg.Wait() }()

	work := filepath.Join(dir, "tf")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(work, "main.tf"), []byte(fmt.Sprintf(planConfig, n)), 0o600); err != nil {
		return nil, err
	}
	rc := filepath.Join(dir, "dev.tfrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"registry.terraform.io/crmsync/crmsync\" = %q\n  }\n  direct {}\n}\n", bin)), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"CRMSYNC_ENDPOINT="+endpoint, "CRMSYNC_TOKEN="+token)
	terraform := func(args ...string) (int, string, error) {
		cmd := exec.Command(tf, args...) //nolint:gosec // G204: ./bin/terraform with fixed arguments
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out), nil
		}
		return 0, string(out), err
	}
	if code, out, err := terraform("apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=10"); err != nil || code != 0 {
		return nil, fmt.Errorf("terraform apply (exit %d): %w\n%s", code, err, tail(out))
	}
	requests.Store(0)
	configure.Store(0)
	start := time.Now()
	code, out, err := terraform("plan", "-detailed-exitcode", "-input=false", "-no-color")
	elapsed := time.Since(start).Seconds()
	if err != nil || code != 0 {
		return nil, fmt.Errorf("terraform plan right after apply should be empty (exit %d): %w\n%s", code, err, tail(out))
	}
	resources := float64(4 * n)
	return &Result{Figures: map[string]float64{
		"connectors": float64(n), "resources": resources, "plan_seconds": elapsed,
		"control_plane_requests": float64(requests.Load() + configure.Load()), "provider_configure_requests": float64(configure.Load()),
		"requests_per_resource": float64(requests.Load()) / resources,
	}}, nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}
