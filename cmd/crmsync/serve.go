package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/backupjobs"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/supervisor"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// HTTP server timeouts of the control plane. Writes get the longest: activation runs preflight checks
// against Salesforce and Dataverse (bounded at 2 minutes by the server).
const (
	serveReadHeaderTimeout = 10 * time.Second
	serveReadTimeout       = time.Minute
	serveWriteTimeout      = 3 * time.Minute
	serveIdleTimeout       = 2 * time.Minute
	serveShutdownTimeout   = 30 * time.Second
)

type serveOptions struct {
	dataDir        string
	listen         string
	tlsCert        string
	tlsKey         string
	tokenFile      string
	insecureListen bool
	localAgents    bool
	agentCAFile    string
	leaseTTL       time.Duration
	logFormat      string
	logLevel       string
	allowHosts     []string
	allowRefDirs   []string
	allowRefEnv    []string
	storeURL       string
	keyFile        string
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --data-dir DIR",
		Short: "Run the control plane: the REST API, its store and the local agents of active connectors",
		Long: `Runs the crmsync control plane: the REST API (v1, docs/api/openapi.yaml) that the Terraform provider and
agents talk to, with its state in DIR (SQLite; inline secrets encrypted under DIR/secret.key), and a supervisor
that starts a local 'crmsync agent' for every active connector and restarts it when it dies.

The operator token comes from --token-file (one token per line, all valid; SIGHUP re-reads the file, so a
token rotates without a restart) or CRMSYNC_TOKEN; the service refuses to start without one. Agents do not
use it: local agents get an identity of their own through an inherited pipe, remote agents enroll with a
token from 'crmsync agents enroll-token', served on DATA_DIR/crmsync.sock. It refuses
to listen on a non-loopback address without TLS (--tls-cert and --tls-key) unless --insecure-listen is given.
SIGTERM or SIGINT stops it cleanly: agents drain and commit first, then the API stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "directory of the control plane's state (created if missing)")
	f.StringVar(&o.storeURL, "store", "", "the store: sqlite://DIR (default: SQLite in --data-dir) or postgres://USER@HOST:PORT/DB?sslmode=verify-full (several replicas on one database; the password from PGPASSWORD or ~/.pgpass; default: $CRMSYNC_STORE)")
	f.StringVar(&o.keyFile, "key-file", "", "the key the connectors' inline secrets are encrypted with (default: DATA_DIR/secret.key; every replica needs the same one)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8787", "address of the API (port 0 picks one)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM) of the API")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM) of the API")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the operator token(s), one per line; SIGHUP re-reads it (default: $CRMSYNC_TOKEN)")
	f.BoolVar(&o.insecureListen, "insecure-listen", false, "allow plain HTTP on a non-loopback address (the token then crosses the network in clear)")
	f.BoolVar(&o.localAgents, "local-agents", true, "start and supervise a local agent for every active connector (false: agents are started elsewhere)")
	f.StringVar(&o.agentCAFile, "agent-ca-file", "", "CA certificate (PEM) local agents trust for the API (default: --tls-cert, for a self-signed certificate)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", controlplane.DefaultLeaseTTL, "how long an agent's lease lives without a heartbeat")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&o.allowHosts, "allow-host", nil, "a host connectors may name besides the real services' (127.0.0.1, *.internal.example, crm.example.com:8443); repeatable")
	f.StringArrayVar(&o.allowRefDirs, "allow-ref-dir", nil, "a directory whose files *_file and ca_file references may name (resolved by the agents); repeatable; none by default")
	f.StringArrayVar(&o.allowRefEnv, "allow-ref-env-prefix", nil, "a prefix *_env references may start with (resolved by the agents); repeatable; none by default")
	return cmd
}

// policies builds the destination and reference policies from the flags. The data directory, the token file
// and the token's variable are refused as references whatever is allowed.
func policies(o serveOptions) (policy.Hosts, policy.Refs, error) {
	for _, p := range o.allowHosts {
		if err := policy.ParseHostPattern(p); err != nil {
			return policy.Hosts{}, policy.Refs{}, fmt.Errorf("--allow-host: %w", err)
		}
	}
	canon := func(p string) (string, error) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		// A directory reached through a link is compared as what it is: a file's links are resolved too.
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			return real, nil
		}
		return abs, nil
	}
	refs := policy.Refs{EnvPrefixes: o.allowRefEnv, DenyEnv: []string{policy.TokenEnv}}
	for _, d := range o.allowRefDirs {
		if !filepath.IsAbs(d) {
			return policy.Hosts{}, policy.Refs{}, fmt.Errorf("--allow-ref-dir %s must be an absolute path", d)
		}
		c, err := canon(d)
		if err != nil {
			return policy.Hosts{}, policy.Refs{}, err
		}
		refs.Dirs = append(refs.Dirs, c)
	}
	for _, p := range o.allowRefEnv {
		if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return policy.Hosts{}, policy.Refs{}, fmt.Errorf("--allow-ref-env-prefix %q is not the start of a variable name", p)
		}
	}
	for _, p := range []string{o.dataDir, o.tokenFile} {
		if p == "" {
			continue
		}
		c, err := canon(p)
		if err != nil {
			return policy.Hosts{}, policy.Refs{}, err
		}
		refs.DenyPaths = append(refs.DenyPaths, c)
	}
	return policy.Hosts{Allow: o.allowHosts}, refs, nil
}

// openStore opens the store --store names: SQLite in the data directory by default, or PostgreSQL.
func openStore(ctx context.Context, o serveOptions) (*store.SQLite, error) {
	u := o.storeURL
	if u == "" {
		u = strings.TrimSpace(os.Getenv("CRMSYNC_STORE"))
	}
	switch {
	case u == "" || u == "sqlite://":
		if o.keyFile != "" {
			return nil, errors.New("--key-file is for the PostgreSQL store; with SQLite the key is DATA_DIR/secret.key")
		}
		return store.OpenSQLite(o.dataDir) //nolint:contextcheck // opening runs the migrations to completion; not cancellable
	case strings.HasPrefix(u, "sqlite://"):
		if o.keyFile != "" {
			return nil, errors.New("--key-file is for the PostgreSQL store; with SQLite the key is in the store's directory")
		}
		return store.OpenSQLite(strings.TrimPrefix(u, "sqlite://")) //nolint:contextcheck // as above
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return store.OpenPostgres(ctx, store.PostgresOptions{URL: u, Dir: o.dataDir, KeyFile: o.keyFile})
	}
	return nil, fmt.Errorf("--store must be sqlite://DIR or postgres://…, not %q", redactURL(u))
}

// redactURL hides a URL's password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// SocketFile is the control plane's local socket inside its data directory.
const SocketFile = "crmsync.sock"

// serveAdmin serves the admin routes on DATA_DIR/crmsync.sock (mode 0600, in the 0700 data directory held
// by this process: a socket left by a crashed serve is replaced).
func serveAdmin(ctx context.Context, dataDir string, srv *controlplane.Server, logger *slog.Logger) (*http.Server, error) {
	path := filepath.Join(dataDir, SocketFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing a stale %s: %w", path, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("the local socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, err
	}
	hs := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: serveReadHeaderTimeout,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() { _ = hs.Serve(ln) }()
	return hs, nil
}

// checkListen refuses plain HTTP on a non-loopback address unless insecure is set.
func checkListen(listen string, tlsOn, insecure bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q is not host:port: %w", listen, err)
	}
	if tlsOn || insecure {
		return nil
	}
	if api.IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("--listen %s is not a loopback address: give --tls-cert and --tls-key, or --insecure-listen to send the API token in clear", listen)
}

func runServe(ctx context.Context, cmd *cobra.Command, o serveOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	tokens, err := apiTokens(o.tokenFile)
	if err != nil {
		return err
	}
	hosts, refs, err := policies(o)
	if err != nil {
		return err
	}
	logger, err := newLogger(o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	defer st.Close() //nolint:contextcheck // Close writes the reports the store holds under its own deadline: the serve context is done by then
	ln, url, agentURL, err := o.listenAPI(ctx)
	if err != nil {
		return err
	}

	var deployer controlplane.Deployer
	var sup *supervisor.Supervisor
	if o.localAgents {
		sup = o.newSupervisor(st, agentURL, refs, logger)
		deployer = sup
	}
	checker, err := o.newChecker(hosts, refs, logger)
	if err != nil {
		return err
	}
	safe, stopSafe, err := startBackupJobs(ctx, o, st, deployer, hosts, refs, logger)
	if err != nil {
		return err
	}
	defer func() { stopSafe(); safe.Wait() }()

	srv, err := controlplane.New(controlplane.Config{
		Store: st, Tokens: tokens, Checker: checker, Deployer: deployer, Safeguards: safe, Logger: logger,
		LeaseTTL: o.leaseTTL, Version: version.Version, Hosts: hosts, Refs: refs,
	})
	if err != nil {
		return err
	}
	httpSrv := newAPIServer(srv, logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	// The local socket serves the admin routes (enrollment tokens, agent identities) to whoever can reach
	// the data directory: `crmsync agents …` on this host.
	adminSrv, err := serveAdmin(ctx, o.dataDir, srv, logger)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	defer adminSrv.Close()
	if o.tokenFile != "" {
		defer reloadTokensOnHUP(o.tokenFile, srv, logger)()
	}
	fmt.Fprintf(cmd.OutOrStdout(), "crmsync control plane listening on %s (data in %s)\n", url, o.dataDir)
	logger.Info("control plane started", "url", url, "data_dir", o.dataDir, "local_agents", o.localAgents, "version", version.Version)

	return runUntilStopped(ctx, logger, serveErr, sup, func() { stopSafe(); safe.Wait() }, httpSrv)
}

// runUntilStopped runs the supervisor until ctx ends or the API fails, then stops everything in order: the
// agents drain and commit through the API, so the supervisor stops them (and waits) first, then the backup
// jobs, then the API.
func runUntilStopped(ctx context.Context, logger *slog.Logger, serveErr <-chan error, sup *supervisor.Supervisor, stopJobs func(), httpSrv *http.Server) error {
	supCtx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	supDone := make(chan error, 1)
	if sup != nil {
		go func() { supDone <- sup.Run(supCtx) }()
	} else {
		supDone <- nil
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		runErr = fmt.Errorf("serving the API: %w", runErr)
	}
	logger.Info("control plane stopping")
	stopSup()
	if err := <-supDone; err != nil && runErr == nil {
		runErr = err
	}
	stopJobs()
	if err := shutdownAPI(ctx, httpSrv); err != nil && runErr == nil {
		runErr = err
	}
	logger.Info("control plane stopped")
	return runErr
}

// shutdownAPI stops the API server, letting requests in flight finish for serveShutdownTimeout.
func shutdownAPI(ctx context.Context, httpSrv *http.Server) error {
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("stopping the API: %w", err)
	}
	return nil
}

// startBackupJobs starts the backups and restores (backupjobs), their files under the data directory, with
// clients that resolve a connector's references only within the reference policy the operator gave. Jobs
// outlive the signal: they stop (stop, then Wait) after the agents.
func startBackupJobs(ctx context.Context, o serveOptions, st *store.SQLite, deployer controlplane.Deployer, hosts policy.Hosts, refs policy.Refs,
	logger *slog.Logger) (jobs *backupjobs.Manager, stop func(), err error) {
	clients := preflight.NewChecker(preflight.Config{Logger: logger, Hosts: hosts, Refs: refs})
	cfg := backupjobs.Config{Store: st, DataDir: o.dataDir, Clients: clients.Clients, Deployer: deployer, Logger: logger}
	if st.Shared() {
		// Replicas share the jobs: each backup and restore is run by the replica holding its claim.
		host, _ := os.Hostname()
		cfg.Claims, cfg.Holder = st, fmt.Sprintf("%s/%d/%s", host, os.Getpid(), store.NewID("")[:8])
	}
	jobs = backupjobs.New(cfg)
	jobsCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := jobs.Start(jobsCtx); err != nil {
		cancel()
		jobs.Wait()
		return nil, nil, err
	}
	return jobs, cancel, nil
}

// check refuses options that cannot work together, before anything is opened.
func (o serveOptions) check() error {
	if o.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := checkListen(o.listen, o.tlsCert != "", o.insecureListen); err != nil {
		return err
	}
	if fe := api.LeaseTTLBound.Check("--lease-ttl", o.leaseTTL); fe != nil || o.leaseTTL <= 0 {
		return fmt.Errorf("--lease-ttl %s is out of range: it must be from %s to %s", o.leaseTTL, api.LeaseTTLBound.Min, api.LeaseTTLBound.Max)
	}
	return nil
}

// listenAPI opens the API's listener (TLS when a certificate is given) and returns it with the API's URL and
// the URL local agents use: loopback, even when the API listens on every interface.
func (o serveOptions) listenAPI(ctx context.Context) (ln net.Listener, url, agentURL string, err error) {
	var tlsCfg *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, "", "", fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	var lc net.ListenConfig
	if ln, err = lc.Listen(ctx, "tcp", o.listen); err != nil {
		return nil, "", "", fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsCfg)
	}
	addr := ln.Addr().(*net.TCPAddr)
	url = fmt.Sprintf("%s://%s", scheme, addr)
	agentURL = url
	if addr.IP.IsUnspecified() {
		agentURL = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort("127.0.0.1", fmt.Sprint(addr.Port)))
	}
	return ln, url, agentURL, nil
}

// newSupervisor runs the local agents (--local-agents).
func (o serveOptions) newSupervisor(st *store.SQLite, agentURL string, refs policy.Refs, logger *slog.Logger) *supervisor.Supervisor {
	caFile := o.agentCAFile
	if caFile == "" {
		caFile = o.tlsCert
	}
	host, _ := os.Hostname()
	return supervisor.New(supervisor.Config{
		Store: st, ControlPlaneURL: agentURL, CAFile: caFile, Logger: logger,
		// Each local agent process gets an identity of its own for its connector, revoked when it exits.
		Credentials: func(ctx context.Context, connectorID string) (api.AgentCredential, error) {
			return st.CreateLocalAgent(ctx, connectorID, "local:"+connectorID, host)
		},
		Revoke: func(ctx context.Context, agentID string) {
			if err := st.RevokeAgent(ctx, agentID, "supervisor"); err != nil && !errors.Is(err, store.ErrNotFound) {
				logger.Warn("revoking a local agent's identity", "agent_id", agentID, "err", err)
			}
		},
		AgentArgs: []string{"--log-format", o.logFormat, "--log-level", o.logLevel},
		// Local agents see only the variables the reference policy allows (and what a program needs).
		Environ: refs.Environ,
	})
}

// newChecker is the preflight (preflight.Dispatcher): connectors with inline credentials only are checked
// here, toward the hosts the destination policy allows; connectors with references are checked agent-side,
// by a one-shot `crmsync agent preflight` with a local agent's environment and policy, so this process never
// resolves a reference. Without local agents, the checks needing a reference are warnings for the remote
// agent.
func (o serveOptions) newChecker(hosts policy.Hosts, refs policy.Refs, logger *slog.Logger) (*preflight.Dispatcher, error) {
	checker := &preflight.Dispatcher{Local: preflight.NewChecker(preflight.Config{Logger: logger, Hosts: hosts}), Hosts: hosts, Refs: refs}
	if o.localAgents {
		bin, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the crmsync binary for the agent-side preflight: %w", err)
		}
		checker.Agent = preflight.ExecAgent(bin, refs.Environ(os.Environ()), logger)
	}
	return checker, nil
}

// newAPIServer is the API's HTTP server, with its timeouts and bounds.
func newAPIServer(srv *controlplane.Server, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: serveReadHeaderTimeout,
		ReadTimeout:       serveReadTimeout,
		WriteTimeout:      serveWriteTimeout,
		IdleTimeout:       serveIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// reloadTokensOnHUP re-reads the token file on SIGHUP, so operator tokens rotate without a restart; the
// returned function stops it.
func reloadTokensOnHUP(tokenFile string, srv *controlplane.Server, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			ts, err := apiTokens(tokenFile)
			if err == nil {
				err = srv.SetTokens(ts)
			}
			if err != nil {
				logger.Error("reloading the token file: the current tokens stay valid", "err", err)
				continue
			}
			logger.Info("token file reloaded", "tokens", len(ts))
		}
	}()
	return func() { signal.Stop(hup) }
}
