package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccQuickstart_noSecretInState applies examples/quickstart as it is (against the sandbox and a control
// plane with real agents) and searches the state file, and the CLI's output, for every secret the quick start
// uses or could: the Dataverse client secret, the Salesforce client secret and private key, and the control
// plane's API token. The quick start references its secrets (*_file), which the agent reads on its own host.
func TestAccQuickstart_noSecretInState(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5})
	t.Setenv(EnvEndpoint, env.URL)
	t.Setenv(EnvToken, accToken)
	src, err := os.ReadFile(filepath.Join(quickstartDir(t, nil, nil), "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	w := newTFWorkdir(t)
	w.env = append(w.env, "TF_VAR_sandbox_json="+env.sandboxJSON())
	apply := w.Apply(string(src))
	state, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state), `"crmsync_activation"`) || !strings.Contains(string(state), env.sb.Info.Dataverse.ClientID) {
		t.Fatalf("the state does not hold the quick start's resources: the search below would prove nothing:\n%.2000s", state)
	}
	sf, dv := env.sb.Info.Salesforce, env.sb.Info.Dataverse
	keyLines := strings.Split(strings.TrimSpace(string(sf.PrivateKeyPEM)), "\n")
	secrets := map[string]string{
		"the Dataverse client secret":     dv.ClientSecret,
		"the Salesforce client secret":    sf.ClientSecret,
		"the Salesforce private key":      keyLines[len(keyLines)/2],
		"the control plane's API token":   accToken,
		"the Salesforce private key head": keyLines[1],
	}
	for name, v := range secrets {
		if v == "" {
			t.Fatalf("%s is empty: the search would prove nothing", name)
		}
		if strings.Contains(string(state), v) {
			t.Errorf("the quick start's state holds %s", name)
		}
		if strings.Contains(apply.Output, v) {
			t.Errorf("the apply output holds %s", name)
		}
	}
}
