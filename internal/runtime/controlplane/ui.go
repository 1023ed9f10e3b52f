package controlplane

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// The status page (/ui): static files embedded in the binary (no build step: plain HTML, CSS and JavaScript,
// with uPlot 1.6.32, MIT, vendored unmodified from the npm registry's package under ui/static/vendor/uplot),
// which read the API with a cookie session instead of the bearer token.
//
// Sign-in exchanges the operator's API token for a session: a random ID in an HttpOnly, SameSite=Strict
// cookie (Secure when served over TLS), and a CSRF token the page keeps in memory and sends as X-CSRF-Token
// with every request that changes something. The session reaches the operator's routes only, never the
// agent protocol; it ends after SessionIdle without a request, SessionMax after sign-in, on sign-out, and when
// the token it was opened with stops being accepted. Sessions live in memory: a restart signs everyone out.

//go:embed ui/static
var uiFiles embed.FS

// Session lifetimes.
const (
	SessionIdle = 2 * time.Hour
	SessionMax  = 12 * time.Hour
	// sessionCookie names the session's cookie.
	sessionCookie = "crmsync_session"
	// csrfHeader carries the session's CSRF token on requests that change something.
	csrfHeader = "X-CSRF-Token"
	// maxSessions bounds the sessions kept (the oldest goes first): sign-ins cannot grow memory unbounded.
	maxSessions = 1000
)

type session struct {
	csrf      string
	token     [32]byte // hash of the API token it was opened with
	created   time.Time
	lastSeen  time.Time
	expiresAt time.Time
}

// sessions is the server's table of UI sessions, by the SHA-256 of the cookie's value (the value itself is
// never kept, so a memory dump does not hand out live sessions).
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func (ss *sessions) open(token [32]byte, now time.Time) (id string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byID == nil {
		ss.byID = map[[32]byte]*session{}
	}
	for k, v := range ss.byID {
		if now.After(v.expiresAt) || now.Sub(v.lastSeen) > SessionIdle {
			delete(ss.byID, k)
		}
	}
	if len(ss.byID) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range ss.byID {
			if at.IsZero() || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(ss.byID, oldest)
	}
	id = randomHex(32)
	s = &session{csrf: randomHex(32), token: token, created: now, lastSeen: now, expiresAt: now.Add(SessionMax)}
	ss.byID[sha256.Sum256([]byte(id))] = s
	return id, s
}

// lookup returns the live session of a cookie value, touching it.
func (ss *sessions) lookup(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[key]
	if s == nil {
		return nil
	}
	if now.After(s.expiresAt) || now.Sub(s.lastSeen) > SessionIdle {
		delete(ss.byID, key)
		return nil
	}
	s.lastSeen = now
	return s
}

func (ss *sessions) close(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, sha256.Sum256([]byte(id)))
}

// sessionFor returns the request's live session (nil when none), checking that the token it was opened with
// is still accepted.
func (s *Server) sessionFor(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	sess := s.sessions.lookup(c.Value, time.Now())
	if sess == nil || !s.operatorToken(sess.token) {
		return nil
	}
	return sess
}

// operatorToken says whether the hash is one of the operator tokens accepted now (tokens rotate: a session
// opened with a token that was removed ends with it).
func (s *Server) operatorToken(sum [32]byte) bool {
	match := 0
	for _, t := range *s.tokens.Load() {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return match == 1
}

// sessionAuthorized says whether a request without a bearer token may go on with its session cookie (the
// server asks only for operator routes, never the agent protocol), and, when it changes something, with the
// session's CSRF token.
func (s *Server) sessionAuthorized(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/v1/agent/") {
		return false
	}
	sess := s.sessionFor(r)
	if sess == nil {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

// signIn exchanges the API token for a session (POST /ui/session).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	var req api.SignInRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(req.Token))
	if !s.operatorToken(sum) {
		s.log.WarnContext(r.Context(), "status page sign-in refused", "remote", r.RemoteAddr)
		return errorf(http.StatusUnauthorized, CodeUnauthenticated, "token", "this is not the control plane's API token")
	}
	id, sess := s.sessions.open(sum, time.Now())
	// Secure over TLS only: serve --insecure-listen speaks plain HTTP, where a Secure cookie is never sent back.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil, //nolint:gosec // G124: Secure whenever TLS is on (above)
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionMax.Seconds())})
	s.log.InfoContext(r.Context(), "status page signed in", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, api.UISession{CSRFToken: sess.csrf, ExpiresAt: sess.expiresAt.UTC()})
	return nil
}

// getSession answers the signed-in page's session again (a reload keeps no state but the cookie).
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	sess := s.sessionFor(r)
	if sess == nil {
		return errorf(http.StatusUnauthorized, CodeUnauthenticated, "", "not signed in")
	}
	writeJSON(w, http.StatusOK, api.UISession{CSRFToken: sess.csrf, ExpiresAt: sess.expiresAt.UTC()})
	return nil
}

// signOut ends the session (DELETE /ui/session) and clears the cookie.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.close(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil, //nolint:gosec // G124: as in signIn
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	noContent(w)
	return nil
}

// uiSecurityHeaders keep the page to itself: its own scripts and styles only, no framing, no referrer, no
// sniffing.
func uiSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func (s *Server) uiIndex(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path != "/ui/" { // the pattern /ui/ matches the whole subtree; only the page itself is here
		return errorf(http.StatusNotFound, CodeNotFound, "", "no route %s %s", r.Method, truncate(r.URL.Path, 200))
	}
	return serveUIFile(w, "index.html")
}

// uiAsset serves one file of the page: its own (ui/static) or uPlot's (ui/static/vendor/uplot), by name.
func (s *Server) uiAsset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "" || name != path.Base(name) || strings.HasPrefix(name, ".") {
		return errorf(http.StatusNotFound, CodeNotFound, "", "no file %s", truncate(name, 80))
	}
	return serveUIFile(w, name)
}

func serveUIFile(w http.ResponseWriter, name string) error {
	var b []byte
	var err error
	for _, dir := range []string{"ui/static/", "ui/static/vendor/uplot/"} {
		if b, err = fs.ReadFile(uiFiles, dir+name); err == nil {
			break
		}
	}
	if err != nil {
		return errorf(http.StatusNotFound, CodeNotFound, "", "no file %s", truncate(name, 80))
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	uiSecurityHeaders(w.Header())
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) //nolint:gosec // G705: the page's own embedded files, no request data in them
	return nil
}

// history answers the connector's recent reports (GET /v1/connectors/{id}/history?since=RFC3339).
func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return invalid("since", "since %q is not an RFC 3339 time", truncate(v, 64))
		}
	}
	pts, err := s.cfg.Store.StatusHistory(r.Context(), id, since)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.History{ConnectorID: id, IntervalSeconds: store.HistoryInterval.Seconds(),
		RetentionSeconds: store.HistoryRetention.Seconds(), Points: pts})
	return nil
}
