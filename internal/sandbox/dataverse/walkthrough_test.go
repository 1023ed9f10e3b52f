package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// plainClient is what a Dataverse client written with nothing but net/http does: form-encoded token request,
// bearer header, OData headers, and honouring Retry-After on 429.
type plainClient struct {
	t       *testing.T
	http    *http.Client
	env     string // environment URL
	token   string
	retries int
}

func (c *plainClient) do(ctx context.Context, method, path string, body []byte, headers map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.env+"/api/data/v9.2/"+path, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("OData-MaxVersion", "4.0")
		req.Header.Set("OData-Version", "4.0")
		if body != nil {
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || attempt == 5 {
			return resp, raw
		}
		// Spec 7.2: wait exactly Retry-After, bounded by the test's context.
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil {
			c.t.Fatalf("429 without a usable Retry-After: %q", resp.Header.Get("Retry-After"))
		}
		c.retries++
		timer := time.NewTimer(time.Duration(secs) * time.Second)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			c.t.Fatalf("gave up waiting for Retry-After: %v", ctx.Err())
		}
	}
}

func (c *plainClient) json(ctx context.Context, method, path string, v any, headers map[string]string) (*http.Response, map[string]any) {
	c.t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	resp, raw := c.do(ctx, method, path, body, headers)
	var m map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			c.t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return resp, m
}

// Done means: a plain net/http client goes through token, WhoAmI, metadata, a create with a chosen GUID,
// upserts both ways, an UpsertMultiple of 1,000 rows, a $batch with one failing change set under
// continue-on-error, a write refused for missing privileges, and a 429 storm answered with Retry-After.
func TestDoneMeansWalkthroughWithAPlainHTTPClient(t *testing.T) {
	env := newTestEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := env.emu.Config()
	hc := &http.Client{Timeout: 20 * time.Second}

	// 1. Token.
	form := url.Values{"client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}, "scope": {cfg.EnvironmentURL + "/.default"}, "grant_type": {"client_credentials"}}
	resp, err := hc.PostForm(cfg.AuthorityURL+"/"+cfg.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tok, err)
	}
	resp.Body.Close()
	c := &plainClient{t: t, http: hc, env: cfg.EnvironmentURL, token: tok.AccessToken}

	// 2. WhoAmI, and the parallelism hint.
	r, who := c.json(ctx, "GET", "WhoAmI", nil, nil)
	if r.StatusCode != http.StatusOK || who["UserId"] == nil || r.Header.Get("x-ms-dop-hint") == "" {
		t.Fatalf("WhoAmI: %d %v", r.StatusCode, who)
	}

	// 3. Metadata: lastname's MaxLength through the String cast.
	r, meta := c.json(ctx, "GET", "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength&$filter=LogicalName%20eq%20'lastname'", nil, nil)
	if r.StatusCode != http.StatusOK || meta["value"].([]any)[0].(map[string]any)["MaxLength"] != float64(50) {
		t.Fatalf("metadata: %d %v", r.StatusCode, meta)
	}

	// 4. Create with a chosen GUID, owned by the team.
	team := env.emu.TeamID()
	accountID := "bb9ff4c0-591c-5a23-8cbe-566a8191dff5"
	r, _ = c.json(ctx, "POST", "accounts", map[string]any{"accountid": accountID, "name": "Acme", "ownerid@odata.bind": "/teams(" + team + ")"}, nil)
	if r.StatusCode != http.StatusNoContent || r.Header.Get("OData-EntityId") != cfg.EnvironmentURL+"/api/data/v9.2/accounts("+accountID+")" {
		t.Fatalf("create: %d %v", r.StatusCode, r.Header)
	}

	// 5. Upsert both ways: 201 when it creates, 200 when it updates (return=representation).
	rep := map[string]string{"Prefer": "return=representation"}
	contact := map[string]any{"lastname": "Lovelace", "firstname": "Ada", "ownerid@odata.bind": "/teams(" + team + ")",
		"parentcustomerid_account@odata.bind": "/accounts(" + accountID + ")"}
	if r, _ = c.json(ctx, "PATCH", "contacts("+guidA+")?$select=contactid", contact, rep); r.StatusCode != http.StatusCreated {
		t.Fatalf("upsert that creates: %d", r.StatusCode)
	}
	contact["firstname"] = "Augusta Ada"
	if r, _ = c.json(ctx, "PATCH", "contacts("+guidA+")?$select=contactid", contact, rep); r.StatusCode != http.StatusOK {
		t.Fatalf("upsert that updates: %d", r.StatusCode)
	}

	// 6. UpsertMultiple of 1,000 rows.
	started := time.Now()
	if r, _ = c.json(ctx, "POST", "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(1000, 1, team), nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("UpsertMultiple: %d", r.StatusCode)
	}
	t.Logf("UpsertMultiple of 1,000 rows over loopback: %v", time.Since(started))
	if n, _ := env.emu.Count("contact"); n != 1001 {
		t.Fatalf("contacts = %d, want 1001", n)
	}

	// 7. $batch with one failing change set under continue-on-error.
	bb := newBatch().
		changeSet("changeset_good", [4]string{"PATCH", "/api/data/v9.2/contacts(" + guidB + ")", `{"lastname":"Good"}`, "1"}).
		changeSet("changeset_bad",
			[4]string{"PATCH", "/api/data/v9.2/contacts(" + guidC + ")", `{"lastname":"Rolled back"}`, "1"},
			[4]string{"PATCH", "/api/data/v9.2/contacts(" + guidC + ")", `{"lastname":"` + strings.Repeat("x", 60) + `"}`, "2"})
	r, raw := c.do(ctx, "POST", "$batch", []byte(bb.body()), map[string]string{"Content-Type": bb.contentType(), "Prefer": "odata.continue-on-error"})
	parts := parseBatchResponse(t, result{status: r.StatusCode, header: r.Header, raw: raw})
	if r.StatusCode != http.StatusOK || len(parts) != 2 || parts[0].status != http.StatusNoContent || parts[1].status != http.StatusBadRequest {
		t.Fatalf("$batch: %d %+v", r.StatusCode, parts)
	}
	if _, err := env.emu.Row("contact", guidC); err == nil {
		t.Fatal("the failing change set was not rolled back")
	}

	// 8. A write refused for missing privileges.
	r, body := c.json(ctx, "POST", "contacts", map[string]any{"lastname": "Nope", "ownerid@odata.bind": "/teams(" + env.emu.TeamWithoutPrivilegesID() + ")"}, nil)
	if r.StatusCode != http.StatusForbidden || body["error"].(map[string]any)["code"] != "0x80040220" || !strings.Contains(fmt.Sprint(body), "prvCreateContact") {
		t.Fatalf("missing privilege: %d %v", r.StatusCode, body)
	}

	// 9. A 429 storm answered with Retry-After: the client waits and succeeds, and never retries early.
	if err := env.emu.SetStorm(Storm{Count: 1, RetryAfter: Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if r, _ = c.json(ctx, "GET", "WhoAmI", nil, nil); r.StatusCode != http.StatusOK || c.retries != 1 {
		t.Fatalf("after the storm: %d, %d retries", r.StatusCode, c.retries)
	}
	counters := env.emu.Counters()
	if counters["throttled"] != 1 || counters["early_retries"] != 0 {
		t.Fatalf("counters = %v", counters)
	}
}
