// Package harness runs crmsync agents against a sandbox for tests, the chaos suite and the benchmarks: the
// agent configuration for a sandbox, and an agent running as its own `crmsync agent` process (status over
// HTTP, SIGKILL or SIGTERM, peak resident memory).
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

// AgentConfig returns a configuration syncing the sandbox's Account and Contact tables with the predefined
// mappings; the Dataverse secrets are inline (callers writing them to a file switch them to references), one
// per application user of the sandbox.
func AgentConfig(info sandbox.Info) api.Config {
	return api.Config{
		Connector: "sandbox",
		TeamID:    info.Dataverse.TeamID,
		Salesforce: api.SalesforceConfig{
			LoginURL: info.Salesforce.LoginURL, APIVersion: info.Salesforce.APIVersion, PubSubAddr: info.Salesforce.PubSubAddr,
			PubSubPlaintext: info.Plaintext, Auth: "jwt_bearer", ClientID: info.Salesforce.ClientID, Username: info.Salesforce.Username,
			PrivateKeyFile: info.Salesforce.PrivateKeyFile, CAFile: info.Salesforce.CAFile,
		},
		Dataverse: api.DataverseConfig{
			EnvironmentURL: info.Dataverse.EnvironmentURL, AuthorityURL: info.Dataverse.AuthorityURL, TenantID: info.Dataverse.TenantID,
			ClientID: info.Dataverse.ClientID, ClientSecret: info.Dataverse.ClientSecret, CAFile: info.Dataverse.CAFile,
			AdditionalUsers: additionalUsers(info),
		},
		Tables: mapping.ResolveAll([]mapping.TableConfig{
			{SourceTable: "Account", UsePredefined: true},
			{SourceTable: "Contact", UsePredefined: true},
		}),
	}
}

// additionalUsers are the sandbox's application users after the first, for the agent to write with too.
func additionalUsers(info sandbox.Info) []api.DataverseApplicationUser {
	var out []api.DataverseApplicationUser
	for _, u := range info.Dataverse.ApplicationUsers {
		out = append(out, api.DataverseApplicationUser{ClientID: u.ClientID, ClientSecret: u.ClientSecret})
	}
	return out
}

// AllowHostArgs are the --allow-host flags that let a standalone agent reach the hosts of cfg (the sandbox's
// loopback address is no real service's host).
func AllowHostArgs(cfg api.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, raw := range []string{cfg.Salesforce.LoginURL, cfg.Salesforce.InstanceURL, "//" + cfg.Salesforce.PubSubAddr,
		cfg.Dataverse.EnvironmentURL, cfg.Dataverse.AuthorityURL} {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" && !seen[u.Hostname()] {
			seen[u.Hostname()] = true
			out = append(out, "--allow-host", u.Hostname())
		}
	}
	return out
}

// ServeArgs are the flags that let `crmsync serve` and its agents work with a sandbox: its loopback host is
// no real service's (--allow-host), and its key and CA files, referenced by connectors, are in its directory
// (--allow-ref-dir).
func ServeArgs(info sandbox.Info) []string {
	args := AllowHostArgs(AgentConfig(info))
	for _, f := range []string{info.Salesforce.PrivateKeyFile, info.Salesforce.CAFile} {
		if f != "" {
			return append(args, "--allow-ref-dir", filepath.Dir(f))
		}
	}
	return args
}

// Agent is an agent running as its own process.
type Agent struct {
	Cmd  *exec.Cmd
	Addr string // its /status and /metrics listener
}

// StartAgent writes cfg (its Dataverse secret moved to an environment variable) into dir and starts
// `binary agent` with its state in stateDir. Its log goes to logw (discarded when nil).
func StartAgent(binary string, cfg api.Config, dir, stateDir string, logw io.Writer, extraArgs ...string) (*Agent, error) {
	secret := cfg.Dataverse.ClientSecret
	cfg.Dataverse.ClientSecret, cfg.Dataverse.ClientSecretEnv = "", "CRMSYNC_HARNESS_DV_SECRET"
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"agent", "--config", cfgFile, "--state-dir", stateDir, "--listen", addr}, AllowHostArgs(cfg)...)
	args = append(args, extraArgs...)
	cmd := exec.Command(binary, args...) //nolint:gosec // G204: the crmsync binary under test, chosen by the caller
	cmd.Env = append(os.Environ(), "CRMSYNC_HARNESS_DV_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Agent{Cmd: cmd, Addr: addr}, nil
}

// Status reads the agent's /status; ok is false while it does not answer.
func (a *Agent) Status() (api.Status, bool) {
	var s api.Status
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.Addr + "/status")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s) == nil
}

// WaitStatus polls the status until cond holds or the timeout passes.
func (a *Agent) WaitStatus(timeout time.Duration, cond func(api.Status) bool) (api.Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, ok := a.Status()
		if ok && cond(s) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("timed out after %s (last status: state %q)", timeout, s.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and reaps the process.
func (a *Agent) Kill() {
	_ = a.Cmd.Process.Signal(syscall.SIGKILL)
	_ = a.Cmd.Wait()
}

// Stop sends SIGTERM (the agent drains and stores its position) and waits up to timeout before killing.
func (a *Agent) Stop(timeout time.Duration) error {
	_ = a.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = a.Cmd.Process.Signal(syscall.SIGKILL)
		if err := <-done; err != nil {
			return fmt.Errorf("the agent did not stop in time and was killed (%w)", err)
		}
		return errors.New("the agent did not stop in time and was killed")
	}
}

// PeakRSS reads the process's peak resident set size (VmHWM) in bytes.
func (a *Agent) PeakRSS() (int64, error) { return PeakRSS(a.Cmd.Process.Pid) }

// PeakRSS reads a process's peak resident set size (VmHWM) in bytes.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// CPUTime is the CPU time (user + system) the agent process has used so far.
func (a *Agent) CPUTime() (time.Duration, error) { return CPUTime(a.Cmd.Process.Pid) }

// CPUTime reads a process's user and system CPU time from /proc/PID/stat (Linux).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.100s", pid, b)
	}
	const ticks = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// Streaming reports whether every table finished loading and streams with nothing pending.
func Streaming(s api.Status) bool {
	if len(s.Tables) == 0 {
		return false
	}
	for _, t := range s.Tables {
		if t.Phase != api.PhaseStreaming || t.Reason != "" || t.LagSeconds > 0 {
			return false
		}
	}
	return true
}

// FreeAddr returns a free loopback address.
func FreeAddr() (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
