package dataverse

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Dataverse counts its service-protection limits per user, application users included. An
// environment with several application users gives each its own client id and secret, its own systemuser
// (WhoAmI) and its own budget: one user spending its window leaves the others' untouched.
func TestSeveralApplicationUsersSignInAsThemselvesWithBudgetsOfTheirOwn(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.ApplicationUsers = 2
		c.Limits = Limits{Requests: 3, Window: Duration(time.Minute)}
	})
	users := env.emu.ApplicationUsers()
	if len(users) != 2 {
		t.Fatalf("ApplicationUsers() = %d users, want 2", len(users))
	}
	cfg := env.emu.Config()
	tokenOf := func(clientID, secret string) string {
		t.Helper()
		status, body := env.requestToken(url.Values{"client_id": {clientID}, "client_secret": {secret},
			"scope": {cfg.EnvironmentURL + "/.default"}, "grant_type": {"client_credentials"}})
		if status != http.StatusOK {
			t.Fatalf("token of %s: status %d, body %v", clientID, status, body)
		}
		return body["access_token"].(string)
	}
	whoAmI := func(tok string) result {
		t.Helper()
		env.token = tok
		return env.call(http.MethodGet, "WhoAmI", nil)
	}
	first := tokenOf(cfg.ClientID, cfg.ClientSecret)
	seen := map[string]bool{env.emu.ApplicationUserID(): true}
	for i, u := range users {
		if u.ClientID == cfg.ClientID || u.ClientSecret == cfg.ClientSecret || seen[u.UserID] {
			t.Fatalf("user %d is not an identity of its own: %+v", i, u)
		}
		seen[u.UserID] = true
		// A secret belongs to its app registration only.
		if status, body := env.requestToken(url.Values{"client_id": {u.ClientID}, "client_secret": {cfg.ClientSecret},
			"scope": {cfg.EnvironmentURL + "/.default"}, "grant_type": {"client_credentials"}}); status != http.StatusUnauthorized ||
			!strings.Contains(body["error_description"].(string), "AADSTS7000215") {
			t.Errorf("user %d with the first user's secret: status %d, %v", i, status, body)
		}
		tok := tokenOf(strings.ToUpper(u.ClientID), u.ClientSecret) // Entra ID compares client ids in any case
		if got := env.mustStatus(whoAmI(tok), http.StatusOK).json(t)["UserId"]; got != u.UserID {
			t.Errorf("user %d: WhoAmI UserId = %v, want %s", i, got, u.UserID)
		}
	}
	// The first user spends its window (3 requests); the second still has its own (one spent above).
	for range 3 {
		env.mustStatus(whoAmI(first), http.StatusOK)
	}
	expect429(t, whoAmI(first), codeRequestLimit)
	second := tokenOf(users[1].ClientID, users[1].ClientSecret)
	for i := range 2 { // one of its 3 was spent above
		if r := env.mustStatus(whoAmI(second), http.StatusOK); r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests") != []string{"1", "0"}[i] {
			t.Errorf("second user's request %d: burst remaining %q", i, r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests"))
		}
	}
	// Every added user writes rows as System Administrator, like the first.
	env.token = tokenOf(users[0].ClientID, users[0].ClientSecret)
	env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"lastname": "Second"}), http.StatusNoContent)
}

func TestApplicationUsersAreBounded(t *testing.T) {
	for _, n := range []int{-1, maxApplicationUsers + 1} {
		if _, err := New(Config{ApplicationUsers: n, EnvironmentURL: "http://127.0.0.1:1", AuthorityURL: "http://127.0.0.1:2"}); err == nil || !strings.Contains(err.Error(), "ApplicationUsers") {
			t.Errorf("ApplicationUsers %d: err = %v, want a refusal naming it", n, err)
		}
	}
}
