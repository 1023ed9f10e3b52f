package dataverse

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// testEnv runs one emulator behind loopback httptest servers and talks to it with a plain net/http client,
// as a real Dataverse client would.
type testEnv struct {
	t      *testing.T
	emu    *Emulator
	clock  *clock.Clock
	api    *httptest.Server
	auth   *httptest.Server
	admin  *httptest.Server
	client *http.Client
	token  string
}

func newTestEnv(t *testing.T, configure ...func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{t: t, clock: clock.New()}
	env.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { env.emu.APIHandler().ServeHTTP(w, r) }))
	env.auth = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { env.emu.AuthorityHandler().ServeHTTP(w, r) }))
	env.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { env.emu.AdminHandler().ServeHTTP(w, r) }))
	t.Cleanup(func() {
		env.api.Close()
		env.auth.Close()
		env.admin.Close()
	})
	cfg := Config{Clock: env.clock, EnvironmentURL: env.api.URL, AuthorityURL: env.auth.URL, Seed: 7}
	for _, f := range configure {
		f(&cfg)
	}
	emu, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.emu = emu
	t.Cleanup(emu.Close)
	env.client = &http.Client{Timeout: 30 * time.Second}
	return env
}

// tokenForm is a valid client-credentials request.
func (env *testEnv) tokenForm() url.Values {
	cfg := env.emu.Config()
	return url.Values{"client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret},
		"scope": {cfg.EnvironmentURL + "/.default"}, "grant_type": {"client_credentials"}}
}

func (env *testEnv) requestToken(form url.Values) (int, map[string]any) {
	env.t.Helper()
	resp, err := env.client.PostForm(env.auth.URL+"/"+env.emu.Config().TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		env.t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		env.t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

func (env *testEnv) login() {
	env.t.Helper()
	status, body := env.requestToken(env.tokenForm())
	if status != http.StatusOK {
		env.t.Fatalf("token: status %d, body %v", status, body)
	}
	env.token = body["access_token"].(string)
}

// result is one Web API answer.
type result struct {
	status int
	header http.Header
	raw    []byte
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("answer is not a JSON object (status %d): %v\n%s", r.status, err, r.raw)
	}
	return m
}

// errorCode returns error.code of a Dataverse error body, failing the test when the shape is wrong.
func (r result) errorCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no error object: %s", r.raw)
	}
	code, _ := e["code"].(string)
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("error has no message: %s", r.raw)
	}
	return code
}

func (r result) errorMessage(t *testing.T) string {
	t.Helper()
	return r.json(t)["error"].(map[string]any)["message"].(string)
}

// call sends a Web API request; path is relative to /api/data/v9.2/. Headers alternate name, value.
func (env *testEnv) call(method, path string, body any, headers ...string) result {
	env.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			env.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	// Real clients percent-encode spaces in $filter and friends.
	req, err := http.NewRequest(method, env.api.URL+"/api/data/v9.2/"+strings.ReplaceAll(path, " ", "%20"), rd)
	if err != nil {
		env.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if env.token != "" {
		req.Header.Set("Authorization", "Bearer "+env.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := env.client.Do(req)
	if err != nil {
		env.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		env.t.Fatalf("reading %s %s: %v", method, path, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func (env *testEnv) mustStatus(r result, want int) result {
	env.t.Helper()
	if r.status != want {
		env.t.Fatalf("status %d, want %d: %s", r.status, want, r.raw)
	}
	return r
}

// adminCall sends an admin API request and decodes a JSON answer into out (when out is not nil).
func (env *testEnv) adminCall(method, path string, body any, out any) int {
	env.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, env.admin.URL+path, rd)
	resp, err := env.client.Do(req)
	if err != nil {
		env.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			env.t.Fatalf("admin %s %s: answer is not JSON: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// export returns the NDJSON export of a table, for before/after comparisons.
func (env *testEnv) export(table string) string {
	env.t.Helper()
	var b bytes.Buffer
	if err := env.emu.ExportNDJSON(table, &b); err != nil {
		env.t.Fatalf("export %s: %v", table, err)
	}
	return b.String()
}

const (
	guidA = "00000000-0000-0000-0000-00000000000a"
	guidB = "00000000-0000-0000-0000-00000000000b"
	guidC = "00000000-0000-0000-0000-00000000000c"
)

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	return b
}
