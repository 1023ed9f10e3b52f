package dataverse

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A client-credentials request for {environment_url}/.default gets a bearer
// token with expires_in; every other request is refused with Entra ID's error body.
func TestTokenEndpointIssuesClientCredentialsTokensAndRefusesBadRequests(t *testing.T) {
	env := newTestEnv(t)
	status, body := env.requestToken(env.tokenForm())
	if status != http.StatusOK || body["token_type"] != "Bearer" || body["access_token"] == "" {
		t.Fatalf("token: %d %v", status, body)
	}
	if exp, _ := body["expires_in"].(float64); exp != 3599 {
		t.Errorf("expires_in = %v, want 3599", body["expires_in"])
	}
	if len(strings.Split(body["access_token"].(string), ".")) != 3 {
		t.Errorf("access token is not a JWT: %v", body["access_token"])
	}

	cases := []struct {
		name    string
		change  func(url.Values)
		errCode string
		aadsts  float64
		status  int
	}{
		// Entra ID answers a wrong client secret with 401 invalid_client / AADSTS7000215
		// (RFC 6749 5.2 allows 401 for invalid_client; MSAL and azidentity see 401 from the real service).
		{"wrong secret", func(f url.Values) { f.Set("client_secret", "nope") }, "invalid_client", 7000215, http.StatusUnauthorized},
		{"no secret", func(f url.Values) { f.Del("client_secret") }, "invalid_client", 7000216, http.StatusUnauthorized},
		{"unknown client", func(f url.Values) { f.Set("client_id", guidA) }, "unauthorized_client", 700016, http.StatusBadRequest},
		{"scope without .default", func(f url.Values) { f.Set("scope", env.api.URL+"/user_impersonation") }, "invalid_scope", 1002012, http.StatusBadRequest},
		{"scope of another resource", func(f url.Values) { f.Set("scope", "https://other.crm.dynamics.com/.default") }, "invalid_resource", 500011, http.StatusBadRequest},
		{"missing scope", func(f url.Values) { f.Del("scope") }, "invalid_request", 900144, http.StatusBadRequest},
		{"other grant", func(f url.Values) { f.Set("grant_type", "password") }, "unsupported_grant_type", 70003, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := env.tokenForm()
			tc.change(form)
			status, body := env.requestToken(form)
			if status != tc.status || body["error"] != tc.errCode {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.errCode)
			}
			codes, _ := body["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != tc.aadsts {
				t.Errorf("error_codes = %v, want [%v]", body["error_codes"], tc.aadsts)
			}
			for _, k := range []string{"error_description", "timestamp", "trace_id", "correlation_id"} {
				if _, ok := body[k]; !ok {
					t.Errorf("error body lacks %s: %v", k, body)
				}
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		resp, err := env.client.PostForm(env.auth.URL+"/"+guidC+"/oauth2/v2.0/token", env.tokenForm())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("HTTP Basic client authentication", func(t *testing.T) {
		form := env.tokenForm()
		form.Del("client_secret")
		req, _ := http.NewRequest(http.MethodPost, env.auth.URL+"/"+env.emu.Config().TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(env.emu.Config().ClientID, env.emu.Config().ClientSecret)
		resp, err := env.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
	})
}

// Spec 1.2: a missing, bad or expired token gets 401 with the unquoted WWW-Authenticate challenge.
func TestAPIAnswers401WithChallengeForMissingBadAndExpiredTokens(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.TokenLifetime = 10 * time.Minute })
	want := "Bearer authorization_uri=" + env.auth.URL + "/" + env.emu.Config().TenantID + "/oauth2/authorize, resource_id=" + env.api.URL + "/"
	check := func(name string) {
		t.Helper()
		r := env.call(http.MethodGet, "WhoAmI", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d, want 401", name, r.status)
		}
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Fatalf("%s: WWW-Authenticate %q, want %q", name, got, want)
		}
	}
	check("no token") // the unauthenticated probe of spec 1.2
	env.token = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"
	check("forged token")

	status, body := env.requestToken(env.tokenForm())
	if status != http.StatusOK || body["expires_in"].(float64) != 600 {
		t.Fatalf("token: %d %v (want the configured 600 s lifetime)", status, body)
	}
	env.token = body["access_token"].(string)
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK)
	env.clock.Advance(10*time.Minute + time.Second)
	check("expired token")
	if n := env.emu.Counters()["unauthorized"]; n != 3 {
		t.Errorf("unauthorized counter = %d, want 3", n)
	}

	// The lifetime is also a limit the admin API changes.
	l := env.emu.Limits()
	l.TokenLifetime = Duration(time.Minute)
	env.emu.SetLimits(l)
	if _, body := env.requestToken(env.tokenForm()); body["expires_in"].(float64) != 60 {
		t.Errorf("expires_in after SetLimits = %v, want 60", body["expires_in"])
	}
}

// MSAL reads the OpenID configuration before asking for a token; it must point at the token endpoint.
func TestOpenIDConfigurationPointsAtTheTokenEndpoint(t *testing.T) {
	env := newTestEnv(t)
	tenant := env.emu.Config().TenantID
	resp, err := env.client.Get(env.auth.URL + "/" + tenant + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode}
	r.raw = readAll(t, resp)
	if got := r.json(t)["token_endpoint"]; got != env.auth.URL+"/"+tenant+"/oauth2/v2.0/token" {
		t.Fatalf("token_endpoint = %v", got)
	}
}

// MSAL adds the OpenID Connect scopes (openid profile offline_access) to every token request; Entra ID
// ignores them in the client-credentials grant, so the sandbox does too (found by the fidelity suite's MSAL
// test). A request with nothing but them still lacks a resource.
func TestTokenEndpointIgnoresOpenIDScopes(t *testing.T) {
	env := newTestEnv(t)
	form := env.tokenForm()
	form.Set("scope", form.Get("scope")+" openid profile offline_access")
	if status, body := env.requestToken(form); status != http.StatusOK {
		t.Fatalf("with OpenID scopes: %d %v", status, body)
	}
	form.Set("scope", "openid profile offline_access")
	if status, body := env.requestToken(form); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("OpenID scopes only: %d %v, want 400 invalid_scope", status, body)
	}
}
