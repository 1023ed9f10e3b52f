package provider

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// cliVersion is the major and minor version of the CLI under test (TF_ACC_TERRAFORM_PATH), from `version -json`;
// Terraform and OpenTofu both answer with terraform_version ("1.8.5-dev", "1.12.6").
func cliVersion(t *testing.T) (major, minor int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("TF_ACC_TERRAFORM_PATH"), "version", "-json")
	empty := filepath.Join(t.TempDir(), "empty.tfrc")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+empty, "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s version -json: %v", os.Getenv("TF_ACC_TERRAFORM_PATH"), err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version -json: %v: %s", err, out)
	}
	if _, err := fmt.Sscanf(v.Version, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("version -json: terraform_version %q: %v", v.Version, err)
	}
	return major, minor
}

// writeOnlySupported reports whether the CLI under test accepts write-only arguments (Terraform and OpenTofu 1.11
// and later).
func writeOnlySupported(t *testing.T) bool {
	major, minor := cliVersion(t)
	return major > 1 || major == 1 && minor >= 11
}

// skipUnlessWriteOnly skips a test of write-only arguments under a CLI without them (Terraform 1.8.5 of make
// tools); make test runs them under OpenTofu 1.12 and, when the machine has one, Terraform 1.11 or later.
func skipUnlessWriteOnly(t *testing.T) {
	t.Helper()
	accPreCheck(t)
	if !writeOnlySupported(t) {
		major, minor := cliVersion(t)
		t.Skipf("write-only arguments need Terraform or OpenTofu 1.11 or later; %s is %d.%d", os.Getenv("TF_ACC_TERRAFORM_PATH"), major, minor)
	}
}

// testPrivateKeyPEM generates an RSA key at test time (never a committed key).
func testPrivateKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func canaryValue(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// writeOnlyConnector is a connector whose Salesforce private key and Dataverse client secret are write-only,
// fed by ephemeral variables (never in a plan or state), with the versions given.
func writeOnlyConnector(cp *controlPlane, keyVersion, secretVersion int) string {
	return cp.providerBlock() + fmt.Sprintf(`
variable "sf_key" {
  type      = string
  sensitive = true
  ephemeral = true
}

variable "dv_secret" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "crmsync_connector" "test" {
  name    = "acc-write-only"
  team_id = %q
  salesforce = {
    login_url              = "https://login.salesforce.com"
    auth                   = "jwt_bearer"
    client_id              = "3MVG9test"
    username               = "integration@acme.example"
    private_key_wo         = var.sf_key
    private_key_wo_version = %d
  }
  dataverse = {
    environment_url          = "https://acme.crm.dynamics.com"
    tenant_id                = "9e1d2c3b-4a5f-4e6d-8c7b-1a2b3c4d5e6f"
    client_id                = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"
    client_secret_wo         = var.dv_secret
    client_secret_wo_version = %d
  }
}
`, teamA, keyVersion, secretVersion)
}

// planFileText returns the text of every entry of a saved plan (a zip archive whose entries are compressed, so
// a secret in it would not show in the raw bytes).
func planFileText(t *testing.T, path string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("reading the plan file: %v", err)
	}
	defer zr.Close()
	var all strings.Builder
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	return all.String()
}

// TestAccConnectorWriteOnly_secretsNeverInPlanOrState: write-only secrets from ephemeral variables reach the
// control plane (stored encrypted, handed to the agent) and never the saved plan, its JSON, the state or the
// CLI's output; a new value with the same version changes nothing; a new version sends the new value.
func TestAccConnectorWriteOnly_secretsNeverInPlanOrState(t *testing.T) {
	skipUnlessWriteOnly(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	key1, key2 := testPrivateKeyPEM(t), testPrivateKeyPEM(t)
	secret1, secret2 := canaryValue(t, "CANARYwo1"), canaryValue(t, "CANARYwo2")
	// A line from the middle of each key's base64 body: a key in state would hold it.
	chunk := func(k string) string { lines := strings.Split(k, "\n"); return lines[len(lines)/2] }
	leaks := func(where, text string) {
		t.Helper()
		for name, v := range map[string]string{"secret 1": secret1, "secret 2": secret2, "key 1": chunk(key1), "key 2": chunk(key2)} {
			if strings.Contains(text, v) {
				t.Errorf("%s holds %s", where, name)
			}
		}
	}
	setVars := func(key, secret string) {
		w.env = append(w.env, "TF_VAR_sf_key="+key, "TF_VAR_dv_secret="+secret)
	}
	stored := func() map[string]string {
		t.Helper()
		c, err := cp.Client.FindConnector(t.Context(), "acc-write-only")
		if err != nil {
			t.Fatal(err)
		}
		sec, err := cp.Store.ConnectorSecrets(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return sec
	}

	setVars(key1, secret1)
	w.write(writeOnlyConnector(cp, 1, 1))
	out := w.run(0, "plan", "-input=false", "-lock=false", "-no-color", "-out=tfplan")
	leaks("the plan output", out.Output)
	leaks("the saved plan", planFileText(t, filepath.Join(w.dir, "tfplan")))
	show := w.run(0, "show", "-json", "tfplan")
	leaks("show -json of the plan", show.Output)
	apply := w.run(0, "apply", "-input=false", "-lock=false", "-no-color", "tfplan")
	leaks("the apply output", apply.Output)
	state, err := os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	leaks("the state", string(state))
	if !bytes.Contains(state, []byte(`"client_secret_wo_version": 1`)) || !bytes.Contains(state, []byte(`"client_secret_wo": null`)) {
		t.Errorf("the state does not hold the version and a null write-only value:\n%s", state)
	}
	if sec := stored(); sec["dataverse.client_secret"] != secret1 || sec["salesforce.private_key"] != key1 {
		t.Fatalf("the control plane holds other secrets than the configured ones (%d stored)", len(sec))
	}

	// Another value under the same version: nothing to do (the CLI cannot compare write-only values).
	setVars(key2, secret2)
	if run := w.Plan(writeOnlyConnector(cp, 1, 1)); run.Changes {
		t.Fatalf("a new write-only value without a new version plans a change:\n%s", run.Output)
	}
	// A new version of the Dataverse secret only: it is sent, the key stays.
	run := w.Apply(writeOnlyConnector(cp, 1, 2))
	leaks("the apply output", run.Output)
	if sec := stored(); sec["dataverse.client_secret"] != secret2 || sec["salesforce.private_key"] != key1 {
		t.Fatalf("after bumping client_secret_wo_version the control plane holds the wrong values (secret rotated: %v, key kept: %v)",
			sec["dataverse.client_secret"] == secret2, sec["salesforce.private_key"] == key1)
	}
	state, _ = os.ReadFile(filepath.Join(w.dir, "terraform.tfstate"))
	leaks("the state after the rotation", string(state))
	if run := w.Plan(writeOnlyConnector(cp, 1, 2)); run.Changes {
		t.Fatalf("the plan after the rotation is not empty:\n%s", run.Output)
	}

	// A secret removed behind Terraform's back: the version is dropped on refresh, so the plan sends it again.
	c, err := cp.Client.FindConnector(t.Context(), "acc-write-only")
	if err != nil {
		t.Fatal(err)
	}
	spec := c.ConnectorSpec
	spec.Dataverse.ClientSecret, spec.Dataverse.ClientSecretEnv = "", "CRMSYNC_DATAVERSE_SECRET"
	if _, err := cp.Client.UpdateConnector(t.Context(), c.ID, spec); err != nil {
		t.Fatal(err)
	}
	w.Apply(writeOnlyConnector(cp, 1, 2))
	if sec := stored(); sec["dataverse.client_secret"] != secret2 {
		t.Fatal("the apply after an out-of-band removal did not send the write-only secret again")
	}
}

// TestAccConnectorWriteOnly_conflictsWithTheInlineForm: one form per secret.
func TestAccConnectorWriteOnly_conflictsWithTheInlineForm(t *testing.T) {
	skipUnlessWriteOnly(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	cfg := strings.Replace(connectorConfig(cp, "acc-wo-conflict", teamA), `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
		`client_secret_env = "CRMSYNC_DATAVERSE_SECRET"
    client_secret_wo         = "x"
    client_secret_wo_version = 1`, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      cfg,
			ExpectError: regexp.MustCompile(`(?s)Invalid Attribute Combination.*client_secret_wo`),
		}},
	})
	missingVersion := strings.Replace(connectorConfig(cp, "acc-wo-conflict", teamA), `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
		`client_secret_wo = "x"`, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      missingVersion,
			ExpectError: regexp.MustCompile(`(?s)client_secret_wo_version.*must be specified`),
		}},
	})
}

// TestAccConnector_writeOnlyOnAnOlderCLIIsAClearError: Terraform before 1.11 cannot keep a value out of state,
// so the provider refuses a write-only argument during validation, naming it and the version needed.
func TestAccConnector_writeOnlyOnAnOlderCLIIsAClearError(t *testing.T) {
	accPreCheck(t)
	if writeOnlySupported(t) {
		t.Skip("the CLI under test supports write-only arguments")
	}
	cp := startControlPlane(t, controlPlaneOptions{})
	cfg := strings.Replace(connectorConfig(cp, "acc-wo-old", teamA), `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
		`client_secret_wo         = "x"
    client_secret_wo_version = 1`, 1)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      cfg,
			ExpectError: regexp.MustCompile(`(?s)WriteOnly Attribute Not Allowed.*client_secret_wo.*Terraform 1.11`),
		}},
	})
}

// TestAccConnector_inlineSecretWarns: the inline form still works, with a deprecation-style warning that names
// the forms the CLI supports.
func TestAccConnector_inlineSecretWarns(t *testing.T) {
	accPreCheck(t)
	cp := startControlPlane(t, controlPlaneOptions{})
	w := newTFWorkdir(t)
	cfg := strings.Replace(connectorConfig(cp, "acc-inline", teamA), `client_secret_env = "CRMSYNC_DATAVERSE_SECRET"`,
		`client_secret     = "inline-secret"`, 1)
	run := w.Plan(cfg)
	want := "client_secret_env"
	if writeOnlySupported(t) {
		want = "client_secret_wo"
	}
	if !run.Has("warning", "Inline secret stored in Terraform state", want) {
		t.Fatalf("no warning about the inline secret naming %s: %v", want, run.Diagnostics)
	}
	// Once per plan: Terraform validates the configuration twice in a plan, so a validator's warning showed twice.
	n := 0
	for _, d := range run.Warnings() {
		if d.Summary == "Inline secret stored in Terraform state" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the inline secret's warning shows %d times in one plan, want once: %v", n, run.Diagnostics)
	}
}
