package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

// TestAccSecretsNeverReachTraceLogs applies, plans and destroys a connector with inline secrets through the
// provider binary, as a user's Terraform runs it, with TF_LOG=TRACE: neither the canary Dataverse secret,
// nor the inline private key, nor the control plane token appears anywhere in the log, which does hold the
// provider's own trace lines.
func TestAccSecretsNeverReachTraceLogs(t *testing.T) {
	canary := fmt.Sprintf("canary-%d-c4n4ry", os.Getpid())
	env := startSyncEnv(t, syncOptions{contacts: 30, accounts: 5, sandbox: func(o *sandbox.Options) { o.Dataverse.ClientSecret = canary }})
	logPath := filepath.Join(t.TempDir(), "terraform.log")
	w := newTFWorkdirWithBinary(t, "TF_LOG=TRACE", "TF_LOG_PATH="+logPath, EnvEndpoint+"="+env.URL, EnvToken+"="+accToken)

	keyPEM := string(env.sb.Info.Salesforce.PrivateKeyPEM)
	keyLines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	keyLine := keyLines[len(keyLines)/2] // a line of the key's body
	connector := strings.Replace(env.connectorHCL("acc-canary", env.sb.Info.Dataverse.TeamID),
		fmt.Sprintf("private_key_file = %q", env.sb.Info.Salesforce.PrivateKeyFile), fmt.Sprintf("private_key = %q", keyPEM), 1)
	if !strings.Contains(connector, canary) || !strings.Contains(connector, "private_key =") {
		t.Fatal("the configuration does not carry the inline secrets")
	}
	cfg := requiredProviders + "provider \"crmsync\" {}\n" + connector + `
resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact"
}
resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  depends_on   = [crmsync_table_mapping.contact]
}
data "crmsync_sync_status" "sandbox" {
  connector_id = crmsync_activation.sandbox.connector_id
}
`
	w.Apply(cfg)
	if run := w.Plan(cfg); run.Changes {
		t.Errorf("plan after apply is not empty:\n%s", run.Output)
	}
	w.Destroy(cfg)

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{"provider.terraform-provider-crmsync", "created connector", "activated connector; waiting for its agent"} {
		if !strings.Contains(log, want) {
			t.Errorf("the TRACE log lacks %q: the test would prove nothing", want)
		}
	}
	for name, secret := range map[string]string{"the Dataverse client secret": canary, "the private key": keyLine, "the API token": accToken} {
		if i := strings.Index(log, secret); i >= 0 {
			t.Errorf("%s appears in the TRACE log: …%s…", name, log[max(0, i-200):min(len(log), i+len(secret)+50)])
		}
	}
	t.Logf("TRACE log: %d bytes, %d lines", len(log), strings.Count(log, "\n"))
}
