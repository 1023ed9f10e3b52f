package controlplane

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Outbound destinations are a policy. By default a connector may name only the real services'
// hosts, each field its own service's; anything else (loopback included) is refused when it is declared,
// with a 400 naming the field, unless the operator allowed the host.
func TestDestinationsOutsideThePolicyAreRefusedAtDeclaration(t *testing.T) {
	e := newEnv(t)
	base := e.createConnector(t, "base")
	for _, k := range []struct {
		name  string
		edit  func(*api.ConnectorSpec)
		field string
	}{
		{"a login URL elsewhere", func(s *api.ConnectorSpec) { s.Salesforce.LoginURL = "https://login.evil.example" }, "salesforce.login_url"},
		{"a look-alike host", func(s *api.ConnectorSpec) { s.Salesforce.LoginURL = "https://login.salesforce.com.evil.example" }, "salesforce.login_url"},
		{"an instance on loopback", func(s *api.ConnectorSpec) { s.Salesforce.InstanceURL = "http://127.0.0.1:8080" }, "salesforce.instance_url"},
		{"Salesforce's host for Dataverse", func(s *api.ConnectorSpec) { s.Dataverse.EnvironmentURL = "https://acme.my.salesforce.com" }, "dataverse.environment_url"},
		{"an authority elsewhere", func(s *api.ConnectorSpec) { s.Dataverse.AuthorityURL = "https://login.evil.example" }, "dataverse.authority_url"},
		{"Pub/Sub on loopback", func(s *api.ConnectorSpec) { s.Salesforce.PubSubAddr = "127.0.0.1:7443" }, "salesforce.pubsub_addr"},
	} {
		spec := connectorSpec("refused")
		k.edit(&spec)
		status, body, _ := e.raw(t, "POST", "/v1/connectors", mustJSON(t, spec), nil)
		if status != http.StatusBadRequest || body.Code != CodeInvalidArgument || body.Field != k.field {
			t.Errorf("create with %s: %d %s field %q (%s), want 400 invalid_argument field %q", k.name, status, body.Code, body.Field, body.Message, k.field)
		}
		upd := connectorSpec("base")
		k.edit(&upd)
		if status, body, _ := e.raw(t, "PUT", "/v1/connectors/"+base.ID, mustJSON(t, upd), nil); status != http.StatusBadRequest || body.Field != k.field {
			t.Errorf("update with %s: %d field %q, want 400 field %q", k.name, status, body.Field, k.field)
		}
	}
	// The real services' hosts of every cloud pass.
	ok := connectorSpec("real-hosts")
	ok.Salesforce.LoginURL, ok.Salesforce.InstanceURL = "https://test.salesforce.com", "https://acme--uat.sandbox.my.salesforce.com"
	ok.Salesforce.PubSubAddr = "api.deu.pubsub.salesforce.com:7443"
	ok.Dataverse.EnvironmentURL, ok.Dataverse.AuthorityURL = "https://acme.crm.microsoftdynamics.us", "https://login.microsoftonline.us"
	if _, err := e.client.CreateConnector(t.Context(), ok); err != nil {
		t.Errorf("the real services' hosts were refused: %v", err)
	}
	// An operator-allowed host passes, on any field.
	allowed := newEnv(t, func(c *Config) { c.Hosts = policy.Hosts{Allow: []string{"127.0.0.1"}} })
	spec := connectorSpec("sandboxed")
	spec.Salesforce.LoginURL, spec.Dataverse.AuthorityURL, spec.Salesforce.PubSubAddr = "http://127.0.0.1:8443", "http://127.0.0.1:8444", "127.0.0.1:7443"
	if _, err := allowed.client.CreateConnector(t.Context(), spec); err != nil {
		t.Errorf("an allowed host was refused: %v", err)
	}
}

// A reference to the data directory's key, /etc/shadow or the API token's variable was
// accepted and resolved on the control plane's host. References are refused at declaration unless they are
// inside what the operator allowed, and some never are.
func TestReferencesOutsideThePolicyAreRefusedAtDeclaration(t *testing.T) {
	allowedDir := t.TempDir()
	outside := t.TempDir()
	for _, f := range []string{filepath.Join(allowedDir, "dv.secret"), filepath.Join(outside, "dv.secret")} {
		if err := os.WriteFile(f, []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var dataDir string
	e := newEnv(t, func(c *Config) {
		c.Refs = policy.Refs{Dirs: []string{allowedDir, "/etc"}, EnvPrefixes: []string{"APP_", "CRMSYNC_"}}
	})
	dataDir = e.dir
	e.srv.cfg.Refs.DenyPaths = []string{dataDir}
	link := filepath.Join(allowedDir, "innocent")
	if err := os.Symlink(filepath.Join(dataDir, "secret.key"), link); err != nil {
		t.Fatal(err)
	}
	fileRef := func(p string) func(*api.ConnectorSpec) {
		return func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret, s.Dataverse.ClientSecretFile = "", p }
	}
	envRef := func(n string) func(*api.ConnectorSpec) {
		return func(s *api.ConnectorSpec) { s.Dataverse.ClientSecret, s.Dataverse.ClientSecretEnv = "", n }
	}
	for _, k := range []struct {
		name  string
		edit  func(*api.ConnectorSpec)
		field string
	}{
		{"the data directory's key", fileRef(filepath.Join(dataDir, "secret.key")), "dataverse.client_secret_file"},
		{"the key by a link from an allowed directory", fileRef(link), "dataverse.client_secret_file"},
		{"the password database", fileRef("/etc/shadow"), "dataverse.client_secret_file"},
		{"a file outside the allowed directories", fileRef(filepath.Join(outside, "dv.secret")), "dataverse.client_secret_file"},
		{"a dotted path out of an allowed directory", fileRef(allowedDir + "/../" + filepath.Base(outside) + "/dv.secret"), "dataverse.client_secret_file"},
		{"the API token's variable", envRef("CRMSYNC_TOKEN"), "dataverse.client_secret_env"},
		{"a variable without an allowed prefix", envRef("HOME"), "dataverse.client_secret_env"},
		{"a CA file outside", func(s *api.ConnectorSpec) { s.Salesforce.CAFile = filepath.Join(outside, "dv.secret") }, "salesforce.ca_file"},
	} {
		spec := connectorSpec("ref")
		k.edit(&spec)
		status, body, _ := e.raw(t, "POST", "/v1/connectors", mustJSON(t, spec), nil)
		if status != http.StatusBadRequest || body.Code != CodeInvalidArgument || body.Field != k.field {
			t.Errorf("%s: %d %s field %q (%s), want 400 invalid_argument field %q", k.name, status, body.Code, body.Field, body.Message, k.field)
		}
	}
	for i, edit := range []func(*api.ConnectorSpec){fileRef(filepath.Join(allowedDir, "dv.secret")), envRef("APP_DV_SECRET")} {
		spec := connectorSpec("ref-ok-" + string(rune('a'+i)))
		edit(&spec)
		if _, err := e.client.CreateConnector(t.Context(), spec); err != nil {
			t.Errorf("an allowed reference was refused: %v", err)
		}
	}
	// By default no reference is allowed at all.
	strict := newEnv(t)
	spec := connectorSpec("no-refs")
	fileRef(filepath.Join(allowedDir, "dv.secret"))(&spec)
	if status, body, _ := strict.raw(t, "POST", "/v1/connectors", mustJSON(t, spec), nil); status != http.StatusBadRequest || body.Field != "dataverse.client_secret_file" {
		t.Errorf("a file reference without any allowed directory: %d field %q (%s)", status, body.Field, body.Message)
	}
}
