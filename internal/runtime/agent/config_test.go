package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

const yamlConfig = `
connector: prod
team_id: 7d2c9c5e-1111-4222-8333-944445555666
salesforce:
  login_url: https://login.salesforce.com
  auth: jwt_bearer
  client_id: abc
  username: integration@acme.example
  private_key_file: keys/sf.pem
dataverse:
  environment_url: https://acme.crm.dynamics.com
  tenant_id: acme.onmicrosoft.com
  client_id: 11111111-2222-3333-4444-555555555555
  client_secret_env: DV_SECRET
tables:
  - source_table: Account
    use_predefined_mappings: true
  - source_table: Contact
    use_predefined_mappings: true
    exclude_columns: [fax]
    columns:
      new_region: { source: Region__c }
tuning:
  flush_interval: 250ms
`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigReadsYAMLAndResolvesRelativePaths(t *testing.T) {
	p := writeFile(t, "c.yaml", yamlConfig)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Salesforce.PrivateKeyFile != filepath.Join(filepath.Dir(p), "keys/sf.pem") {
		t.Errorf("private_key_file = %s, want it relative to the config file", cfg.Salesforce.PrivateKeyFile)
	}
	if time.Duration(cfg.Tuning.FlushInterval) != 250*time.Millisecond {
		t.Errorf("flush_interval = %v", cfg.Tuning.FlushInterval)
	}
	if got := cfg.Tables[1].Columns["new_region"].Source; got != "Region__c" {
		t.Errorf("override = %q", got)
	}
}

func TestLoadConfigRejectsUnknownKeysAndReportsEveryProblem(t *testing.T) {
	if _, err := LoadConfig(writeFile(t, "c.yaml", yamlConfig+"surprise: 1\n")); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("unknown key: %v", err)
	}
	bad := strings.Replace(yamlConfig, "team_id: 7d2c9c5e-1111-4222-8333-944445555666", "", 1)
	bad = strings.Replace(bad, "exclude_columns: [fax]", "exclude_columns: [lastname]", 1)
	_, err := LoadConfig(writeFile(t, "c.json", bad))
	if err == nil {
		t.Fatal("an invalid config was accepted")
	}
	for _, want := range []string{"team_id is required", "required column contact.lastname", "exclude_columns[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

// Values that pass the old validation but are nonsense (team_id: not-a-guid, which
// then dead-lettered every record; status_interval: 1ns, which burns a core), duplicate keys in another case
// (the last one silently winning) and required keys left out are refused when the file is loaded, each
// naming its key.
func TestLoadConfigRefusesNonsenseNamingTheKey(t *testing.T) {
	for _, k := range []struct {
		name, old, new, want string
	}{
		{"team_id not a GUID", "team_id: 7d2c9c5e-1111-4222-8333-944445555666", "team_id: not-a-guid", "team_id"},
		{"dataverse.client_id not a GUID", "client_id: 11111111-2222-3333-4444-555555555555", "client_id: c", "dataverse.client_id"},
		{"status_interval of a nanosecond", "flush_interval: 250ms", "status_interval: 1ns", "tuning.status_interval"},
		{"flush_interval of an hour", "flush_interval: 250ms", "flush_interval: 1h", "tuning.flush_interval"},
		{"a key twice in another case", "connector: prod", "connector: prod\nConnector: other", "Connector"},
		{"a key in another case", "connector: prod", "Connector: prod", "Connector"},
		{"a required key left out", "  auth: jwt_bearer\n", "", "salesforce.auth is required"},
		{"a source table that is not an object name", "source_table: Account", "source_table: Account; DROP", "tables[0].source_table"},
		{"a login URL that is not a URL", "login_url: https://login.salesforce.com", "login_url: login.salesforce.com", "salesforce.login_url"},
	} {
		_, err := LoadConfig(writeFile(t, "c.yaml", strings.Replace(yamlConfig, k.old, k.new, 1)))
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: %v; want an error naming %q", k.name, err, k.want)
		}
	}
}

func TestSecretsResolveFromEnvAndFile(t *testing.T) {
	t.Setenv("CRMSYNC_TEST_SECRET", "from-env")
	if v, err := secret(policy.Refs{Unrestricted: true}, "x", "", "CRMSYNC_TEST_SECRET", "", false); err != nil || v != "from-env" {
		t.Errorf("env: %q %v", v, err)
	}
	f := writeFile(t, "s", "from-file\n")
	if v, err := secret(policy.Refs{Unrestricted: true}, "x", "", "", f, false); err != nil || v != "from-file" {
		t.Errorf("file: %q %v", v, err)
	}
	if _, err := secret(policy.Refs{Unrestricted: true}, "dataverse.client_secret", "", "CRMSYNC_TEST_UNSET_VAR", "", false); err == nil || !strings.Contains(err.Error(), "CRMSYNC_TEST_UNSET_VAR") {
		t.Errorf("an unset variable must be named in the error: %v", err)
	}
}

func TestChangeTopicsOfStandardAndCustomObjects(t *testing.T) {
	for obj, want := range map[string]string{"Contact": "/data/ContactChangeEvent", "Invoice__c": "/data/Invoice__ChangeEvent"} {
		if got := changeTopic(obj); got != want {
			t.Errorf("changeTopic(%s) = %s, want %s", obj, got, want)
		}
	}
}

func TestCanonicalMoneyIgnoresDataverseRounding(t *testing.T) {
	if a, b := canonValue("Money", 123.456), canonValue("Money", 123.46); a != b {
		t.Errorf("Money 123.456 (Salesforce) and 123.46 (Dataverse) compare as %q and %q", a, b)
	}
	if a, b := canonValue("Money", 10.0), canonValue("Money", 10.01); a == b {
		t.Errorf("a real difference of a cent is hidden: %q", a)
	}
	if a, b := canonValue("Double", 0.123456789), canonValue("Double", 0.12346); a != b {
		t.Errorf("Double at 5 decimals: %q vs %q", a, b)
	}
}
