package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// accToken is the API token of the test control planes (generated per process, never a real secret).
var accToken = fmt.Sprintf("acc-%d-%d", os.Getpid(), time.Now().UnixNano())

// providerAddress is the provider's registry address as the CLI under test resolves `source = "crmsync/crmsync"`:
// registry.terraform.io for Terraform, registry.opentofu.org for OpenTofu (TF_ACC_PROVIDER_HOST, which
// terraform-plugin-testing reads too). Acceptance tests run with TF_ACC_PROVIDER_NAMESPACE=crmsync so the
// bare name "crmsync" resolves to it.
var providerAddress = providerHost() + "/crmsync/crmsync"

func providerHost() string {
	if h := os.Getenv("TF_ACC_PROVIDER_HOST"); h != "" {
		return h
	}
	return "registry.terraform.io"
}

// protoV6ProviderFactories serve the provider in-process to the acceptance tests' Terraform.
var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"crmsync": providerserver.NewProtocol6WithError(New("test")()),
}

// accPreCheck skips acceptance tests unless TF_ACC is set (make test sets it, with the local Terraform).
func accPreCheck(t *testing.T) {
	t.Helper()
	if os.Getenv(resource.EnvTfAcc) == "" {
		t.Skip("acceptance test: set TF_ACC=1 (make test does)")
	}
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		t.Skip("acceptance test: set TF_ACC_TERRAFORM_PATH to a Terraform CLI (make test uses ./bin/terraform)")
	}
	if os.Getenv("TF_ACC_PROVIDER_NAMESPACE") == "" {
		t.Setenv("TF_ACC_PROVIDER_NAMESPACE", "crmsync")
	}
}

// controlPlane is an in-process control plane: the real API server on a SQLite store in a temporary
// directory, on a loopback httptest server.
type controlPlane struct {
	URL    string
	Store  store.Store
	Client *client.Client
	server *httptest.Server
	clock  *testClock
}

type controlPlaneOptions struct {
	Checker  controlplane.Checker
	Deployer controlplane.Deployer
	LeaseTTL time.Duration
}

// testClock is the control plane's clock; tests move it forward to age rollouts and leases.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func startControlPlane(t *testing.T, opts controlPlaneOptions) *controlPlane {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatalf("opening the control plane store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := &testClock{}
	st.Now = func() time.Time { return clk.Now().UTC() } // one clock for leases, revisions and status
	srv, err := controlplane.New(controlplane.Config{
		Store: st, Token: accToken, Checker: opts.Checker, Deployer: opts.Deployer, LeaseTTL: opts.LeaseTTL, Now: clk.Now,
		// The configurations of these tests reference /etc/crmsync files and CRMSYNC_ variables.
		Refs: policy.Refs{Dirs: []string{"/etc/crmsync"}, EnvPrefixes: []string{"CRMSYNC_"}},
	})
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(client.Config{Endpoint: hs.URL, Token: accToken})
	if err != nil {
		t.Fatal(err)
	}
	return &controlPlane{URL: hs.URL, Store: st, Client: c, server: hs, clock: clk}
}

// requiredProviders names the provider's source, as every configuration using it does.
const requiredProviders = `terraform {
  required_providers {
    crmsync = { source = "crmsync/crmsync" }
  }
}
`

// providerBlock configures the provider for this control plane.
func (cp *controlPlane) providerBlock() string {
	return requiredProviders + fmt.Sprintf("provider \"crmsync\" {\n  endpoint = %q\n  token    = %q\n}\n", cp.URL, accToken)
}

// tfDiagnostic is one diagnostic of Terraform's machine-readable (-json) UI output.
type tfDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Address  string `json:"address"`
	Snippet  struct {
		Code string `json:"code"` // the configuration line the diagnostic points at
	} `json:"snippet"`
}

func (d tfDiagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s (%s)", d.Severity, d.Summary, d.Detail, d.Address)
}

// tfRun is the outcome of one terraform command.
type tfRun struct {
	Diagnostics []tfDiagnostic
	Changes     bool   // plan -detailed-exitcode exited 2
	Output      string // the raw output, for failure messages
}

// Warnings returns the warning diagnostics.
func (r tfRun) Warnings() []tfDiagnostic { return r.bySeverity("warning") }

// Errors returns the error diagnostics.
func (r tfRun) Errors() []tfDiagnostic { return r.bySeverity("error") }

func (r tfRun) bySeverity(s string) []tfDiagnostic {
	var out []tfDiagnostic
	for _, d := range r.Diagnostics {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Has reports whether a diagnostic of the severity has a summary or detail containing every one of parts.
func (r tfRun) Has(severity string, parts ...string) bool {
	for _, d := range r.bySeverity(severity) {
		text := d.Summary + "\n" + d.Detail
		ok := true
		for _, p := range parts {
			if !strings.Contains(text, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// tfWorkdir runs the real Terraform CLI on a configuration directory, with the provider served in-process
// (reattach, as terraform-plugin-testing does) or as a built binary through a dev_overrides CLI
// configuration. It exists for what terraform-plugin-testing cannot observe: warning diagnostics, and whole
// TRACE logs.
type tfWorkdir struct {
	t      *testing.T
	dir    string
	env    []string
	inited bool
	binary bool // dev_overrides: no init
}

// newTFWorkdir prepares a working directory whose Terraform talks to an in-process provider.
func newTFWorkdir(t *testing.T) *tfWorkdir {
	t.Helper()
	accPreCheck(t)
	w := &tfWorkdir{t: t, dir: t.TempDir()}
	w.env = append(w.baseEnv(), "TF_REATTACH_PROVIDERS="+serveInProcess(t))
	return w
}

// newTFWorkdirWithBinary prepares a working directory whose Terraform starts the provider binary built
// from this module, as a user's Terraform does (dev_overrides). extraEnv is added to every command.
func newTFWorkdirWithBinary(t *testing.T, extraEnv ...string) *tfWorkdir {
	t.Helper()
	accPreCheck(t)
	bin := testenv.Binary(t, ".")
	w := &tfWorkdir{t: t, dir: t.TempDir(), binary: true}
	rc := filepath.Join(t.TempDir(), "terraformrc")
	cfg := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    %q = %q\n  }\n  direct {}\n}\n", providerAddress, filepath.Dir(bin))
	if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.env = append(append(w.baseEnv(), "TF_CLI_CONFIG_FILE="+rc), extraEnv...)
	return w
}

func (w *tfWorkdir) baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TF_") || k == EnvEndpoint || k == EnvToken || k == EnvCAFile {
			continue // the test decides every Terraform and provider setting
		}
		env = append(env, kv)
	}
	empty := filepath.Join(w.dir, ".empty.tfrc")
	_ = os.WriteFile(empty, nil, 0o600)
	return append(env, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE="+empty,
		"TF_PLUGIN_CACHE_DIR=", "TF_DATA_DIR="+filepath.Join(w.dir, ".terraform"))
}

// write replaces the configuration (and initializes the directory the first time).
func (w *tfWorkdir) write(config string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, "main.tf"), []byte(config), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if !w.inited && !w.binary {
		w.inited = true
		w.run(0, "init", "-input=false", "-no-color")
	}
}

// Plan runs `terraform plan -json -detailed-exitcode` on config.
func (w *tfWorkdir) Plan(config string) tfRun {
	w.t.Helper()
	w.write(config)
	return w.run(2, "plan", "-json", "-input=false", "-detailed-exitcode", "-lock=false")
}

// Apply runs `terraform apply -json -auto-approve` on config and fails the test on error.
func (w *tfWorkdir) Apply(config string) tfRun {
	w.t.Helper()
	w.write(config)
	return w.run(0, "apply", "-json", "-input=false", "-auto-approve", "-lock=false")
}

// Destroy runs `terraform destroy` on config.
func (w *tfWorkdir) Destroy(config string) tfRun {
	w.t.Helper()
	w.write(config)
	return w.run(0, "destroy", "-json", "-input=false", "-auto-approve", "-lock=false")
}

// run runs terraform with args and fails the test unless it exits 0 or okCode.
func (w *tfWorkdir) run(okCode int, args ...string) tfRun {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("TF_ACC_TERRAFORM_PATH"), args...)
	cmd.Dir, cmd.Env = w.dir, w.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		w.t.Fatalf("terraform %s: %v", args[0], err)
	}
	run := tfRun{Changes: code == 2, Output: out.String()}
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Type       string       `json:"type"`
			Diagnostic tfDiagnostic `json:"diagnostic"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Type == "diagnostic" {
			run.Diagnostics = append(run.Diagnostics, line.Diagnostic)
		}
	}
	if code != 0 && code != okCode {
		w.t.Fatalf("terraform %s exited %d:\n%s", strings.Join(args, " "), code, run.Output)
	}
	return run
}

// serveInProcess serves a fresh provider in this process until the test ends and returns the
// TF_REATTACH_PROVIDERS value that points Terraform at it.
func serveInProcess(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go func() {
		_ = tf6server.Serve(providerAddress, providerserver.NewProtocol6(New("test")()),
			tf6server.WithDebug(ctx, reattach, closed), tf6server.WithLoggingSink(t), tf6server.WithGoPluginLogger(hclog.NewNullLogger()))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("the in-process provider did not stop within 10s")
		}
	})
	select {
	case cfg := <-reattach:
		b, err := json.Marshal(map[string]any{providerAddress: map[string]any{
			"Protocol": string(cfg.Protocol), "ProtocolVersion": cfg.ProtocolVersion, "Pid": cfg.Pid, "Test": cfg.Test,
			"Addr": map[string]string{"Network": cfg.Addr.Network(), "String": cfg.Addr.String()},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case <-time.After(30 * time.Second):
		t.Fatal("the in-process provider did not start within 30s")
		return ""
	}
}
