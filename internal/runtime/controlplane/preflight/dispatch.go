package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Where preflight runs (crmsync serve's Checker):
//
//   - A connector whose credentials are all inline (no *_env, *_file or ca_file reference) is checked in the
//     control plane, with the decrypted inline secrets, toward the hosts the destination policy allows. It
//     reads nothing of the control plane's host.
//   - A connector with references is checked on the agent side: with local agents (serve --local-agents), a
//     one-shot `crmsync agent preflight` process runs the same checks with what a local agent would have:
//     the environment filtered to the reference policy, references resolved only within it, connections only
//     where the destination policy allows. So a check passes exactly when the agent will find its secrets,
//     and the control plane's process never holds a referenced secret. The request (connector, inline
//     secrets, mappings, policy) goes to the child on its stdin, never on its command line or in a file.
//   - Without local agents the agents run on other hosts, where the references are resolved: the checks
//     needing a referenced secret pass as warnings saying so (the agent checks again when it starts).

// Request is what the agent-side preflight gets on its stdin.
type Request struct {
	Op        string             `json:"op"` // "preflight" or "live_schemas"
	Connector api.Connector      `json:"connector"`
	Secrets   store.Secrets      `json:"secrets,omitempty"`
	Mappings  []api.TableMapping `json:"mappings,omitempty"`
	Source    string             `json:"source,omitempty"`
	Dest      string             `json:"dest,omitempty"`
	Policy    *api.Policy        `json:"policy,omitempty"`
	Rows      int64              `json:"row_bytes,omitempty"`
	Guidance  int64              `json:"size_guidance,omitempty"`
}

// Response is what it writes on its stdout.
type Response struct {
	Checks []api.PreflightCheck  `json:"checks,omitempty"`
	Source *mapping.SourceSchema `json:"source,omitempty"`
	Dest   *mapping.DestSchema   `json:"dest,omitempty"`
	Count  int64                 `json:"count,omitempty"`
	Error  string                `json:"error,omitempty"`
}

// Serve answers one Request read from in on out: the agent side of Dispatcher (crmsync agent preflight).
func Serve(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	var req Request
	if err := json.NewDecoder(io.LimitReader(in, 32<<20)).Decode(&req); err != nil {
		return fmt.Errorf("reading the preflight request: %w", err)
	}
	hosts, refs := policy.FromAPI(req.Policy)
	c := NewChecker(Config{Logger: log, Hosts: hosts, Refs: refs, RowBytes: req.Rows, SizeGuidance: req.Guidance})
	var resp Response
	switch req.Op {
	case "preflight":
		resp.Checks = c.Preflight(ctx, req.Connector, req.Secrets, req.Mappings)
	case "live_schemas":
		src, dst, n, err := c.LiveSchemas(ctx, req.Connector, req.Secrets, req.Source, req.Dest)
		resp.Source, resp.Dest, resp.Count = src, dst, n
		if err != nil {
			resp.Error = err.Error()
		}
	default:
		return fmt.Errorf("unknown preflight operation %q", req.Op)
	}
	return json.NewEncoder(out).Encode(resp)
}

// Dispatcher implements controlplane.Checker for crmsync serve (see "Where preflight runs" above).
type Dispatcher struct {
	// Local checks connectors without references, in the control plane; its Refs must be the zero policy.
	Local *Checker
	// Hosts and Refs are the control plane's policies, handed to the agent side.
	Hosts policy.Hosts
	Refs  policy.Refs
	// Agent runs a Request on the agent side; nil when serve runs without local agents.
	Agent func(ctx context.Context, req Request) (Response, error)
}

var _ controlplane.Checker = (*Dispatcher)(nil)

func (d *Dispatcher) agentSide(conn api.Connector) bool {
	return d.Agent != nil && policy.UsesHost(conn.ConnectorSpec)
}

func (d *Dispatcher) request(op string, conn api.Connector, secrets store.Secrets) Request {
	return Request{Op: op, Connector: conn, Secrets: secrets, Policy: policy.ToAPI(d.Hosts, d.Refs),
		Rows: d.Local.cfg.RowBytes, Guidance: d.Local.cfg.SizeGuidance}
}

// Preflight implements controlplane.Checker.
func (d *Dispatcher) Preflight(ctx context.Context, conn api.Connector, secrets store.Secrets, mappings []api.TableMapping) []api.PreflightCheck {
	if !d.agentSide(conn) {
		return d.Local.Preflight(ctx, conn, secrets, mappings)
	}
	req := d.request("preflight", conn, secrets)
	req.Mappings = mappings
	resp, err := d.Agent(ctx, req)
	if err == nil && len(resp.Checks) == 0 {
		err = errors.New("the agent side answered no checks")
	}
	if err != nil {
		d.Local.log.Error("agent-side preflight failed", "connector_id", conn.ID, "err", err)
		return []api.PreflightCheck{{Name: CheckSalesforceCredentials, Message: "the agent-side preflight could not run: " + err.Error()},
			{Name: CheckDataverseCredentials, Message: "not checked: the agent-side preflight could not run"}}
	}
	for _, ch := range resp.Checks {
		d.Local.log.Info("preflight check", "connector_id", conn.ID, "check", ch.Name, "ok", ch.OK, "warning", ch.Warning,
			"message", ch.Message, "side", "agent")
	}
	return resp.Checks
}

// LiveSchemas implements controlplane.Checker.
func (d *Dispatcher) LiveSchemas(ctx context.Context, conn api.Connector, secrets store.Secrets, sourceTable, destTable string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error) {
	if !d.agentSide(conn) {
		return d.Local.LiveSchemas(ctx, conn, secrets, sourceTable, destTable)
	}
	req := d.request("live_schemas", conn, secrets)
	req.Source, req.Dest = sourceTable, destTable
	resp, err := d.Agent(ctx, req)
	switch {
	case err != nil:
		return nil, nil, 0, fmt.Errorf("the agent-side check could not run: %w", err)
	case resp.Error != "":
		return nil, nil, 0, errors.New(resp.Error)
	}
	return resp.Source, resp.Dest, resp.Count, nil
}

// ExecAgent returns a Dispatcher.Agent that runs `BINARY agent preflight` with env (the environment a local
// agent gets), the request on its stdin and the answer read from its stdout; its stderr (logs) goes to log.
func ExecAgent(binary string, env []string, log *slog.Logger) func(ctx context.Context, req Request) (Response, error) {
	return func(ctx context.Context, req Request) (Response, error) {
		in, err := json.Marshal(req)
		if err != nil {
			return Response{}, err
		}
		cmd := exec.CommandContext(ctx, binary, "agent", "preflight") //nolint:gosec // our own binary, fixed arguments
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(in)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &limited{w: &errOut, n: 64 << 10}
		if err := cmd.Run(); err != nil {
			if msg := strings.TrimSpace(errOut.String()); msg != "" {
				log.Warn("agent-side preflight", "output", msg)
			}
			return Response{}, fmt.Errorf("crmsync agent preflight: %w", err)
		}
		var resp Response
		if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
			return Response{}, fmt.Errorf("reading the agent-side answer: %w", err)
		}
		return resp, nil
	}
}

// limited keeps the first n bytes written.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
