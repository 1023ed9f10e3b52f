package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Defaults of Config.
const (
	// DefaultLeaseTTL is how long a lease lives without a heartbeat (agents renew every third of it). A dead
	// agent's connectors move after about this plus one pool check-in and a start: 20 s keeps that under
	// 30 s (docs/scaling.md), while three missed heartbeats in a row are still needed to lose a lease.
	DefaultLeaseTTL     = 20 * time.Second
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
	// Token is the operator token: the public API's routes require it as "Authorization: Bearer <token>".
	// Tokens are more operator tokens valid at the same time (rotation); SetTokens replaces them all.
	Token  string
	Tokens []string
	// Checker runs activation preflight and live validation; nil answers both with 503 unavailable.
	Checker Checker
	// Deployer is told about every change of a connector's desired state; nil when nothing deploys agents.
	Deployer Deployer
	// Safeguards runs backups and restores; nil answers their routes with 503 unavailable and activates
	// without a backup.
	Safeguards Safeguards
	Logger     *slog.Logger
	// LeaseTTL is how long an agent's lease lives without a heartbeat (DefaultLeaseTTL when zero).
	LeaseTTL time.Duration
	// PoolInterval is how often pool agents check in (DefaultPoolInterval when zero); a member not seen for
	// max(LeaseTTL, 3 intervals) leaves the pool.
	PoolInterval time.Duration
	// MaxBodyBytes caps request bodies (1 MiB when zero); AgentMaxBodyBytes those of the agent protocol
	// (/v1/agent/..., 32 MiB when zero).
	MaxBodyBytes      int64
	AgentMaxBodyBytes int64
	// Version is reported by /healthz.
	Version string
	// AgentAuthCache is how long this replica trusts an agent credential it checked (DefaultAgentAuthCache
	// when zero, no cache when negative): a revocation through another replica takes effect here within it.
	AgentAuthCache time.Duration
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
	tokens  atomic.Pointer[[][32]byte] // SHA-256 of the valid operator tokens
	routes  []route
	byPath  map[string]route // by mux pattern
	metrics *metrics
	// sessions are the status page's signed-in sessions (ui.go).
	sessions sessions
	// agentAuth are the agent credentials checked recently (authcache.go).
	agentAuth agentAuthCache
}

// role is who may call a route. Each credential has one role and reaches only its routes: the operator token
// never reaches the agent protocol (which hands out secrets), an agent credential never the public API.
type role int

const (
	rolePublic   role = iota // no credential (/healthz)
	roleOperator             // the operator token: the public API
	roleAgent                // an agent credential: the agent protocol, for its own leases
	roleEnroll               // an enrollment token: POST /v1/agent/enroll, once
	roleAdmin                // the control plane's local socket (host access): enrollment tokens, agent identities
)

// route is one API operation; the router and the OpenAPI conformance test both read the table.
type route struct {
	method, path string
	role         role
	handle       func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// getOne answers the GET of one stored thing: the ID in the path (of prefix's kind), read from the store with
// get (a method expression such as store.Store.GetConnector).
func getOne[T any](prefix string, get func(store.Store, context.Context, string) (T, error)) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, prefix)
		if err != nil {
			return err
		}
		v, err := get(s.cfg.Store, r.Context(), id)
		if err != nil {
			return storeError(err, "id")
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

// routeTable lists every operation of the API.
var routeTable = []route{
	{method: "GET", path: "/healthz", role: rolePublic, handle: (*Server).health},
	// The status page: its files and its sign-in are public (they hold no data); the page then reads the
	// operator routes with a session cookie instead of the token (ui.go).
	{method: "GET", path: "/ui/", role: rolePublic, handle: (*Server).uiIndex},
	{method: "GET", path: "/ui/{file}", role: rolePublic, handle: (*Server).uiAsset},
	{method: "POST", path: "/ui/session", role: rolePublic, handle: (*Server).signIn},
	{method: "GET", path: "/ui/session", role: rolePublic, handle: (*Server).getSession},
	{method: "DELETE", path: "/ui/session", role: rolePublic, handle: (*Server).signOut},
	{method: "GET", path: "/v1/connectors/{id}/history", role: roleOperator, handle: (*Server).history},
	{method: "GET", path: "/metrics", role: roleOperator, handle: (*Server).serveMetrics},
	{method: "POST", path: "/v1/connectors", role: roleOperator, handle: (*Server).createConnector},
	{method: "GET", path: "/v1/connectors", role: roleOperator, handle: (*Server).listConnectors},
	{method: "GET", path: "/v1/connectors/{id}", role: roleOperator, handle: getOne(store.PrefixConnector, store.Store.GetConnector)},
	{method: "PUT", path: "/v1/connectors/{id}", role: roleOperator, handle: (*Server).updateConnector},
	{method: "DELETE", path: "/v1/connectors/{id}", role: roleOperator, handle: (*Server).deleteConnector},
	{method: "POST", path: "/v1/connectors/{id}/mappings", role: roleOperator, handle: (*Server).createMapping},
	{method: "GET", path: "/v1/connectors/{id}/mappings", role: roleOperator, handle: (*Server).listMappings},
	{method: "GET", path: "/v1/mappings/{id}", role: roleOperator, handle: getOne(store.PrefixMapping, store.Store.GetMapping)},
	{method: "PUT", path: "/v1/mappings/{id}", role: roleOperator, handle: (*Server).updateMapping},
	{method: "DELETE", path: "/v1/mappings/{id}", role: roleOperator, handle: (*Server).deleteMapping},
	{method: "GET", path: "/v1/predefined-mappings/{source_table}", role: roleOperator, handle: (*Server).predefinedMappings},
	{method: "POST", path: "/v1/validate/mapping", role: roleOperator, handle: (*Server).validateMapping},
	{method: "POST", path: "/v1/validate/team", role: roleOperator, handle: (*Server).validateTeam},
	{method: "GET", path: "/v1/connectors/{id}/activation", role: roleOperator, handle: getOne(store.PrefixConnector, store.Store.GetActivation)},
	{method: "PUT", path: "/v1/connectors/{id}/activation", role: roleOperator, handle: (*Server).setActivation},
	{method: "GET", path: "/v1/connectors/{id}/status", role: roleOperator, handle: (*Server).status},
	{method: "GET", path: "/v1/connectors/{id}/dead-letters", role: roleOperator, handle: (*Server).listDeadLetters},
	{method: "POST", path: "/v1/connectors/{id}/dead-letters/retry", role: roleOperator, handle: (*Server).retryDeadLetters},
	{method: "POST", path: "/v1/connectors/{id}/dead-letters/discard", role: roleOperator, handle: (*Server).discardDeadLetters},
	{method: "GET", path: "/v1/audit", role: roleOperator, handle: (*Server).audit},
	{method: "POST", path: "/v1/connectors/{id}/backups", role: roleOperator, handle: (*Server).createBackup},
	{method: "GET", path: "/v1/backups", role: roleOperator, handle: (*Server).listBackups},
	{method: "GET", path: "/v1/backups/{id}", role: roleOperator, handle: (*Server).getBackup},
	{method: "POST", path: "/v1/backups/{id}/restore", role: roleOperator, handle: (*Server).restoreBackup},
	{method: "GET", path: "/v1/restores/{id}", role: roleOperator, handle: getOne(store.PrefixRestore, store.Store.GetRestore)},
	{method: "POST", path: "/v1/connectors/{id}/reconcile", role: roleOperator, handle: (*Server).reconcile},
	{method: "POST", path: "/v1/agent/enroll", role: roleEnroll, handle: (*Server).enroll},
	{method: "POST", path: "/v1/agent/credential", role: roleAgent, handle: (*Server).rotateCredential},
	{method: "POST", path: "/v1/agent/pool", role: roleAgent, handle: (*Server).poolCheckIn},
	{method: "POST", path: "/v1/agent/leases", role: roleAgent, handle: (*Server).acquireLease},
	{method: "POST", path: "/v1/agent/leases/{id}/heartbeat", role: roleAgent, handle: (*Server).heartbeat},
	{method: "DELETE", path: "/v1/agent/leases/{id}", role: roleAgent, handle: (*Server).releaseLease},
	{method: "GET", path: "/v1/agent/leases/{id}/checkpoints/{table}", role: roleAgent, handle: (*Server).loadCheckpoint},
	{method: "PUT", path: "/v1/agent/leases/{id}/checkpoints/{table}", role: roleAgent, handle: (*Server).saveCheckpoint},
	{method: "POST", path: "/v1/agent/leases/{id}/dead-letters", role: roleAgent, handle: (*Server).addDeadLetters},
	{method: "GET", path: "/v1/agent/leases/{id}/dead-letters", role: roleAgent, handle: (*Server).retryableDeadLetters},
	{method: "POST", path: "/v1/agent/leases/{id}/dead-letters/resolve", role: roleAgent, handle: (*Server).resolveDeadLetter},
	{method: "POST", path: "/v1/admin/enrollments", role: roleAdmin, handle: (*Server).createEnrollment},
	{method: "GET", path: "/v1/admin/agents", role: roleAdmin, handle: (*Server).listAgents},
	{method: "DELETE", path: "/v1/admin/agents/{id}", role: roleAdmin, handle: (*Server).revokeAgent},
}

// New checks the configuration and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("controlplane: a Store is required")
	}
	tokens := append([]string{cfg.Token}, cfg.Tokens...)
	if cfg.Token == "" {
		tokens = cfg.Tokens
	}
	if err := checkTokens(tokens); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PoolInterval <= 0 {
		cfg.PoolInterval = DefaultPoolInterval
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
	if cfg.AgentAuthCache == 0 {
		cfg.AgentAuthCache = DefaultAgentAuthCache
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), routes: routeTable, byPath: map[string]route{}}
	_ = s.SetTokens(tokens)
	s.metrics = newMetrics(s)
	for _, rt := range s.routes {
		h := rt.handle
		s.byPath[rt.method+" "+rt.path] = rt
		s.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if err := h(s, w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	return s, nil
}

// checkTokens refuses an empty set of operator tokens, an empty one, and one that would read as another
// kind of credential.
func checkTokens(tokens []string) error {
	if len(tokens) == 0 {
		return errors.New("controlplane: an API token is required")
	}
	for _, t := range tokens {
		switch {
		case t == "":
			return errors.New("controlplane: an API token is empty")
		case strings.HasPrefix(t, store.PrefixAgent), strings.HasPrefix(t, store.PrefixEnrollment):
			return fmt.Errorf("controlplane: an operator token must not start with %s or %s (the forms of agent credentials and enrollment tokens)", store.PrefixAgent, store.PrefixEnrollment)
		}
	}
	return nil
}

// SetTokens replaces the valid operator tokens (crmsync serve re-reads its token file on SIGHUP): requests
// already authenticated go on, the next ones see the new set. Several tokens are valid at once, so a token
// is rotated without downtime: add the new one, move the clients, remove the old one.
func (s *Server) SetTokens(tokens []string) error {
	if err := checkTokens(tokens); err != nil {
		return err
	}
	sums := make([][32]byte, len(tokens))
	for i, t := range tokens {
		sums[i] = sha256.Sum256([]byte(t))
	}
	s.tokens.Store(&sums)
	return nil
}

// Handler returns the API's http.Handler (the TCP listener's).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// AdminHandler returns the handler of the control plane's local socket: the admin routes (enrollment
// tokens, agent identities), authorized by access to the socket, which lives in the 0700 data directory.
// It serves nothing else.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, true)))
	})
}

type adminKey struct{}

// principal is who made a request.
type principal struct {
	role  role
	agent api.AgentIdentity // roleAgent
	token string            // roleEnroll: the enrollment token
}

type principalKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

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
	rt, known := s.byPath[pattern]
	admin, _ := r.Context().Value(adminKey{}).(bool)
	switch {
	case admin:
		// The local socket serves the admin routes alone; access to it is the authorization.
		if !known || rt.role != roleAdmin {
			s.writeError(sw, r, errorf(http.StatusNotFound, CodeNotFound, "", "the local socket serves the admin routes only (/v1/admin/...)"))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{role: roleAdmin}))
	case known && rt.role == rolePublic:
	default:
		p, ok := s.authenticate(r)
		if !ok && known && rt.role == roleOperator && r.Header.Get("Authorization") == "" && s.sessionAuthorized(r) {
			// The status page's session cookie stands for the operator token it was opened with.
			p, ok = principal{role: roleOperator}, true
		}
		if !ok {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="crmsync"`)
			s.writeError(sw, r, errorf(http.StatusUnauthorized, CodeUnauthenticated, "", "unauthenticated"))
			return
		}
		if known && rt.role != p.role {
			s.writeError(sw, r, forbidden(rt.role))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
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

// authenticate finds who the bearer credential is: an agent credential (agt_…), an enrollment token (enr_…,
// checked when used) or an operator token, compared in constant time (hashes first, so the length does not
// leak either).
func (s *Server) authenticate(r *http.Request) (principal, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" { // the scheme is case-insensitive (RFC 7235)
		return principal{}, false
	}
	switch {
	case strings.HasPrefix(tok, store.PrefixAgent):
		// A lease grant hands out the connector's secrets: its credential is checked in the store.
		a, err := s.authenticateAgent(r.Context(), tok, r.Method == http.MethodPost && r.URL.Path == "/v1/agent/leases")
		if err != nil {
			if !errors.Is(err, store.ErrUnauthenticated) {
				s.log.ErrorContext(r.Context(), "authenticating an agent", "err", err)
			}
			return principal{}, false
		}
		return principal{role: roleAgent, agent: a}, true
	case strings.HasPrefix(tok, store.PrefixEnrollment):
		if _, _, ok := store.SplitCredential(store.PrefixEnrollment, tok); !ok {
			return principal{}, false
		}
		return principal{role: roleEnroll, token: tok}, true
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for _, t := range *s.tokens.Load() {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return principal{role: roleOperator}, match == 1
}

// forbidden answers a credential of the wrong kind for a route.
func forbidden(want role) *apiError {
	switch want {
	case roleAgent:
		return errorf(http.StatusForbidden, CodeForbidden, "", "the agent protocol needs an agent credential: agents enroll (docs/security.md); the operator token never takes a lease")
	case roleEnroll:
		return errorf(http.StatusForbidden, CodeForbidden, "", "enrollment needs an enrollment token (crmsync agents enroll-token, on the control plane's host)")
	case roleAdmin:
		return errorf(http.StatusForbidden, CodeForbidden, "", "this route is served on the control plane's local socket only (crmsync agents …, on its host)")
	}
	return errorf(http.StatusForbidden, CodeForbidden, "", "this route needs the operator token")
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
