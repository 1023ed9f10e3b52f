package dataverse

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Authentication (spec 1). The authority host serves {tenant}/oauth2/v2.0/token for the client-credentials
// grant, plus the OpenID configuration and instance-discovery documents MSAL reads first. Access tokens are
// JWTs signed with a per-emulator HMAC key; the API verifies signature, audience and expiry on every request.

func (e *Emulator) authorityMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.serveToken)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.serveOpenIDConfig)
	mux.HandleFunc("GET /common/discovery/instance", e.serveInstanceDiscovery)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAADError(w, http.StatusNotFound, "invalid_request", 90002, fmt.Sprintf("No endpoint at %s %s.", r.Method, r.URL.Path), e.clock.Now())
	})
	return mux
}

func (e *Emulator) serveOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if tenant != e.cfg.TenantID {
		writeAADError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found.", tenant), e.clock.Now())
		return
	}
	base := e.cfg.AuthorityURL + "/" + tenant
	writeJSONBody(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                e.cfg.AuthorityURL + "/" + tenant + "/v2.0",
		"jwks_uri":                              e.cfg.AuthorityURL + "/" + tenant + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"grant_types_supported":                 []string{"client_credentials"},
		"tenant_region_scope":                   "NA",
	})
}

func (e *Emulator) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimPrefix(strings.TrimPrefix(e.cfg.AuthorityURL, "https://"), "http://")
	writeJSONBody(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": e.cfg.AuthorityURL + "/" + e.cfg.TenantID + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

// serveToken implements the client-credentials grant of spec 1.1; failures use Entra ID's error body, with
// status 400, or 401 for invalid_client (a wrong or missing client secret), as the real service answers
// (AADSTS7000215 arrives with 401 in many public reports).
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	e.count.add(cToken, 1)
	now := e.clock.Now()
	fail := func(errCode string, aadsts int, msg string) {
		status := http.StatusBadRequest
		if errCode == "invalid_client" {
			status = http.StatusUnauthorized
		}
		writeAADError(w, status, errCode, aadsts, fmt.Sprintf("AADSTS%d: %s", aadsts, msg), now)
	}
	tenant := r.PathValue("tenant")
	if tenant == "common" || tenant == "organizations" {
		fail("invalid_request", 700016, "The client credentials flow needs a tenant; /common and /organizations are not supported.")
		return
	}
	if tenant != e.cfg.TenantID {
		fail("invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		fail("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'. The body must be application/x-www-form-urlencoded.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		fail("invalid_request", 900144, "The request body could not be parsed: "+err.Error())
		return
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok { // RFC 6749 section 2.3.1
		clientID, secret = u, p
	}
	switch {
	case form.Get("grant_type") == "":
		fail("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	case form.Get("grant_type") != "client_credentials":
		fail("unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", form.Get("grant_type")))
		return
	case clientID == "":
		fail("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case e.app(clientID) == nil:
		fail("unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant))
		return
	case form.Get("client_assertion") != "":
		fail("invalid_client", 700027, "Client assertion contains an invalid signature. The sandbox application has only a client secret.")
		return
	case secret == "":
		fail("invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(e.app(clientID).secret)) != 1:
		fail("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
		return
	}
	scope := form.Get("scope")
	if scope == "" {
		fail("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	resources := 0
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "profile", "offline_access", "email":
			// OpenID Connect scopes, which MSAL adds to every request: Entra ID accepts and ignores them in
			// the client-credentials grant.
			continue
		}
		resources++
		resource, ok := strings.CutSuffix(s, "/.default")
		if !ok {
			fail("invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s))
			return
		}
		if strings.TrimSuffix(resource, "/") != strings.TrimSuffix(e.cfg.EnvironmentURL, "/") {
			fail("invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", resource, tenant))
			return
		}
	}
	if resources == 0 {
		fail("invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	lifetime := time.Duration(e.prot.currentLimits().TokenLifetime)
	token := e.signToken(now, lifetime, e.app(clientID))
	secs := int64(lifetime / time.Second)
	writeJSONBody(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token,
	})
}

type tokenClaims struct {
	Aud   string `json:"aud"`
	Iss   string `json:"iss"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	AppID string `json:"appid"`
	Oid   string `json:"oid"`
	Sub   string `json:"sub"`
	Tid   string `json:"tid"`
	Idtyp string `json:"idtyp"`
	Ver   string `json:"ver"`
}

func (e *Emulator) signToken(now time.Time, lifetime time.Duration, reg *appRegistration) string {
	app := e.users[reg.user]
	claims := tokenClaims{
		Aud: e.cfg.EnvironmentURL, Iss: "https://sts.windows.net/" + e.cfg.TenantID + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(lifetime).Unix(),
		AppID: reg.clientID, Oid: guidString(app.aadID), Sub: guidString(app.aadID), Tid: e.cfg.TenantID,
		Idtyp: "app", Ver: "1.0",
	}
	payload, _ := json.Marshal(claims)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"crmsync-sandbox"}`))
	signing := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// tokenCache remembers verified tokens so the hot path skips the HMAC and JSON work.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	exp  int64
	user uint16
}

// authenticate returns the caller's user index, or the 401 of spec 1.2.
func (e *Emulator) authenticate(r *http.Request) (uint16, *apiError) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	if !ok || tok == "" {
		return 0, &apiError{status: http.StatusUnauthorized}
	}
	now := e.clock.Now().Unix()
	e.tokens.mu.Lock()
	ent, cached := e.tokens.m[tok]
	e.tokens.mu.Unlock()
	if !cached {
		claims, valid := e.verifyToken(tok)
		reg := e.app(claims.AppID)
		if !valid || reg == nil {
			return 0, &apiError{status: http.StatusUnauthorized, message: "invalid token"}
		}
		ent = tokenEntry{exp: claims.Exp, user: reg.user}
		e.tokens.mu.Lock()
		if e.tokens.m == nil || len(e.tokens.m) > 10000 {
			e.tokens.m = map[string]tokenEntry{}
		}
		e.tokens.m[tok] = ent
		e.tokens.mu.Unlock()
	}
	if now >= ent.exp {
		return 0, &apiError{status: http.StatusUnauthorized, message: "expired token"}
	}
	return ent.user, nil
}

func (e *Emulator) verifyToken(tok string) (tokenClaims, bool) {
	var claims tokenClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return claims, false
	}
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return claims, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return claims, false
	}
	if claims.Aud != e.cfg.EnvironmentURL || claims.Tid != e.cfg.TenantID {
		return claims, false
	}
	return claims, true
}

// challenge is the WWW-Authenticate header of spec 1.2 (unquoted URLs, comma-separated).
func (e *Emulator) challenge() string {
	return "Bearer authorization_uri=" + e.cfg.AuthorityURL + "/" + e.cfg.TenantID + "/oauth2/authorize, resource_id=" +
		strings.TrimSuffix(e.cfg.EnvironmentURL, "/") + "/"
}

func writeAADError(w http.ResponseWriter, status int, code string, aadsts int, desc string, now time.Time) {
	trace := guidString(randomTraceID())
	writeJSONBody(w, status, map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: " + trace + "\r\nTimestamp: " + now.UTC().Format("2006-01-02 15:04:05Z"),
		"error_codes": []int{aadsts}, "timestamp": now.UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id": trace, "correlation_id": guidString(randomTraceID()),
		"error_uri": "https://login.microsoftonline.com/error?code=" + fmt.Sprint(aadsts),
	})
}

// writeAuthFault writes an injected failure of the token endpoint in Entra ID's shape.
func (e *Emulator) writeAuthFault(w http.ResponseWriter, r *http.Request, status int) {
	writeAADError(w, status, "temporarily_unavailable", 90033, "AADSTS90033: A transient error has occurred. Please try again.", e.clock.Now())
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
