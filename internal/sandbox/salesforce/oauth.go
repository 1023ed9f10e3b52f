package salesforce

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// OAuth 2.0 (spec 1): the token endpoint with the JWT bearer, client credentials and refresh token grants,
// userinfo and revoke. Access tokens are opaque session Ids "<orgId15>!<random>", valid for the token
// lifetime on the sandbox clock from the moment they are issued.

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type name, not a credential

// session is one issued access token.
type session struct {
	user    string
	issued  time.Time
	expires time.Time
	refresh string // the refresh token it was minted from, if any (revoking that revokes this)
}

// tokenStore holds the org's access and refresh tokens.
type tokenStore struct {
	mu      sync.RWMutex
	clock   *clock.Clock
	access  map[string]*session
	refresh map[string]string // refresh token → user Id
}

func newTokenStore(c *clock.Clock) *tokenStore {
	return &tokenStore{clock: c, access: map[string]*session{}, refresh: map[string]string{}}
}

// issue mints an access token for user, valid for lifetime.
func (ts *tokenStore) issue(orgID15, user string, lifetime time.Duration, refresh string) (string, *session) {
	now := ts.clock.Now()
	tok := orgID15 + "!AQ" + randomBase62(8) + "." + randomBase62(96)
	s := &session{user: user, issued: now, expires: now.Add(lifetime), refresh: refresh}
	ts.mu.Lock()
	ts.access[tok] = s
	// Drop expired sessions now and then so long benchmark runs do not grow the map without bound.
	if len(ts.access)%1024 == 0 {
		for k, v := range ts.access {
			if !now.Before(v.expires) {
				delete(ts.access, k)
			}
		}
	}
	ts.mu.Unlock()
	return tok, s
}

// valid returns the session of a live access token.
func (ts *tokenStore) valid(tok string) (*session, bool) {
	if tok == "" {
		return nil, false
	}
	ts.mu.RLock()
	s, ok := ts.access[tok]
	ts.mu.RUnlock()
	if !ok || !ts.clock.Now().Before(s.expires) {
		return nil, false
	}
	return s, true
}

func (ts *tokenStore) mintRefresh(user string) string {
	tok := "5Aep" + randomBase62(83)
	ts.mu.Lock()
	ts.refresh[tok] = user
	ts.mu.Unlock()
	return tok
}

// revoke revokes an access token, or a refresh token and every access token minted from it.
func (ts *tokenStore) revoke(tok string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if _, ok := ts.access[tok]; ok {
		delete(ts.access, tok)
		return true
	}
	if _, ok := ts.refresh[tok]; ok {
		delete(ts.refresh, tok)
		for k, s := range ts.access {
			if s.refresh == tok {
				delete(ts.access, k)
			}
		}
		return true
	}
	return false
}

// expireAll ends every access token now; refresh tokens stay valid so clients can refresh.
func (ts *tokenStore) expireAll() {
	ts.mu.Lock()
	ts.access = map[string]*session{}
	ts.mu.Unlock()
}

func (ts *tokenStore) reset() {
	ts.mu.Lock()
	ts.access, ts.refresh = map[string]*session{}, map[string]string{}
	ts.mu.Unlock()
}

// oauthErrorBody is the token endpoint's error shape (spec 1.6).
type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type oauthError struct {
	status int
	body   oauthErrorBody
}

func oauthErr(code, desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, body: oauthErrorBody{Error: code, Description: desc}}
}

// tokenResponse is the success shape of spec 1.5, in the real key order; there is no expires_in.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Signature   string `json:"signature"`
	Scope       string `json:"scope"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"`
}

// handleToken serves POST /services/oauth2/token. instanceHost says which host received it: client
// credentials are only accepted on the org's My Domain (the instance), as on a real org.
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request, instanceHost bool) {
	e.count("oauth.token")
	if r.Method != http.MethodPost {
		writeOAuthError(w, r, oauthErr("invalid_request", "must use HTTP POST"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, r, oauthErr("invalid_request", "unable to parse the request body"))
		return
	}
	var user, refresh string
	var oerr *oauthError
	switch gt := r.PostForm.Get("grant_type"); gt {
	case jwtBearerGrant:
		user, oerr = e.jwtBearer(r.PostForm.Get("assertion"))
	case "client_credentials":
		if !instanceHost {
			oerr = oauthErr("invalid_grant", "request not supported on this domain")
			break
		}
		user, oerr = e.clientCredentials(r)
	case "refresh_token":
		refresh = r.PostForm.Get("refresh_token")
		user, oerr = e.refreshGrant(r, refresh)
	case "":
		oerr = oauthErr("unsupported_grant_type", "grant type not supported")
	default:
		oerr = oauthErr("unsupported_grant_type", "grant type not supported")
	}
	if oerr != nil {
		e.logger.Debug("token request refused", "grant_type", r.PostForm.Get("grant_type"), "error", oerr.body.Error, "description", oerr.body.Description)
		writeOAuthError(w, r, oerr)
		return
	}
	set := e.currentSettings()
	tok, s := e.tokens.issue(e.cfg.OrgID[:15], user, set.TokenLifetime, refresh)
	idURL := e.identityURL(user)
	issued := strconv.FormatInt(s.issued.UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(e.cfg.ClientSecret))
	mac.Write([]byte(idURL + issued))
	resp := tokenResponse{
		AccessToken: tok,
		Signature:   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		Scope:       e.cfg.Scope,
		InstanceURL: e.cfg.InstanceURL,
		ID:          idURL,
		TokenType:   "Bearer",
		IssuedAt:    issued,
	}
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	if wantsURLEncoded(r) {
		v := url.Values{}
		v.Set("access_token", resp.AccessToken)
		v.Set("signature", resp.Signature)
		v.Set("scope", resp.Scope)
		v.Set("instance_url", resp.InstanceURL)
		v.Set("id", resp.ID)
		v.Set("token_type", resp.TokenType)
		v.Set("issued_at", resp.IssuedAt)
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte(v.Encode()))
		return
	}
	writeJSONValue(w, http.StatusOK, resp)
}

func wantsURLEncoded(r *http.Request) bool {
	return r.PostForm.Get("format") == "urlencoded" || strings.Contains(r.Header.Get("Accept"), "application/x-www-form-urlencoded")
}

func writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	writeJSONValue(w, e.status, e.body)
}

// jwtBearer checks a JWT bearer assertion (spec 1.2): RS256 signed with the key of the app's certificate,
// iss the app's client Id, sub (or prn, which wins) the integration user, aud the login URL (or one of the
// accepted audiences), exp in the future.
//
// exp is read the way a real org evidently reads it, not the way the documentation's "within 3 minutes"
// suggests: widely used clients sign for 300 s (salesforce-pubsub-api-client, go-salesforce,
// simple-salesforce), the Salesforce CLI stamps milliseconds (Date.now() + 300), simple-salesforce and
// go-salesforce send exp as a JSON string, and all of them work against real orgs. So any future exp is
// accepted, as a number or a numeric string, unless Config.JWTMaxAhead sets a ceiling.
func (e *Emulator) jwtBearer(assertion string) (string, *oauthError) {
	if assertion == "" {
		return "", oauthErr("invalid_request", "assertion parameter is missing")
	}
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return "", oauthErr("invalid_grant", "invalid assertion")
	}
	if iss, _ := claims["iss"].(string); iss != e.cfg.ClientID {
		return "", oauthErr("invalid_client_id", "client identifier invalid")
	}
	if e.cfg.JWTCertificate == nil {
		return "", oauthErr("invalid_grant", "invalid assertion")
	}
	claims = jwt.MapClaims{}
	// The claims are checked below (exp's forms are wider than RFC 7519's NumericDate); the parser checks
	// the algorithm and the signature.
	if _, err := jwt.ParseWithClaims(assertion, &claims,
		func(*jwt.Token) (any, error) { return e.cfg.JWTCertificate.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation(),
	); err != nil {
		return "", oauthErr("invalid_grant", "invalid assertion")
	}
	exp, ok := assertionExpiry(claims["exp"])
	if !ok {
		return "", oauthErr("invalid_grant", "invalid assertion")
	}
	// Assertions are stamped by the client's own clock, so they are checked against real time even when
	// the sandbox clock has been advanced to age tokens and events.
	now := time.Now()
	if !exp.Add(e.cfg.JWTSkew).After(now) {
		return "", oauthErr("invalid_grant", "expired authorization code")
	}
	if e.cfg.JWTMaxAhead > 0 && exp.After(now.Add(e.cfg.JWTMaxAhead+e.cfg.JWTSkew)) {
		return "", oauthErr("invalid_grant", "invalid assertion")
	}
	if !audienceMatches(claims["aud"], e.jwtAudiences()) {
		return "", oauthErr("invalid_grant", "Audience validation failed")
	}
	sub, _ := claims["sub"].(string)
	if prn, ok := claims["prn"].(string); ok {
		sub = prn
	}
	if !strings.EqualFold(sub, e.cfg.Username) {
		return "", oauthErr("invalid_grant", "user hasn't approved this consumer")
	}
	return e.userID, nil
}

// jwtAudiences are the aud values an assertion may carry: the org's login URL, and the configured
// authorization servers (https://login.salesforce.com for a production org, which real orgs accept on
// their My Domain too).
func (e *Emulator) jwtAudiences() []string {
	return append([]string{e.cfg.LoginURL}, e.cfg.JWTAudiences...)
}

// assertionExpiry reads exp: seconds since the epoch as a JSON number (fractions allowed) or a numeric
// string; a value beyond the year 5000 in seconds is taken as milliseconds, as the Salesforce CLI sends.
func assertionExpiry(v any) (time.Time, bool) {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		secs = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return time.Time{}, false
		}
		secs = f
	default:
		return time.Time{}, false
	}
	if secs <= 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return time.Time{}, false
	}
	const year5000 = 95_617_584_000
	if secs > year5000 {
		secs /= 1000
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

func audienceMatches(aud any, accepted []string) bool {
	match := func(s string) bool {
		for _, a := range accepted {
			if strings.TrimSuffix(s, "/") == strings.TrimSuffix(a, "/") {
				return true
			}
		}
		return false
	}
	switch a := aud.(type) {
	case string:
		return match(a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && match(s) {
				return true
			}
		}
	}
	return false
}

// clientCredentials checks client_id and client_secret from the form or HTTP Basic (spec 1.3); tokens
// are issued for the app's run-as user, the integration user.
func (e *Emulator) clientCredentials(r *http.Request) (string, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != e.cfg.ClientID {
		return "", oauthErr("invalid_client_id", "client identifier invalid")
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(e.cfg.ClientSecret)) != 1 {
		return "", oauthErr("invalid_client", "invalid client credentials")
	}
	return e.userID, nil
}

// refreshGrant checks a refresh token grant (spec 1.4); no new refresh token is returned.
func (e *Emulator) refreshGrant(r *http.Request, refresh string) (string, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != e.cfg.ClientID {
		return "", oauthErr("invalid_client_id", "client identifier invalid")
	}
	if secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(e.cfg.ClientSecret)) != 1 {
		return "", oauthErr("invalid_client", "invalid client credentials")
	}
	e.tokens.mu.RLock()
	user, ok := e.tokens.refresh[refresh]
	e.tokens.mu.RUnlock()
	if !ok {
		return "", oauthErr("invalid_grant", "expired access/refresh token")
	}
	return user, nil
}

// identityURL is the token response's id: <login URL>/id/<orgId18>/<userId18>.
func (e *Emulator) identityURL(user string) string {
	return strings.TrimSuffix(e.cfg.LoginURL, "/") + "/id/" + e.cfg.OrgID + "/" + user
}

// bearer returns the access token of a request's Authorization header ("Bearer" or the older "OAuth").
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, scheme := range []string{"Bearer ", "OAuth "} {
		if len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) {
			return strings.TrimSpace(h[len(scheme):])
		}
	}
	return ""
}

// handleUserinfo serves /services/oauth2/userinfo (GET or POST). A missing or invalid token is answered
// the way the identity service does: 403 with a plain-text Missing_OAuth_Token or Bad_OAuth_Token.
func (e *Emulator) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	e.count("oauth.userinfo")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeAPIError(w, errMethodNotAllowed(r.Method, "GET", "POST"))
		return
	}
	tok := bearer(r)
	if tok == "" {
		tok = r.URL.Query().Get("access_token")
	}
	if tok == "" {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Missing_OAuth_Token"))
		return
	}
	s, ok := e.tokens.valid(tok)
	if !ok {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Bad_OAuth_Token"))
		return
	}
	writeJSONValue(w, http.StatusOK, e.userinfo(s.user))
}

// userinfo is the OpenID Connect userinfo document of a user, with Salesforce's additions.
func (e *Emulator) userinfo(user string) map[string]any {
	base := e.cfg.InstanceURL
	name, email := "Integration User", e.cfg.Username
	given, family := "Integration", "User"
	if user == e.adminUserID {
		name, email, given, family = "Sandbox Admin", "admin@crmsync.sandbox", "Sandbox", "Admin"
	}
	// The URLs keep the literal {version} placeholder, as a real org's userinfo does.
	urls := map[string]string{}
	for k, v := range map[string]string{
		"enterprise": "/services/Soap/c/{version}/" + e.cfg.OrgID[:15], "metadata": "/services/Soap/m/{version}/" + e.cfg.OrgID[:15],
		"partner": "/services/Soap/u/{version}/" + e.cfg.OrgID[:15], "rest": "/services/data/v{version}/",
		"sobjects": "/services/data/v{version}/sobjects/", "search": "/services/data/v{version}/search/",
		"query": "/services/data/v{version}/query/", "recent": "/services/data/v{version}/recent/",
		"tooling_soap": "/services/Soap/T/{version}/" + e.cfg.OrgID[:15], "tooling_rest": "/services/data/v{version}/tooling/",
		"profile": "/" + user, "feeds": "/services/data/v{version}/chatter/feeds",
		"groups": "/services/data/v{version}/chatter/groups", "users": "/services/data/v{version}/chatter/users",
		"feed_items": "/services/data/v{version}/chatter/feed-items", "feed_elements": "/services/data/v{version}/chatter/feed-elements",
	} {
		urls[k] = base + v
	}
	urls["custom_domain"] = base
	return map[string]any{
		"sub":                            e.identityURL(user),
		"user_id":                        user,
		"organization_id":                e.cfg.OrgID,
		"preferred_username":             email,
		"nickname":                       strings.SplitN(email, "@", 2)[0],
		"name":                           name,
		"email":                          email,
		"email_verified":                 true,
		"given_name":                     given,
		"family_name":                    family,
		"zoneinfo":                       "GMT",
		"photos":                         map[string]string{"picture": base + "/profilephoto/005/F", "thumbnail": base + "/profilephoto/005/T"},
		"profile":                        base + "/" + user,
		"picture":                        base + "/profilephoto/005/F",
		"address":                        map[string]any{},
		"is_salesforce_integration_user": false,
		"urls":                           urls,
		"active":                         true,
		"user_type":                      "STANDARD",
		"language":                       "en_US",
		"locale":                         "en_US",
		"utcOffset":                      0,
		"updated_at":                     e.started.UTC().Format("2006-01-02T15:04:05Z"),
		"is_app_installed":               true,
	}
}

// handleRevoke serves /services/oauth2/revoke: POST with token in the body, or GET with ?token=.
func (e *Emulator) handleRevoke(w http.ResponseWriter, r *http.Request) {
	e.count("oauth.revoke")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, r, oauthErr("invalid_request", "unable to parse the request body"))
		return
	}
	tok := r.Form.Get("token")
	if tok == "" || !e.tokens.revoke(tok) {
		writeOAuthError(w, r, oauthErr("unsupported_token_type", "this token type is not supported"))
		return
	}
	w.WriteHeader(http.StatusOK)
}
