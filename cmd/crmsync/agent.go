package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
)

func newAgentCommand() *cobra.Command {
	var (
		configFile string
		stateDir   string
		listen     string
		logFormat  string
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "agent --config FILE --state-dir DIR",
		Short: "Run one connector's sync: initial load, then change data capture",
		Long: `Runs one connector without a control plane: reads the connector from a JSON or YAML file (see
docs/agent.md), keeps checkpoints, dead letters and status in DIR/agent.db, logs structured lines, and serves
/status (JSON) and /metrics (Prometheus) on --listen. Credentials are referenced in the file by environment
variable (*_env) or file (*_file) and read on this host.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" || stateDir == "" {
				return errors.New("--config and --state-dir are required")
			}
			logger, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
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
			a, err := agent.New(*cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, logger)
			if err != nil {
				return err
			}
			srv, addr, err := serveAgentHTTP(cmd.Context(), listen, a)
			if err != nil {
				return err
			}
			defer srv.Close()
			logger.Info("agent started", "connector", cfg.Connector, "tables", len(cfg.Tables), "http", "http://"+addr)
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "connector configuration file (JSON or YAML)")
	f.StringVar(&stateDir, "state-dir", "", "directory for the local state database (created if missing)")
	f.StringVar(&listen, "listen", "127.0.0.1:9464", "address for /status and /metrics (port 0 picks one)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func serveAgentHTTP(ctx context.Context, listen string, a *agent.Agent) (*http.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(a.Status))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
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
