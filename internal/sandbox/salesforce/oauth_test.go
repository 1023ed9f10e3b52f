package salesforce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/certs"
)

// Spec 1.5: the success shape, exactly these keys, issued_at in milliseconds as a string, no expires_in.
func TestTokenResponseHasTheSpecShape(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	before := o.clock.Now().UnixMilli()
	resp, body := o.form(o.login.URL, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {o.assertion(nil)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWT bearer: %d %s", resp.StatusCode, body)
	}
	var tr map[string]any
	mustJSON(t, body, &tr)
	keys := keysOf(tr)
	slices.Sort(keys)
	want := []string{"access_token", "id", "instance_url", "issued_at", "scope", "signature", "token_type"}
	if !slices.Equal(keys, want) {
		t.Fatalf("token response keys = %v, want %v", keys, want)
	}
	issued, ok := tr["issued_at"].(string)
	ms, err := strconv.ParseInt(issued, 10, 64)
	if !ok || err != nil || ms < before || ms > o.clock.Now().UnixMilli() {
		t.Errorf("issued_at = %v, want a millisecond timestamp string", tr["issued_at"])
	}
	if tok := tr["access_token"].(string); !strings.HasPrefix(tok, o.e.cfg.OrgID[:15]+"!") {
		t.Errorf("access_token %q does not start with the 15-character org Id and '!'", tok)
	}
	wantID := o.login.URL + "/id/" + o.e.cfg.OrgID + "/" + o.e.UserID()
	if tr["id"] != wantID || tr["instance_url"] != o.instance.URL || tr["token_type"] != "Bearer" {
		t.Errorf("id/instance_url/token_type = %v %v %v", tr["id"], tr["instance_url"], tr["token_type"])
	}
	mac := hmac.New(sha256.New, []byte(o.e.cfg.ClientSecret))
	mac.Write([]byte(wantID + issued))
	if tr["signature"] != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature is not HMAC-SHA256(id + issued_at) keyed with the client secret")
	}
}

// Spec 1.2 and 1.6: the JWT bearer flow checks the signature, iss, sub/prn, aud and exp, answering the
// documented errors; it works on both hosts.
func TestJWTBearerChecksSignatureAndClaims(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	other, err := certs.NewSigningKey("someone else")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		assertion func() string
		code      string
		desc      string
	}{
		{"valid", func() string { return o.assertion(nil) }, "", ""},
		{"prn wins over sub", func() string {
			return o.assertion(func(c jwt.MapClaims) { c["sub"] = "nobody@example.com"; c["prn"] = o.e.cfg.Username })
		}, "", ""},
		{"aud with trailing slash", func() string { return o.assertion(func(c jwt.MapClaims) { c["aud"] = o.e.cfg.LoginURL + "/" }) }, "", ""},
		{"signed by another key", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": o.e.cfg.ClientID, "sub": o.e.cfg.Username,
				"aud": o.e.cfg.LoginURL, "exp": o.clock.Now().Add(time.Minute).Unix()}).SignedString(other.Key)
			return s
		}, "invalid_grant", "invalid assertion"},
		{"HS256", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": o.e.cfg.ClientID, "sub": o.e.cfg.Username,
				"aud": o.e.cfg.LoginURL, "exp": o.clock.Now().Add(time.Minute).Unix()}).SignedString([]byte(o.e.cfg.ClientSecret))
			return s
		}, "invalid_grant", "invalid assertion"},
		{"unknown issuer", func() string { return o.assertion(func(c jwt.MapClaims) { c["iss"] = "3MVG9nope" }) }, "invalid_client_id", "client identifier invalid"},
		{"wrong audience", func() string {
			return o.assertion(func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com" })
		}, "invalid_grant", "Audience validation failed"},
		{"expired", func() string {
			return o.assertion(func(c jwt.MapClaims) { c["exp"] = o.clock.Now().Add(-5 * time.Minute).Unix() })
		}, "invalid_grant", "expired authorization code"},
		{"no exp", func() string { return o.assertion(func(c jwt.MapClaims) { delete(c, "exp") }) }, "invalid_grant", "invalid assertion"},
		{"other user", func() string {
			return o.assertion(func(c jwt.MapClaims) { c["sub"] = "someone@else.example" })
		}, "invalid_grant", "user hasn't approved this consumer"},
		{"garbage", func() string { return "not.a.jwt" }, "invalid_grant", "invalid assertion"},
	}
	for _, tc := range cases {
		for _, host := range []string{o.login.URL, o.instance.URL} {
			resp, body := o.form(host, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {tc.assertion()}})
			if tc.code == "" {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s on %s: %d %s", tc.name, host, resp.StatusCode, body)
				}
				continue
			}
			var e oauthErrorBody
			mustJSON(t, body, &e)
			if resp.StatusCode != http.StatusBadRequest || e.Error != tc.code || e.Description != tc.desc {
				t.Errorf("%s on %s: %d %s, want 400 %s / %s", tc.name, host, resp.StatusCode, body, tc.code, tc.desc)
			}
		}
	}
}

// Spec 1.3: client credentials (form or HTTP Basic) only on the org's My Domain.
func TestClientCredentialsOnlyOnTheInstanceHost(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {o.e.cfg.ClientID}, "client_secret": {o.e.cfg.ClientSecret}}
	resp, body := o.form(o.login.URL, good)
	var e oauthErrorBody
	mustJSON(t, body, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_grant" || e.Description != "request not supported on this domain" {
		t.Errorf("client credentials on the login host: %d %s", resp.StatusCode, body)
	}

	req, _ := http.NewRequest(http.MethodPost, o.instance.URL+"/services/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(o.e.cfg.ClientID, o.e.cfg.ClientSecret)
	if resp, body := o.send(req); resp.StatusCode != http.StatusOK {
		t.Errorf("client credentials with HTTP Basic: %d %s", resp.StatusCode, body)
	}

	bad := url.Values{"grant_type": {"client_credentials"}, "client_id": {o.e.cfg.ClientID}, "client_secret": {"wrong"}}
	resp, body = o.form(o.instance.URL, bad)
	mustJSON(t, body, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_client" {
		t.Errorf("wrong secret: %d %s, want invalid_client", resp.StatusCode, body)
	}
	resp, body = o.form(o.instance.URL, url.Values{"grant_type": {"password"}})
	mustJSON(t, body, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %d %s, want unsupported_grant_type", resp.StatusCode, body)
	}
}

// Spec 1.4: a refresh token minted through the admin API yields new access tokens (and no new refresh
// token); revoking it revokes them.
func TestRefreshTokenGrantAndRevoke(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	refresh := o.e.MintRefreshToken()
	resp, body := o.form(o.login.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {o.e.cfg.ClientID}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %s", resp.StatusCode, body)
	}
	var tr map[string]any
	mustJSON(t, body, &tr)
	if _, ok := tr["refresh_token"]; ok {
		t.Error("the refresh grant returned a new refresh token")
	}
	access := tr["access_token"].(string)

	form := url.Values{"token": {refresh}}
	req, _ := http.NewRequest(http.MethodPost, o.login.URL+"/services/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := o.send(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if _, ok := o.e.tokens.valid(access); ok {
		t.Error("an access token minted from a revoked refresh token still works")
	}
	resp, body = o.form(o.login.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {o.e.cfg.ClientID}})
	var e oauthErrorBody
	mustJSON(t, body, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_grant" || e.Description != "expired access/refresh token" {
		t.Errorf("revoked refresh token: %d %s", resp.StatusCode, body)
	}
}

// Spec 2.5: an expired, revoked or unknown token gets 401 with exactly the documented body.
func TestExpiredOrUnknownTokenGets401InvalidSessionID(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.TokenLifetime = time.Hour })
	if resp, body := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, body)
	}
	const want = `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`
	o.clock.Advance(time.Hour)
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/limits", nil)
	if resp.StatusCode != http.StatusUnauthorized || string(body) != want {
		t.Errorf("after the lifetime: %d %s, want 401 %s", resp.StatusCode, body, want)
	}
	o.tok = "00Dxx0000000000!garbage"
	resp, body = o.do(http.MethodGet, "/services/data/v62.0/query?q=SELECT+Id+FROM+Contact", nil)
	if resp.StatusCode != http.StatusUnauthorized || string(body) != want {
		t.Errorf("unknown token: %d %s", resp.StatusCode, body)
	}
	o.tok = ""
	o.token()
	o.e.ExpireTokens()
	if resp, _ := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after ExpireTokens: %d, want 401", resp.StatusCode)
	}
}

// Spec 1.1: userinfo names the user and the org (the Pub/Sub tenant id); identity errors are 403.
func TestUserinfoNamesTheOrg(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	req, _ := http.NewRequest(http.MethodGet, o.instance.URL+"/services/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+o.token())
	resp, body := o.send(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}
	var ui map[string]any
	mustJSON(t, body, &ui)
	if ui["user_id"] != o.e.UserID() || ui["organization_id"] != o.e.cfg.OrgID || ui["preferred_username"] != o.e.cfg.Username {
		t.Errorf("userinfo = %s", body)
	}
	for _, k := range []string{"sub", "name", "email", "zoneinfo", "urls"} {
		if _, ok := ui[k]; !ok {
			t.Errorf("userinfo lacks %q", k)
		}
	}
	req.Header.Set("Authorization", "Bearer nope")
	if resp, body := o.send(req); resp.StatusCode != http.StatusForbidden || string(body) != "Bad_OAuth_Token" {
		t.Errorf("userinfo with a bad token: %d %s", resp.StatusCode, body)
	}
}
