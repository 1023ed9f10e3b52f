package salesforce

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issue 19, item 1: the JWT bearer grant accepts the assertions widely used clients send and a real org
// accepts: exp 300 s ahead (salesforce-pubsub-api-client, go-salesforce, simple-salesforce in #491), exp in
// milliseconds (the Salesforce CLI's sfdx-core signs Date.now() + 300), exp as a JSON string
// (simple-salesforce, go-salesforce), aud https://login.salesforce.com sent to the org's My Domain
// (go-salesforce hard-codes it). An expired assertion, a bad signature and wrong iss/sub/aud stay refused.
func TestJWTBearerAcceptsWhatRealClientsSend(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	now := time.Now() // assertions are checked against real time
	ok := map[string]func(jwt.MapClaims){
		"exp now+300s":            func(c jwt.MapClaims) { c["exp"] = now.Add(300 * time.Second).Unix() },
		"exp now+1h":              func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() },
		"exp in milliseconds":     func(c jwt.MapClaims) { c["exp"] = now.UnixMilli() + 300 },
		"exp as a string":         func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(now.Add(300*time.Second).Unix(), 10) },
		"exp a fractional number": func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Minute).UnixMilli()) / 1000 },
		"aud login.salesforce.com": func(c jwt.MapClaims) {
			c["aud"] = "https://login.salesforce.com"
		},
	}
	for name, change := range ok {
		for _, host := range []string{o.login.URL, o.instance.URL} {
			resp, body := o.form(host, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {o.assertion(change)}})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s on %s: %d %s, want 200", name, host, resp.StatusCode, body)
			}
		}
	}
	refused := []struct {
		name   string
		change func(jwt.MapClaims)
		desc   string
	}{
		{"expired", func(c jwt.MapClaims) { c["exp"] = now.Add(-5 * time.Minute).Unix() }, "expired authorization code"},
		{"expired, as a string", func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10) }, "expired authorization code"},
		{"exp not a number", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, "invalid assertion"},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }, "invalid assertion"},
		{"aud of another site", func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com" }, "Audience validation failed"},
		{"aud test.salesforce.com on a production org", func(c jwt.MapClaims) { c["aud"] = "https://test.salesforce.com" }, "Audience validation failed"},
		{"other user", func(c jwt.MapClaims) { c["sub"] = "someone@else.example" }, "user hasn't approved this consumer"},
	}
	for _, tc := range refused {
		resp, body := o.form(o.login.URL, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {o.assertion(tc.change)}})
		var e oauthErrorBody
		mustJSON(t, body, &e)
		if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_grant" || e.Description != tc.desc {
			t.Errorf("%s: %d %s, want 400 invalid_grant / %s", tc.name, resp.StatusCode, body, tc.desc)
		}
	}
}

// A ceiling on exp can still be configured, for tests of a stricter org.
func TestJWTBearerMaxAheadIsConfigurable(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.JWTMaxAhead = 3 * time.Minute })
	far := o.assertion(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() })
	resp, body := o.form(o.login.URL, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {far}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("exp an hour ahead with a 3-minute ceiling: %d %s, want 400", resp.StatusCode, body)
	}
}

// Issue 19, item 2: "List Available REST Resources" includes identity, the identity URL of the session's
// user (jsforce's identity() on a connection built from a bare token reads it).
func TestResourcesListIncludesIdentity(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resources: %d %s", resp.StatusCode, body)
	}
	var res map[string]string
	mustJSON(t, body, &res)
	want := o.login.URL + "/id/" + o.e.cfg.OrgID + "/" + o.e.UserID()
	if res["identity"] != want {
		t.Fatalf("identity = %q, want %q (in %s)", res["identity"], want, body)
	}
	for _, k := range []string{"sobjects", "query", "queryAll", "limits", "composite"} {
		if res[k] != "/services/data/v62.0/"+k {
			t.Errorf("%s = %q", k, res[k])
		}
	}
	req, _ := http.NewRequest(http.MethodGet, res["identity"], nil)
	req.Header.Set("Authorization", "Bearer "+o.token())
	if resp, body := o.send(req); resp.StatusCode != http.StatusOK {
		t.Errorf("GET identity: %d %s", resp.StatusCode, body)
	}
}

// Issue 19, item 3: a current org serves the API versions up to the current release (v68.0, Winter '27,
// by default), lists them from 31.0 (21.0-30.0 were retired in Summer '25 and answer 410 GONE), and the
// ceiling stays configurable.
func TestCurrentAPIVersionsAreServed(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	for _, v := range []string{"63.0", "65.0", "68.0"} {
		if resp, body := o.do(http.MethodGet, "/services/data/v"+v+"/limits", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("v%s/limits: %d %s, want 200", v, resp.StatusCode, body)
		}
	}
	if resp, _ := o.do(http.MethodGet, "/services/data/v69.0/limits", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("v69.0 (newer than the org): %d, want 404", resp.StatusCode)
	}
	if resp, body := o.do(http.MethodGet, "/services/data/v30.0/limits", nil); resp.StatusCode != http.StatusGone {
		t.Errorf("v30.0 (retired): %d %s, want 410", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, o.instance.URL+"/services/data/", nil)
	_, body := o.send(req)
	var versions []map[string]string
	mustJSON(t, body, &versions)
	first, last := versions[0], versions[len(versions)-1]
	if first["version"] != "31.0" || last["version"] != "68.0" || last["label"] != "Winter '27" || last["url"] != "/services/data/v68.0" {
		t.Errorf("versions run from %v to %v, want 31.0 to 68.0 (Winter '27)", first, last)
	}

	capped := newTestOrg(t, 0, 0, func(c *Config) { c.APIVersion = "64.0" })
	if resp, _ := capped.do(http.MethodGet, "/services/data/v65.0/limits", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("v65.0 on an org capped at 64.0: %d, want 404", resp.StatusCode)
	}
}
