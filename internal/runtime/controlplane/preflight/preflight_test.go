package preflight_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

type env struct {
	sb      *sandbox.Sandbox
	conn    api.Connector
	secrets store.Secrets
	maps    []api.TableMapping
}

func newEnv(t *testing.T, sfCfg sfemu.Config) *env {
	t.Helper()
	return newEnvWith(t, sandbox.Options{Salesforce: sfCfg})
}

// newEnvWith starts a sandbox with opts (directory, seed data and seed set here).
func newEnvWith(t *testing.T, opts sandbox.Options) *env {
	t.Helper()
	opts.Dir, opts.Contacts, opts.Accounts, opts.Seed = filepath.Join(t.TempDir(), "sb"), 30, 10, 3
	sb, err := sandbox.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info
	conn := api.Connector{ID: "c1", ConnectorSpec: api.ConnectorSpec{
		Name: "test", TeamID: i.Dataverse.TeamID,
		Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion,
			PubSubAddr: i.Salesforce.PubSubAddr, Auth: "jwt_bearer", ClientID: i.Salesforce.ClientID,
			Username: i.Salesforce.Username, CAFile: i.Salesforce.CAFile},
		Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL,
			TenantID: i.Dataverse.TenantID, ClientID: i.Dataverse.ClientID, CAFile: i.Dataverse.CAFile},
	}}
	secrets := store.Secrets{"salesforce.private_key": string(i.Salesforce.PrivateKeyPEM), "dataverse.client_secret": i.Dataverse.ClientSecret}
	maps := []api.TableMapping{
		{ID: "m1", ConnectorID: "c1", TableConfig: mapping.TableConfig{SourceTable: "Account", UsePredefined: true}},
		{ID: "m2", ConnectorID: "c1", TableConfig: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}},
	}
	return &env{sb: sb, conn: conn, secrets: secrets, maps: maps}
}

// hosts allows the sandbox's loopback host; refs its directory and the tests' variables.
func (e *env) hosts() policy.Hosts { return policy.Hosts{Allow: []string{"127.0.0.1"}} }

func (e *env) refs() policy.Refs {
	return policy.Refs{Dirs: []string{filepath.Dir(e.sb.Info.Salesforce.CAFile)}, EnvPrefixes: []string{"CRMSYNC_TEST_"}}
}

// checker is a Checker allowed to reach the sandbox and read its files.
func (e *env) checker() *preflight.Checker {
	return preflight.NewChecker(preflight.Config{Hosts: e.hosts(), Refs: e.refs()})
}

func byName(t *testing.T, checks []api.PreflightCheck) map[string]api.PreflightCheck {
	t.Helper()
	want := []string{"salesforce_credentials", "dataverse_credentials", "change_topics", "team_privileges", "mappings", "api_budget", "data_size"}
	if len(checks) != len(want) {
		t.Fatalf("got %d checks, want all %d: %+v", len(checks), len(want), checks)
	}
	out := map[string]api.PreflightCheck{}
	for i, c := range checks {
		if c.Name != want[i] {
			t.Errorf("check %d is %s, want %s", i, c.Name, want[i])
		}
		if c.Message == "" {
			t.Errorf("check %s has no message", c.Name)
		}
		out[c.Name] = c
	}
	return out
}

func TestWorkingConnectorPassesEveryCheck(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	checks := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))
	for _, c := range checks {
		// The predefined columns carry length warnings (Salesforce fields longer than their Dataverse
		// columns): a warning passes.
		if !c.OK || (c.Warning && c.Name != "mappings") {
			t.Errorf("%s: ok=%v warning=%v: %s", c.Name, c.OK, c.Warning, c.Message)
		}
	}
	for name, want := range map[string]string{
		"change_topics":   "/data/ContactChangeEvent",
		"team_privileges": "prvAppendToAccount", // contact.parentcustomerid → account
		"data_size":       "40 records",
	} {
		if !strings.Contains(checks[name].Message, want) {
			t.Errorf("%s: %q does not mention %q", name, checks[name].Message, want)
		}
	}
}

func TestTeamWithoutPrivilegesFailsNamingEveryMissingPrivilege(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	e.conn.TeamID = e.sb.Info.Dataverse.TeamWithoutPrivilegesID
	checks := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))
	tp := checks["team_privileges"]
	if tp.OK {
		t.Fatalf("team_privileges passed for a team without privileges: %s", tp.Message)
	}
	for _, p := range []string{"prvCreateAccount", "prvReadAccount", "prvWriteAccount", "prvAppendAccount",
		"prvCreateContact", "prvReadContact", "prvWriteContact", "prvAppendContact", "prvAppendToAccount"} {
		if !strings.Contains(tp.Message, p) {
			t.Errorf("team_privileges message does not name %s: %s", p, tp.Message)
		}
	}
	for name, c := range checks {
		if name != "team_privileges" && !c.OK {
			t.Errorf("%s failed too: %s", name, c.Message)
		}
	}
}

func TestUnknownTeamFails(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	e.conn.TeamID = "00000000-0000-0000-0000-0000000000aa"
	tp := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))["team_privileges"]
	if tp.OK || !strings.Contains(tp.Message, "does not exist") {
		t.Errorf("team_privileges for an unknown team: ok=%v %s", tp.OK, tp.Message)
	}
}

func TestWrongCredentialsFailTheirSideAndTheChecksThatNeedIt(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	e.secrets["dataverse.client_secret"] = "wrong"
	checks := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))
	if c := checks["dataverse_credentials"]; c.OK {
		t.Errorf("dataverse_credentials passed with a wrong secret: %s", c.Message)
	}
	if c := checks["team_privileges"]; c.OK || !strings.Contains(c.Message, "not checked") {
		t.Errorf("team_privileges without Dataverse access: ok=%v %s", c.OK, c.Message)
	}
	if c := checks["salesforce_credentials"]; !c.OK {
		t.Errorf("salesforce_credentials failed: %s", c.Message)
	}
}

func TestSecretReferencesThisHostCannotResolveAreWarnings(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	delete(e.secrets, "salesforce.private_key")
	e.conn.Salesforce.PrivateKeyEnv = "CRMSYNC_TEST_UNSET_KEY_VARIABLE"
	checks := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))
	for _, name := range []string{"salesforce_credentials", "change_topics", "api_budget", "data_size", "mappings"} {
		if c := checks[name]; !c.OK || !c.Warning {
			t.Errorf("%s: ok=%v warning=%v, want a warning: %s", name, c.OK, c.Warning, c.Message)
		}
	}
	if c := checks["salesforce_credentials"]; !strings.Contains(c.Message, "CRMSYNC_TEST_UNSET_KEY_VARIABLE") {
		t.Errorf("the warning does not name the variable: %s", c.Message)
	}
	if c := checks["team_privileges"]; !c.OK || c.Warning {
		t.Errorf("team_privileges (Dataverse side works): ok=%v warning=%v %s", c.OK, c.Warning, c.Message)
	}

	// A referenced variable that is set on this host is used.
	t.Setenv("CRMSYNC_TEST_SET_KEY_VARIABLE", string(e.sb.Info.Salesforce.PrivateKeyPEM))
	e.conn.Salesforce.PrivateKeyEnv = "CRMSYNC_TEST_SET_KEY_VARIABLE"
	if c := e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps)[0]; !c.OK || c.Warning {
		t.Errorf("salesforce_credentials with the key in the environment: %+v", c)
	}
}

func TestMappingErrorsFailWithTheirPathAndUnknownObjectsHaveNoTopic(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	e.maps[1].Columns = map[string]mapping.ColumnOverride{"new_region": {Source: "Region__c"}}
	e.maps = append(e.maps, api.TableMapping{ID: "m3", TableConfig: mapping.TableConfig{SourceTable: "Widget__c", DestinationTable: "new_widget"}})
	checks := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))
	m := checks["mappings"]
	if m.OK {
		t.Fatalf("mappings passed with unknown columns and tables: %s", m.Message)
	}
	for _, want := range []string{"columns.new_region.source", "Region__c", "Widget__c", "new_widget"} {
		if !strings.Contains(m.Message, want) {
			t.Errorf("mappings message does not mention %s: %s", want, m.Message)
		}
	}
	if c := checks["change_topics"]; c.OK || !strings.Contains(c.Message, "/data/Widget__ChangeEvent") {
		t.Errorf("change_topics: ok=%v %s", c.OK, c.Message)
	}
	// The errors came mixed with the predefined mappings' length caveats in one message. The
	// caveats are kept apart.
	if strings.Contains(m.Message, "holds up to") {
		t.Errorf("the failed check's message carries caveats among its errors: %s", m.Message)
	}
	if !slices.ContainsFunc(m.Caveats, func(c string) bool {
		return strings.Contains(c, "LastName holds up to 80 characters but lastname takes 50")
	}) {
		t.Errorf("the length caveat is not listed apart: %q", m.Caveats)
	}
}

func TestAPIBudgetFailsWhenTheLoadWouldExhaustTheDailyLimit(t *testing.T) {
	e := newEnv(t, sfemu.Config{APIRequestsMax: 25})
	c := byName(t, e.checker().Preflight(t.Context(), e.conn, e.secrets, e.maps))["api_budget"]
	if c.OK || !strings.Contains(c.Message, "not enough") {
		t.Errorf("api_budget with a 25-call daily limit: ok=%v %s", c.OK, c.Message)
	}
}

func TestDataSizeAboveTheGuidanceIsAWarning(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	ch := preflight.NewChecker(preflight.Config{RowBytes: 1 << 20, SizeGuidance: 10 << 20, Hosts: e.hosts(), Refs: e.refs()})
	c := byName(t, ch.Preflight(t.Context(), e.conn, e.secrets, e.maps))["data_size"]
	if !c.OK || !c.Warning || !strings.Contains(c.Message, "above the guidance") {
		t.Errorf("data_size with 40 MiB against a 10 MiB guidance: ok=%v warning=%v %s", c.OK, c.Warning, c.Message)
	}
}

func TestLiveSchemasReadBothSidesAndTheRecordCount(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	src, dst, n, err := e.checker().LiveSchemas(t.Context(), e.conn, e.secrets, "Contact", "contact")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.Field("LastName"); !ok {
		t.Error("the describe has no LastName")
	}
	if _, ok := dst.Column("parentcustomerid"); !ok {
		t.Error("the table definition has no parentcustomerid")
	}
	if n != 30 {
		t.Errorf("count %d, want 30", n)
	}
	if _, _, _, err := e.checker().LiveSchemas(t.Context(), e.conn, e.secrets, "Contact WHERE Id != null", "contact"); err == nil {
		t.Error("a source table that is not an object name was accepted (it goes into SOQL)")
	}
}

// recorder keeps every request it gets and refuses them.
type recorder struct {
	mu  sync.Mutex
	got bytes.Buffer
	n   int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.n++
	fmt.Fprintf(&r.got, "%s %s %v\n%s\n", req.Method, req.URL, req.Header, b)
	r.mu.Unlock()
	http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
}

func (r *recorder) seen() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String(), r.n
}

// Preflight resolved *_file and *_env references on the control plane's host and sent
// the content wherever the connector's URLs pointed. With the zero reference policy (crmsync serve's own) it
// reads nothing of this host: the side is a warning for the agent to resolve, and the file's content never
// leaves.
func TestTheZeroReferencePolicyReadsNothingOfThisHost(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	hostSecret := filepath.Join(t.TempDir(), "host.secret")
	if err := os.WriteFile(hostSecret, []byte("HOSTFILEcanary-2f9d"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOST_ENV_CANARY", "HOSTENVcanary-8c1e")
	delete(e.secrets, "dataverse.client_secret")
	e.conn.Dataverse.ClientSecretFile, e.conn.Dataverse.AuthorityURL, e.conn.Dataverse.CAFile = hostSecret, srv.URL, ""
	ch := preflight.NewChecker(preflight.Config{Hosts: e.hosts()})
	checks := byName(t, ch.Preflight(t.Context(), e.conn, e.secrets, e.maps))
	if c := checks["dataverse_credentials"]; !c.OK || !c.Warning || !strings.Contains(c.Message, "agent") {
		t.Errorf("dataverse_credentials with a file reference: ok=%v warning=%v %s; want a warning for the agent", c.OK, c.Warning, c.Message)
	}
	delete(e.secrets, "salesforce.private_key")
	e.conn.Salesforce.PrivateKeyEnv = "HOST_ENV_CANARY"
	_ = ch.Preflight(t.Context(), e.conn, e.secrets, e.maps)
	_, _, _, _ = ch.LiveSchemas(t.Context(), e.conn, e.secrets, "Contact", "contact")
	got, _ := rec.seen()
	for _, v := range []string{"HOSTFILEcanary-2f9d", "HOSTENVcanary-8c1e"} {
		if strings.Contains(got, v) {
			t.Errorf("the connector's authority received %s from this host", v)
		}
	}
}

// The destination policy holds for every connection preflight makes; a host it does not allow is
// never contacted, and the check that needed it says why.
func TestADestinationOutsideThePolicyIsNeverContacted(t *testing.T) {
	e := newEnv(t, sfemu.Config{})
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	e.conn.Dataverse.AuthorityURL = srv.URL
	ch := preflight.NewChecker(preflight.Config{Refs: e.refs()}) // the real services' hosts only
	checks := byName(t, ch.Preflight(t.Context(), e.conn, e.secrets, e.maps))
	if _, n := rec.seen(); n != 0 {
		t.Errorf("a host outside the policy got %d requests", n)
	}
	for _, name := range []string{"salesforce_credentials", "dataverse_credentials"} {
		if c := checks[name]; c.OK || !strings.Contains(c.Message, "destination policy") {
			t.Errorf("%s toward a refused host: ok=%v %s; want a failure naming the policy", name, c.OK, c.Message)
		}
	}
}
