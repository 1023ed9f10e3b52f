package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Defaults of Config.
const (
	DefaultLeaseTTL     = 30 * time.Second
	DefaultMaxBodyBytes = 1 << 20
	// DefaultAgentMaxBodyBytes caps the agent protocol's bodies: a batch of dead letters carries the refused
	// rows, and a checkpoint the records to re-read, both larger than anything a person declares.
	DefaultAgentMaxBodyBytes = 32 << 20
	// RetentionWindow is how long Salesforce keeps change events: a replay position older than this cannot
	// resume and the table is re-synced.
	RetentionWindow = 72 * time.Hour
)

// Config configures a Server.
type Config struct {
	Store store.Store
	// Token is the API token every route except /healthz requires as "Authorization: Bearer <token>".
	Token string
	// Checker runs activation preflight and live validation; nil answers both with 503 unavailable.
	Checker Checker
	// Deployer is told about every change of a connector's desired state; nil when nothing deploys agents.
	Deployer Deployer
	// Safeguards runs backups and restores; nil answers their routes with 503 unavailable and activates
	// without a backup.
	Safeguards Safeguards
	Logger     *slog.Logger
	// LeaseTTL is how long an agent's lease lives without a heartbeat (30 s when zero).
	LeaseTTL time.Duration
	// MaxBodyBytes caps request bodies (1 MiB when zero); AgentMaxBodyBytes those of the agent protocol
	// (/v1/agent/..., 32 MiB when zero).
	MaxBodyBytes      int64
	AgentMaxBodyBytes int64
	// Version is reported by /healthz.
	Version string
	// Now is the clock status computations use (time.Now when nil); tests share it with the store's.
	Now func() time.Time
	// Hosts is the outbound destination policy: a connector naming a host it does not allow is refused at
	// declaration. The zero value allows the real services' hosts only.
	Hosts policy.Hosts
	// Refs is the reference policy: a *_env, *_file or ca_file reference outside it is refused at
	// declaration. The zero value allows no reference.
	Refs policy.Refs
}

// Server is the control plane's HTTP API (v1). Create it with New and serve Handler(); it holds no
// goroutines of its own, so there is nothing to stop besides the http.Server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	token   [32]byte
	routes  []route
	metrics *metrics
}

// route is one API operation; the router and the OpenAPI conformance test both read the table.
type route struct {
	method, path string
	public       bool // served without the token (only /healthz)
	handle       func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// routeTable lists every operation of the API.
var routeTable = []route{
	{method: "GET", path: "/healthz", public: true, handle: (*Server).health},
	{method: "GET", path: "/metrics", handle: (*Server).serveMetrics},
	{method: "POST", path: "/v1/connectors", handle: (*Server).createConnector},
	{method: "GET", path: "/v1/connectors", handle: (*Server).listConnectors},
	{method: "GET", path: "/v1/connectors/{id}", handle: (*Server).getConnector},
	{method: "PUT", path: "/v1/connectors/{id}", handle: (*Server).updateConnector},
	{method: "DELETE", path: "/v1/connectors/{id}", handle: (*Server).deleteConnector},
	{method: "POST", path: "/v1/connectors/{id}/mappings", handle: (*Server).createMapping},
	{method: "GET", path: "/v1/connectors/{id}/mappings", handle: (*Server).listMappings},
	{method: "GET", path: "/v1/mappings/{id}", handle: (*Server).getMapping},
	{method: "PUT", path: "/v1/mappings/{id}", handle: (*Server).updateMapping},
	{method: "DELETE", path: "/v1/mappings/{id}", handle: (*Server).deleteMapping},
	{method: "GET", path: "/v1/predefined-mappings/{source_table}", handle: (*Server).predefinedMappings},
	{method: "POST", path: "/v1/validate/mapping", handle: (*Server).validateMapping},
	{method: "POST", path: "/v1/validate/team", handle: (*Server).validateTeam},
	{method: "GET", path: "/v1/connectors/{id}/activation", handle: (*Server).getActivation},
	{method: "PUT", path: "/v1/connectors/{id}/activation", handle: (*Server).setActivation},
	{method: "GET", path: "/v1/connectors/{id}/status", handle: (*Server).status},
	{method: "GET", path: "/v1/connectors/{id}/dead-letters", handle: (*Server).listDeadLetters},
	{method: "POST", path: "/v1/connectors/{id}/dead-letters/retry", handle: (*Server).retryDeadLetters},
	{method: "POST", path: "/v1/connectors/{id}/dead-letters/discard", handle: (*Server).discardDeadLetters},
	{method: "GET", path: "/v1/audit", handle: (*Server).audit},
	{method: "POST", path: "/v1/connectors/{id}/backups", handle: (*Server).createBackup},
	{method: "GET", path: "/v1/backups", handle: (*Server).listBackups},
	{method: "GET", path: "/v1/backups/{id}", handle: (*Server).getBackup},
	{method: "POST", path: "/v1/backups/{id}/restore", handle: (*Server).restoreBackup},
	{method: "GET", path: "/v1/restores/{id}", handle: (*Server).getRestore},
	{method: "POST", path: "/v1/connectors/{id}/reconcile", handle: (*Server).reconcile},
	{method: "POST", path: "/v1/agent/leases", handle: (*Server).acquireLease},
	{method: "POST", path: "/v1/agent/leases/{id}/heartbeat", handle: (*Server).heartbeat},
	{method: "DELETE", path: "/v1/agent/leases/{id}", handle: (*Server).releaseLease},
	{method: "GET", path: "/v1/agent/leases/{id}/checkpoints/{table}", handle: (*Server).loadCheckpoint},
	{method: "PUT", path: "/v1/agent/leases/{id}/checkpoints/{table}", handle: (*Server).saveCheckpoint},
	{method: "POST", path: "/v1/agent/leases/{id}/dead-letters", handle: (*Server).addDeadLetters},
	{method: "GET", path: "/v1/agent/leases/{id}/dead-letters", handle: (*Server).retryableDeadLetters},
	{method: "POST", path: "/v1/agent/leases/{id}/dead-letters/resolve", handle: (*Server).resolveDeadLetter},
}

// New checks the configuration and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("controlplane: a Store is required")
	}
	if cfg.Token == "" {
		return nil, errors.New("controlplane: an API token is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.AgentMaxBodyBytes <= 0 {
		cfg.AgentMaxBodyBytes = DefaultAgentMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), token: sha256.Sum256([]byte(cfg.Token)), routes: routeTable}
	s.metrics = newMetrics(s)
	for _, rt := range s.routes {
		h := rt.handle
		s.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if err := h(s, w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	return s, nil
}

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveHTTP wraps every request: route lookup, authentication, body cap, metrics and the request log (which
// never holds headers or bodies, so neither the token nor a secret can reach it).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h, pattern := s.mux.Handler(r)
	route := pattern
	if route == "" {
		route = "unmatched"
	}
	defer s.finish(r, sw, route, start)
	sw.Header().Set("Cache-Control", "no-store")
	if pattern != "GET /healthz" && !s.authorized(r) {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="crmsync"`)
		s.writeError(sw, r, errorf(http.StatusUnauthorized, CodeUnauthenticated, "", "unauthenticated"))
		return
	}
	if pattern == "" {
		// No route: run the mux's own 404/405 answer into a recorder to learn which, and answer in the API's
		// error shape.
		rec := &headerRecorder{h: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			sw.Header().Set("Allow", rec.h.Get("Allow"))
			s.writeError(sw, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.h.Get("Allow")))
			return
		}
		s.writeError(sw, r, errorf(http.StatusNotFound, CodeNotFound, "", "no route %s %s", r.Method, r.URL.Path))
		return
	}
	limit := s.cfg.MaxBodyBytes
	if strings.HasPrefix(r.URL.Path, "/v1/agent/") {
		limit = s.cfg.AgentMaxBodyBytes
	}
	if r.ContentLength > limit {
		s.writeError(sw, r, errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "", "the request body is larger than %d bytes", limit))
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, limit)
	s.mux.ServeHTTP(sw, r)
}

// finish is deferred by serveHTTP: it turns a panic into a 500 (recover works because finish is the deferred
// call itself), then records the request's metrics and log line.
func (s *Server) finish(r *http.Request, sw *statusWriter, route string, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared, as net/http does
			panic(v)
		}
		s.log.ErrorContext(r.Context(), "handler panicked", "route", route, "panic", fmt.Sprint(v))
		if sw.status == 0 {
			s.writeError(sw, r, errorf(http.StatusInternalServerError, CodeInternal, "", "internal error"))
		}
	}
	if sw.status == 0 {
		sw.status = http.StatusOK // a handler that wrote nothing answered 200
	}
	elapsed := time.Since(start)
	s.metrics.observe(route, sw.status, elapsed)
	level := slog.LevelInfo
	if sw.status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "request", "method", r.Method, "route", route, "status", sw.status,
		"duration_ms", float64(elapsed.Microseconds())/1000, "remote", r.RemoteAddr)
}

// headerRecorder captures a status and headers, discarding the body.
type headerRecorder struct {
	h      http.Header
	status int
}

func (r *headerRecorder) Header() http.Header { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *headerRecorder) WriteHeader(code int) { r.status = code }

// authorized compares the bearer token in constant time (hashes first, so the length does not leak either).
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" { // the scheme is case-insensitive (RFC 7235)
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}

func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// writeError answers with the API's error shape; errors that are not refusals become 500 internal, logged
// here and not echoed (they may name internals).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		if ctxErr := r.Context().Err(); ctxErr != nil {
			ae = errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "the request was cancelled")
		} else {
			s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = errorf(http.StatusInternalServerError, CodeInternal, "", "internal error")
		}
	}
	writeJSON(w, ae.status, api.ErrorBody{Error: ae.body})
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: s.cfg.Version})
	return nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: slogPromLogger{s.log}}).ServeHTTP(w, r)
	return nil
}

// slogPromLogger adapts slog to promhttp's logger.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("metrics", "err", fmt.Sprint(v...)) }
