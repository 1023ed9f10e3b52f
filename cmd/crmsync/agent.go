package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof" //nolint:gosec // G108: served only with --pprof, on our own mux, never on the default one
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

func newAgentCommand() *cobra.Command {
	var (
		configFile   string
		stateDir     string
		listen       string
		logFormat    string
		logLevel     string
		controlPlane string
		connectorID  string
		tokenFile    string
		caFile       string
		withPprof    bool
		allowLoose   bool
		allowHosts   []string
	)
	cmd := &cobra.Command{
		Use:   "agent (--config FILE --state-dir DIR | --control-plane URL --connector ID)",
		Short: "Run one connector's sync: initial load, then change data capture",
		Long: `Runs one connector's sync.

Standalone (--config, --state-dir): reads the connector from a JSON or YAML file (see docs/agent.md), keeps
checkpoints, dead letters and status in DIR/agent.db, logs structured lines, and serves /status (JSON) and
/metrics (Prometheus) on --listen. Credentials are referenced in the file by environment variable (*_env) or
file (*_file) and read on this host.

Under a control plane (--control-plane, --connector): leases the connector through the control plane's API
(waiting while another live agent holds it), runs it at the lease's revision with checkpoints, dead letters
and status kept by the control plane, and heartbeats. It drains, commits and exits 0 when the connector is
deactivated or a newer revision is desired (the supervisor of crmsync serve then starts the new one), and
exits non-zero at once when its lease is lost. The API token comes from --token-file or CRMSYNC_TOKEN, never
from the command line. /status and /metrics are served only when --listen is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			if controlPlane != "" || connectorID != "" {
				if configFile != "" || stateDir != "" {
					return errors.New("--config and --state-dir are for standalone mode; under a control plane the configuration and state come from it")
				}
				if controlPlane == "" || connectorID == "" {
					return errors.New("--control-plane and --connector go together")
				}
				if !cmd.Flags().Changed("listen") {
					listen = ""
				}
				if len(allowHosts) > 0 {
					return errors.New("--allow-host is for standalone mode; under a control plane the destination policy comes from it (crmsync serve --allow-host)")
				}
				return runRemoteAgent(cmd.Context(), logger, controlPlane, connectorID, tokenFile, caFile, listen, agentOptions(allowLoose))
			}
			if configFile == "" || stateDir == "" {
				return errors.New("--config and --state-dir are required (or --control-plane and --connector)")
			}
			cfg, err := agent.LoadConfig(configFile)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(stateDir, 0o700); err != nil {
				return err
			}
			store, err := localstore.Open(stateDir)
			if err != nil {
				return err
			}
			defer store.Close()
			for _, p := range allowHosts {
				if err := policy.ParseHostPattern(p); err != nil {
					return fmt.Errorf("--allow-host: %w", err)
				}
			}
			// Standalone, the file is its operator's: its references are resolved as written (the API token's
			// variable aside), its destinations are the real services' plus --allow-host.
			opts := append(agentOptions(allowLoose), agent.WithPolicy(policy.Hosts{Allow: allowHosts}, policy.Refs{Unrestricted: true}))
			a, err := agent.New(*cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, logger, opts...)
			if err != nil {
				return err
			}
			srv, addr, err := serveAgentHTTP(cmd.Context(), listen, a.ConnectorName(), a.Status, withPprof)
			if err != nil {
				return err
			}
			defer srv.Close()
			logger.Info("agent started", "connector", cfg.Connector, "tables", len(cfg.Tables), "http", "http://"+addr)
			return a.Run(cmd.Context())
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
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "connector configuration file (JSON or YAML)")
	f.StringVar(&stateDir, "state-dir", "", "directory for the local state database (created if missing)")
	f.StringVar(&listen, "listen", "127.0.0.1:9464", "address for /status and /metrics (port 0 picks one; under a control plane only when given)")
	f.StringVar(&controlPlane, "control-plane", "", "control plane URL, e.g. https://crmsync.internal:8787 (control-plane mode)")
	f.StringVar(&connectorID, "connector", "", "ID of the connector to run (control-plane mode)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the control plane API token (default: $CRMSYNC_TOKEN)")
	f.StringVar(&caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&allowHosts, "allow-host", nil, "standalone mode: a host the file may name besides the real services' (127.0.0.1, *.internal.example, host:port); repeatable")
	f.BoolVar(&allowLoose, "allow-readable-secret-files", false, "accept secret files (private_key_file, client_secret_file) that group or others can read; refused otherwise")
	f.BoolVar(&withPprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on --listen (standalone mode; keep --listen on loopback)")
	return cmd
}

// runRemoteAgent is control-plane mode: remote.Run with a client built from the flags.
func runRemoteAgent(ctx context.Context, logger *slog.Logger, endpoint, connectorID, tokenFile, caFile, listen string, opts []agent.Option) error {
	token, err := apiToken(tokenFile)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{Endpoint: endpoint, Token: token, CAFile: caFile, UserAgent: "crmsync-agent/" + version.Version})
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
		Client: c, ConnectorID: connectorID, Logger: logger, AgentOptions: opts,
		OnStart: func(e remote.Engine) {
			if listen == "" {
				return
			}
			var addr string
			var err error
			// The lease's configuration names the connector; an engine that cannot say labels with the ID.
			name := connectorID
			if n, ok := e.(interface{ ConnectorName() string }); ok && n.ConnectorName() != "" {
				name = n.ConnectorName()
			}
			if srv, addr, err = serveAgentHTTP(ctx, listen, name, e.Status, false); err != nil {
				logger.Error("cannot serve /status and /metrics", "err", err)
				return
			}
			logger.Info("agent started", "connector_id", connectorID, "http", "http://"+addr)
		},
	})
}

// agentOptions turns the agent's flags into agent.New options.
func agentOptions(allowReadableSecretFiles bool) []agent.Option {
	if allowReadableSecretFiles {
		return []agent.Option{agent.AllowReadableKeyFiles()}
	}
	return nil
}

// apiToken reads the control plane API token from a file, or CRMSYNC_TOKEN.
func apiToken(tokenFile string) (string, error) {
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--token-file %s is empty", tokenFile)
		}
		return tok, nil
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
