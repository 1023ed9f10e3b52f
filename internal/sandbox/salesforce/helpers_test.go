package salesforce

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

	"github.com/golang-jwt/jwt/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/certs"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// testOrg is an emulator served on loopback httptest servers: the login host, the instance host and the
// admin API, with a JWT key pair generated for the test.
type testOrg struct {
	t        *testing.T
	e        *Emulator
	clock    *clock.Clock
	key      *certs.SigningKey
	login    *httptest.Server
	instance *httptest.Server
	admin    *httptest.Server
	client   *http.Client
	tok      string
}

func newTestOrg(t *testing.T, contacts, accounts int, configure ...func(*Config)) *testOrg {
	t.Helper()
	key, err := certs.NewSigningKey("test connected app")
	if err != nil {
		t.Fatal(err)
	}
	var login, instance, admin http.Handler
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	o := &testOrg{t: t, clock: clock.New(), key: key, client: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
	o.login = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { login.ServeHTTP(w, r) }))
	o.instance = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { instance.ServeHTTP(w, r) }))
	o.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { admin.ServeHTTP(w, r) }))
	t.Cleanup(func() { o.login.Close(); o.instance.Close(); o.admin.Close() })
	cfg := Config{
		Clock: o.clock, LoginURL: o.login.URL, InstanceURL: o.instance.URL, JWTCertificate: key.Cert,
		Seed: 7, Contacts: contacts, Accounts: accounts,
	}
	for _, f := range configure {
		f(&cfg)
	}
	o.e, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.e.Close)
	login, instance, admin = o.e.LoginHandler(), o.e.InstanceHandler(), o.e.AdminHandler()
	return o
}

// token returns an access token from the client credentials flow (fetched once).
func (o *testOrg) token() string {
	o.t.Helper()
	if o.tok == "" {
		resp, body := o.form(o.instance.URL, url.Values{"grant_type": {"client_credentials"},
			"client_id": {o.e.cfg.ClientID}, "client_secret": {o.e.cfg.ClientSecret}})
		if resp.StatusCode != http.StatusOK {
			o.t.Fatalf("client credentials: %d %s", resp.StatusCode, body)
		}
		var tr map[string]string
		mustJSON(o.t, body, &tr)
		o.tok = tr["access_token"]
	}
	return o.tok
}

// form posts a token request to host.
func (o *testOrg) form(host string, v url.Values) (*http.Response, []byte) {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodPost, host+"/services/oauth2/token", strings.NewReader(v.Encode()))
	if err != nil {
		o.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return o.send(req)
}

// assertion signs JWT bearer claims with the org's key, starting from valid claims.
func (o *testOrg) assertion(change func(jwt.MapClaims)) string {
	o.t.Helper()
	claims := jwt.MapClaims{
		"iss": o.e.cfg.ClientID, "sub": o.e.cfg.Username, "aud": o.e.cfg.LoginURL,
		"exp": o.clock.Now().Add(3 * time.Minute).Unix(),
	}
	if change != nil {
		change(claims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(o.key.Key)
	if err != nil {
		o.t.Fatal(err)
	}
	return s
}

// do sends an authenticated request to the instance; body may be nil, a string or a value to encode.
func (o *testOrg) do(method, path string, body any, header ...string) (*http.Response, []byte) {
	o.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			o.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, o.instance.URL+path, r)
	if err != nil {
		o.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+o.token())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return o.send(req)
}

func (o *testOrg) send(req *http.Request) (*http.Response, []byte) {
	o.t.Helper()
	resp, err := o.client.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		o.t.Fatal(err)
	}
	return resp, body
}

// adminDo calls the admin API.
func (o *testOrg) adminDo(method, path string, body string) (*http.Response, []byte) {
	o.t.Helper()
	req, err := http.NewRequest(method, o.admin.URL+path, strings.NewReader(body))
	if err != nil {
		o.t.Fatal(err)
	}
	return o.send(req)
}

// query runs a SOQL query through REST and decodes the page.
func (o *testOrg) query(soql string, all bool) queryPage {
	o.t.Helper()
	res := "query"
	if all {
		res = "queryAll"
	}
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/"+res+"?q="+url.QueryEscape(soql), nil)
	if resp.StatusCode != http.StatusOK {
		o.t.Fatalf("%s: %d %s", soql, resp.StatusCode, body)
	}
	var p queryPage
	mustJSON(o.t, body, &p)
	return p
}

type queryPage struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

// restErr decodes a REST error array with exactly one element.
func restErr(t *testing.T, body []byte) restErrorBody {
	t.Helper()
	var errs []restErrorBody
	if err := json.Unmarshal(body, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("want a one-element error array, got %s (%v)", body, err)
	}
	return errs[0]
}

func mustJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
