package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/pool"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
)

// runPoolAgent is pool mode: `crmsync agent --control-plane URL[,URL…]` without --connector.
func runPoolAgent(ctx context.Context, logger *slog.Logger, f remoteFlags, maxConnectors int, opts []agent.Option) error {
	c, err := agentClient(ctx, logger, f)
	if err != nil {
		return err
	}
	engines := &poolEngines{byID: map[string]remote.Engine{}}
	if f.listen != "" {
		srv, addr, err := engines.serve(ctx, f.listen)
		if err != nil {
			return err
		}
		defer srv.Close()
		logger.Info("pool agent serving /status and /metrics", "http", "http://"+addr)
	}
	return pool.Run(ctx, pool.Options{
		Client: c, MaxConnectors: maxConnectors, Logger: logger,
		Remote:   remote.Options{AgentOptions: opts},
		OnChange: engines.changed,
		Run: func(ctx context.Context, o remote.Options) error {
			id := o.ConnectorID
			o.OnStart = func(e remote.Engine) { engines.started(id, e) }
			return remote.Run(ctx, o)
		},
	})
}

// poolEngines are the engines a pool agent runs, for /status and /metrics.
type poolEngines struct {
	mu   sync.Mutex
	byID map[string]remote.Engine
}

func (p *poolEngines) started(id string, e remote.Engine) {
	p.mu.Lock()
	p.byID[id] = e
	p.mu.Unlock()
}

func (p *poolEngines) changed(id string, running bool) {
	if !running {
		p.mu.Lock()
		delete(p.byID, id)
		p.mu.Unlock()
	}
}

func (p *poolEngines) snapshot() map[string]remote.Engine {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]remote.Engine, len(p.byID))
	for id, e := range p.byID {
		out[id] = e
	}
	return out
}

// Describe implements prometheus.Collector: none, the series depend on the connectors running (an unchecked
// collector).
func (p *poolEngines) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector: every running connector's sync metrics.
func (p *poolEngines) Collect(ch chan<- prometheus.Metric) {
	for id, e := range p.snapshot() {
		name := id
		if n, ok := e.(interface{ ConnectorName() string }); ok && n.ConnectorName() != "" {
			name = n.ConnectorName()
		}
		agent.NewCollector(name, e.Status).Collect(ch)
	}
}

// serve serves /status (every running connector's status, by ID) and /metrics.
func (p *poolEngines) serve(ctx context.Context, listen string) (*http.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]agent.Status{}
		for id, e := range p.snapshot() {
			out[id] = e.Status()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"connectors": out})
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}
