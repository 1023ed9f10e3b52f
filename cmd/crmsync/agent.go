package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof" //nolint:gosec // G108: served only with --pprof, on our own mux, never on the default one
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// agentFlags are crmsync agent's flags.
type agentFlags struct {
	configFile, stateDir, listen, logFormat, logLevel string
	controlPlane, connectorID, credFile, enrollFile   string
	caFile                                            string
	credFD, maxConnectors                             int
	withPprof, allowLoose, enrollOnly                 bool
	allowHosts                                        []string
}

func newAgentCommand() *cobra.Command {
	var a agentFlags
	cmd := &cobra.Command{
		Use:   "agent (--config FILE --state-dir DIR | --control-plane URL[,URL…] [--connector ID | --max-connectors N])",
		Short: "Run a connector's sync (initial load, then change data capture), or join a pool of agents",
		Long: `Runs one connector's sync.

Standalone (--config, --state-dir): reads the connector from a JSON or YAML file (see docs/agent.md), keeps
checkpoints, dead letters and status in DIR/agent.db, logs structured lines, and serves /status (JSON) and
/metrics (Prometheus) on --listen. Credentials are referenced in the file by environment variable (*_env) or
file (*_file) and read on this host.

Under a control plane (--control-plane, --connector): leases the connector through the control plane's API
(waiting while another live agent holds it), runs it at the lease's revision with checkpoints, dead letters
and status kept by the control plane, and heartbeats. It drains, commits and exits 0 when the connector is
deactivated or a newer revision is desired (the supervisor of crmsync serve then starts the new one), and
exits non-zero at once when its lease is lost. It authenticates with an agent credential of its own, never the
operator token: --credential-file (rotated at every start), created the first time by enrolling with
--enroll-token-file (a single-use token from 'crmsync agents enroll-token' on the control plane's host).
/status and /metrics are served only when --listen is given.

In a pool (--control-plane without --connector): checks in with the control plane every few seconds and runs
the connectors it is given, up to --max-connectors, each as above but all in this process; gives connectors
back when the control plane balances them onto a new agent; on SIGTERM drains, commits and releases every
lease, then exits 0. Several pool agents may share one enrolled identity (a Kubernetes Deployment's pods share
their credential Secret): each is told apart by its host name. --control-plane may list several replicas'
URLs, separated by commas: the agent moves to the next when one fails. See docs/scaling.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(a.logFormat, a.logLevel)
			if err != nil {
				return err
			}
			if a.controlPlane != "" || a.connectorID != "" {
				return a.runUnderControlPlane(cmd, logger)
			}
			return a.runStandalone(cmd.Context(), logger)
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:    "preflight",
		Short:  "Run one preflight request of crmsync serve on the agent side (internal: request on stdin, answer on stdout)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger("text", "warn")
			if err != nil {
				return err
			}
			return preflight.Serve(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), logger)
		},
	})
	a.register(cmd)
	return cmd
}

func (a *agentFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.configFile, "config", "", "connector configuration file (JSON or YAML)")
	f.StringVar(&a.stateDir, "state-dir", "", "directory for the local state database (created if missing)")
	f.StringVar(&a.listen, "listen", "127.0.0.1:9464", "address for /status and /metrics (port 0 picks one; under a control plane only when given)")
	f.StringVar(&a.controlPlane, "control-plane", "", "control plane URL, e.g. https://crmsync.internal:8787, or several replicas' separated by commas, tried in turn (control-plane mode)")
	f.StringVar(&a.connectorID, "connector", "", "ID of the connector to run (control-plane mode); without it the agent joins the pool and runs what the control plane gives it")
	f.IntVar(&a.maxConnectors, "max-connectors", 10, "pool mode: how many connectors this agent runs at most")
	f.BoolVar(&a.enrollOnly, "enroll-only", false, "control-plane mode: enroll with --enroll-token-file into --credential-file (or rotate it) and exit, e.g. to make a Kubernetes Secret")
	f.StringVar(&a.credFile, "credential-file", "", "control-plane mode: the agent's credential (0600); rotated at every start")
	f.StringVar(&a.enrollFile, "enroll-token-file", "", "control-plane mode: an enrollment token (crmsync agents enroll-token) exchanged for a credential into --credential-file when it does not exist yet")
	f.IntVar(&a.credFD, "credential-fd", 0, "control-plane mode: read the credential from this inherited descriptor (crmsync serve's local agents)")
	_ = f.MarkHidden("credential-fd")
	f.StringVar(&a.caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	f.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&a.allowHosts, "allow-host", nil, "standalone mode: a host the file may name besides the real services' (127.0.0.1, *.internal.example, host:port); repeatable")
	f.BoolVar(&a.allowLoose, "allow-readable-secret-files", false, "accept secret files (private_key_file, client_secret_file) that group or others can read; refused otherwise")
	f.BoolVar(&a.withPprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on --listen (standalone mode; keep --listen on loopback)")
}

// runUnderControlPlane is control-plane mode: one connector (--connector), a pool, or only enrolling.
func (a *agentFlags) runUnderControlPlane(cmd *cobra.Command, logger *slog.Logger) error {
	if a.configFile != "" || a.stateDir != "" {
		return errors.New("--config and --state-dir are for standalone mode; under a control plane the configuration and state come from it")
	}
	if a.controlPlane == "" {
		return errors.New("--connector needs --control-plane")
	}
	listen := a.listen
	if !cmd.Flags().Changed("listen") {
		listen = ""
	}
	if len(a.allowHosts) > 0 {
		return errors.New("--allow-host is for standalone mode; under a control plane the destination policy comes from it (crmsync serve --allow-host)")
	}
	rf := remoteFlags{endpoint: a.controlPlane, connectorID: a.connectorID, credFile: a.credFile,
		enrollFile: a.enrollFile, credFD: a.credFD, caFile: a.caFile, listen: listen}
	switch {
	case a.enrollOnly:
		if a.enrollFile == "" || a.credFile == "" {
			return errors.New("--enroll-only needs --enroll-token-file and --credential-file")
		}
		_, err := agentCredential(cmd.Context(), logger, rf)
		return err
	case a.connectorID == "":
		if a.maxConnectors < 1 {
			return fmt.Errorf("--max-connectors %d must be at least 1", a.maxConnectors)
		}
		return runPoolAgent(cmd.Context(), logger, rf, a.maxConnectors, agentOptions(a.allowLoose))
	case cmd.Flags().Changed("max-connectors"):
		return errors.New("--max-connectors is for a pool agent (without --connector)")
	}
	return runRemoteAgent(cmd.Context(), logger, rf, agentOptions(a.allowLoose))
}

// runStandalone is standalone mode: the connector of a file, state in a local database.
func (a *agentFlags) runStandalone(ctx context.Context, logger *slog.Logger) error {
	if a.configFile == "" || a.stateDir == "" {
		return errors.New("--config and --state-dir are required (or --control-plane and --connector)")
	}
	cfg, err := agent.LoadConfig(a.configFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.stateDir, 0o700); err != nil {
		return err
	}
	store, err := localstore.Open(a.stateDir)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, p := range a.allowHosts {
		if err := policy.ParseHostPattern(p); err != nil {
			return fmt.Errorf("--allow-host: %w", err)
		}
	}
	// Standalone, the file is its operator's: its references are resolved as written (the API token's
	// variable aside), its destinations are the real services' plus --allow-host.
	opts := append(agentOptions(a.allowLoose), agent.WithPolicy(policy.Hosts{Allow: a.allowHosts}, policy.Refs{Unrestricted: true}))
	ag, err := agent.New(*cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, logger, opts...)
	if err != nil {
		return err
	}
	srv, addr, err := serveAgentHTTP(ctx, a.listen, ag.ConnectorName(), ag.Status, a.withPprof)
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Info("agent started", "connector", cfg.Connector, "tables", len(cfg.Tables), "http", "http://"+addr)
	return ag.Run(ctx)
}

// remoteFlags are the flags of control-plane mode.
type remoteFlags struct {
	endpoint, connectorID, credFile, enrollFile, caFile, listen string
	credFD                                                      int
}

// agentClient is the control plane's client of an agent (one connector's or a pool's), holding the agent's
// own credential.
func agentClient(ctx context.Context, logger *slog.Logger, f remoteFlags) (*client.Client, error) {
	cred, err := agentCredential(ctx, logger, f)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{Endpoint: f.endpoint, Token: cred, CAFile: f.caFile, UserAgent: "crmsync-agent/" + version.Version})
}

// runRemoteAgent is control-plane mode: remote.Run with a client holding the agent's own credential.
func runRemoteAgent(ctx context.Context, logger *slog.Logger, f remoteFlags, opts []agent.Option) error {
	c, err := agentClient(ctx, logger, f)
	if err != nil {
		return err
	}
	var srv *http.Server
	defer func() {
		if srv != nil {
			_ = srv.Close()
		}
	}()
	return remote.Run(ctx, remote.Options{
		Client: c, ConnectorID: f.connectorID, Logger: logger, AgentOptions: opts,
		OnStart: func(e remote.Engine) {
			if f.listen == "" {
				return
			}
			var addr string
			var err error
			// The lease's configuration names the connector; an engine that cannot say labels with the ID.
			name := f.connectorID
			if n, ok := e.(interface{ ConnectorName() string }); ok && n.ConnectorName() != "" {
				name = n.ConnectorName()
			}
			if srv, addr, err = serveAgentHTTP(ctx, f.listen, name, e.Status, false); err != nil {
				logger.Error("cannot serve /status and /metrics", "err", err)
				return
			}
			logger.Info("agent started", "connector_id", f.connectorID, "http", "http://"+addr)
		},
	})
}

// agentCredential finds the agent's credential: from the inherited descriptor (local agents of crmsync serve),
// or from --credential-file, which it rotates first (the file is replaced atomically; until the new
// credential is first used the old one still works, so a crash in between loses nothing), or by enrolling
// with --enroll-token-file into a new --credential-file. The operator token is never an agent's credential.
func agentCredential(ctx context.Context, logger *slog.Logger, f remoteFlags) (string, error) {
	if f.credFD > 0 {
		file := os.NewFile(uintptr(f.credFD), "credential")
		if file == nil {
			return "", fmt.Errorf("--credential-fd %d is not an open descriptor", f.credFD)
		}
		b, err := io.ReadAll(io.LimitReader(file, 4096))
		_ = file.Close()
		if err != nil {
			return "", fmt.Errorf("reading the credential from descriptor %d: %w", f.credFD, err)
		}
		cred := strings.TrimSpace(string(b))
		if cred == "" {
			return "", fmt.Errorf("descriptor %d held no credential", f.credFD)
		}
		return cred, nil
	}
	if f.credFile == "" {
		return "", errors.New("an agent credential is required: --credential-file (created by enrolling with --enroll-token-file; the operator token cannot run an agent)")
	}
	newClient := func(token string) (*client.Client, error) {
		return client.New(client.Config{Endpoint: f.endpoint, Token: token, CAFile: f.caFile, UserAgent: "crmsync-agent/" + version.Version})
	}
	cred, err := readSecretFile("--credential-file", f.credFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && f.enrollFile != "":
		token, err := readSecretFile("--enroll-token-file", f.enrollFile)
		if err != nil {
			return "", err
		}
		c, err := newClient(token)
		if err != nil {
			return "", err
		}
		host, _ := os.Hostname()
		ac, err := c.Enroll(ctx, api.EnrollRequest{Name: "agent@" + sanitizeName(host), Host: host})
		if err != nil {
			return "", fmt.Errorf("enrolling with --enroll-token-file (a token works once and expires): %w", err)
		}
		if err := writeSecretFile(f.credFile, ac.Credential); err != nil {
			return "", err
		}
		logger.Info("enrolled", "agent_id", ac.AgentID, "credential_file", f.credFile)
		return ac.Credential, nil
	case err != nil:
		return "", err
	}
	if !writable(f.credFile) {
		// A mounted secret (a Kubernetes Secret volume is read-only), shared by a pool's processes: a rotation
		// could not be saved, and one process's rotation would be lost to the others'. Revoke and re-enroll to
		// replace it (docs/scaling.md).
		logger.Info("the credential file is read-only: used as it is, not rotated", "credential_file", f.credFile)
		return cred, nil
	}
	// Rotate at every start: a credential lives no longer than the process that used it.
	c, err := newClient(cred)
	if err != nil {
		return "", err
	}
	nc, err := c.RotateCredential(ctx)
	if err != nil {
		if errors.Is(err, client.ErrUnauthenticated) {
			return "", fmt.Errorf("the credential in %s is refused (revoked?): enroll again: %w", f.credFile, err)
		}
		logger.Warn("rotating the agent credential failed; using the current one", "err", err)
		return cred, nil
	}
	if err := writeSecretFile(f.credFile, nc.Credential); err != nil {
		logger.Warn("saving the rotated credential failed; using the current one", "err", err)
		return cred, nil
	}
	return nc.Credential, nil
}

// writable reports whether the credential file can be replaced: its directory takes a new file and the file
// itself opens for writing (a read-only mount refuses both).
func writable(path string) bool {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_ = f.Close()
	probe, err := os.CreateTemp(filepath.Dir(path), ".crmsync-probe-*")
	if err != nil {
		return false
	}
	_ = probe.Close()
	return os.Remove(probe.Name()) == nil
}

// readSecretFile reads a credential file, refusing one group or others can read.
func readSecretFile(flag, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" && !statedir.OwnGroupOnly(fi) {
		return "", fmt.Errorf("%s %s has mode %04o: it must be readable by its owner only (chmod 600 %s)", flag, path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s %s is empty", flag, path)
	}
	return v, nil
}

// writeSecretFile replaces a credential file atomically, 0600, its directory created 0700.
func writeSecretFile(path, v string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sanitizeName keeps the characters an agent name may hold.
func sanitizeName(s string) string {
	out := []rune{}
	for _, r := range s {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r == ':' || r == '@' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return "host"
	}
	return string(out)
}

// agentOptions turns the agent's flags into agent.New options.
func agentOptions(allowReadableSecretFiles bool) []agent.Option {
	if allowReadableSecretFiles {
		return []agent.Option{agent.AllowReadableKeyFiles()}
	}
	return nil
}

// apiTokens reads the operator tokens: every non-empty line of the file, or CRMSYNC_TOKEN.
func apiTokens(tokenFile string) ([]string, error) {
	if tokenFile == "" {
		tok, err := apiToken("")
		return []string{tok}, err
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--token-file %s is empty", tokenFile)
	}
	return out, nil
}

// apiToken reads the control plane API token from a file (its first line), or CRMSYNC_TOKEN.
func apiToken(tokenFile string) (string, error) {
	if tokenFile != "" {
		ts, err := apiTokens(tokenFile)
		if err != nil {
			return "", err
		}
		return ts[0], nil
	}
	if tok := strings.TrimSpace(os.Getenv("CRMSYNC_TOKEN")); tok != "" {
		return tok, nil
	}
	return "", usageError("a control plane API token is required: --token-file or CRMSYNC_TOKEN")
}

func serveAgentHTTP(ctx context.Context, listen, connector string, status func() agent.Status, withPprof bool) (*http.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(connector, status))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status())
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q must be text or json", format)
}
