package chaos_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	apitypes "github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// canaries are secret values unique to one run, passed through every credential path; a leak is found by
// searching for them byte for byte.
type canaries struct {
	sfSecret, dvSecret, token string
	keyPEM                    []byte
	keyChunk                  string // 48 characters of a line in the middle of the private key's base64 body
	// The agent protocol's credentials: an enrollment token and the agent credentials it was exchanged for
	// (enrolled, then rotated). Only their secret parts (after the ".") are searched: the IDs are public.
	enrollSecret, agentSecret, rotatedSecret string
}

func newCanaries(t *testing.T) canaries {
	t.Helper()
	r := func(prefix string) string {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return prefix + hex.EncodeToString(b)
	}
	return canaries{sfSecret: r("CANARYsf"), dvSecret: r("CANARYdv"), token: r("CANARYtoken")}
}

func (c canaries) all() map[string]string {
	return map[string]string{"Salesforce client secret": c.sfSecret, "Dataverse client secret": c.dvSecret,
		"API token": c.token, "Salesforce private key": c.keyChunk, "enrollment token": c.enrollSecret,
		"agent credential": c.agentSecret, "rotated agent credential": c.rotatedSecret}
}

// leaks lists the canaries found in text, by name.
func (c canaries) leaks(text string, except ...string) []string {
	var out []string
	for name, v := range c.all() {
		if v == "" || contains(except, name) {
			continue
		}
		if strings.Contains(text, v) {
			out = append(out, name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestChaosSecretsNeverLeak passes canary secrets through every credential path: the control plane's API
// token (environment of serve, of its agents and of Terraform, and the provider's token argument), inline
// secrets through the API and through Terraform, and references resolved on the hosts: the Salesforce client
// secret, the Salesforce private key and the Dataverse client secret each inline, by *_env and by *_file.
// Six connectors use them and run real agents under `crmsync serve` (debug logs) and Terraform (TRACE
// logs). The agent protocol's credentials are canaries too: an enrollment token made through the control
// plane's local socket, and the agent credentials it was exchanged for (enrolled, then rotated); and the
// lease route, which hands an agent its connector's secrets, is called with the operator token for every
// connector (403). No canary appears in the control plane's or the agents' logs, in any API answer (the agent
// protocol's lease, which hands the agent its secrets, aside), in the store's files (database, WAL), in
// Terraform's plan and apply output or its provider logs; in Terraform state only inline values appear,
// and only in the sensitive arguments of the connector that declares them inline (Terraform 1.8 keeps
// sensitive arguments in state; references keep secrets out of it).
func TestChaosSecretsNeverLeak(t *testing.T) {
	skipShort(t)
	began := time.Now()
	c := newCanaries(t)
	dir := t.TempDir()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: 40, Accounts: 8, Seed: 5,
		Salesforce: salesforce.Config{ClientSecret: c.sfSecret}, Dataverse: dataverse.Config{ClientSecret: c.dvSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	c.keyPEM = sb.Info.Salesforce.PrivateKeyPEM
	// A chunk of one line of the key's body (a chunk spanning a line break would not be found in the PEM).
	lines := strings.Split(strings.TrimSpace(string(c.keyPEM)), "\n")
	c.keyChunk = lines[len(lines)/2][:48]

	// Secret files and an environment variable on the (one) host of serve and its agents.
	sfFile, dvFile := filepath.Join(dir, "sf-secret"), filepath.Join(dir, "dv-secret")
	writeFile(t, sfFile, []byte(c.sfSecret+"\n"))
	writeFile(t, dvFile, []byte(c.dvSecret+"\n"))
	if err := os.Chmod(sfFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dvFile, 0o600); err != nil {
		t.Fatal(err)
	}

	addr := testenv.FreeAddr(t)
	dataDir := filepath.Join(dir, "cp")
	var serveLog bytes.Buffer
	// The sandbox's host and files are allowed, and the references of the canaries: the directory of the
	// secret files and the variables' prefix.
	serveArgs := append([]string{"serve", "--data-dir", dataDir, "--listen", addr, "--log-level", "debug", "--lease-ttl", "5s",
		"--allow-ref-dir", dir, "--allow-ref-env-prefix", "CHAOS_CANARY_"}, harness.ServeArgs(sb.Info)...)
	serve := exec.Command(testenv.Crmsync(t), serveArgs...)
	serve.Env = append(os.Environ(), "CRMSYNC_TOKEN="+c.token, "CHAOS_CANARY_DV_SECRET="+c.dvSecret,
		"CHAOS_CANARY_SF_SECRET="+c.sfSecret, "CHAOS_CANARY_SF_KEY="+string(c.keyPEM))
	serve.Stdout, serve.Stderr = &lockedWriter{w: &serveLog}, &lockedWriter{w: &serveLog}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan struct{})
	go func() { _ = serve.Wait(); close(serveDone) }()
	stopServe := func() {
		_ = serve.Process.Signal(os.Interrupt)
		select {
		case <-serveDone:
		case <-time.After(60 * time.Second):
			_ = serve.Process.Kill()
			<-serveDone
		}
	}
	defer stopServe()
	api, err := client.New(client.Config{Endpoint: "http://" + addr, Token: c.token, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the control plane", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := api.Health(ctx)
		return err == nil
	})

	// Terraform declares the three connectors, their mappings and activations.
	tf := terraformBinary(t)
	if tf == "" {
		t.Skip("no Terraform CLI (bin/terraform, TF_ACC_TERRAFORM_PATH or PATH): the Terraform paths cannot be checked")
	}
	tfDir := filepath.Join(dir, "tf")
	writeFile(t, filepath.Join(tfDir, "main.tf"), []byte(secretsConfig(sb.Info, sfFile, dvFile)))
	provider := testenv.Binary(t, ".")
	cliConfig := filepath.Join(dir, "terraformrc")
	writeFile(t, cliConfig, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"crmsync/crmsync\" = %q\n  }\n  direct {}\n}\n", filepath.Dir(provider))))
	tfLog := filepath.Join(dir, "terraform-trace.log")
	varsFile := filepath.Join(dir, "secrets.tfvars.json")
	vars, _ := json.Marshal(map[string]string{"token": c.token, "sf_secret": c.sfSecret, "dv_secret": c.dvSecret, "private_key": string(c.keyPEM),
		"endpoint": "http://" + addr})
	writeFile(t, varsFile, vars)
	terraform := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tf, args...)
		cmd.Dir = tfDir
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_LOG=TRACE", "TF_LOG_PATH="+tfLog, "TF_IN_AUTOMATION=1",
			"CHECKPOINT_DISABLE=1", "CRMSYNC_TOKEN=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	outputs := map[string]string{}
	outputs["terraform plan"] = terraform("plan", "-input=false", "-no-color", "-var-file="+varsFile, "-out=plan.bin")
	outputs["terraform apply"] = terraform("apply", "-input=false", "-no-color", "plan.bin")
	outputs["terraform plan (after apply)"] = terraform("plan", "-input=false", "-no-color", "-var-file="+varsFile, "-detailed-exitcode")
	outputs["terraform show"] = terraform("show", "-no-color")
	if !strings.Contains(outputs["terraform plan"], "(sensitive value)") {
		t.Error("the plan shows no sensitive value: the inline secrets were not planned as sensitive")
	}

	// The agents ran: every connector streams (each needed its credentials on both sides).
	ctx := t.Context()
	conns, err := api.ListConnectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 6 {
		t.Fatalf("%d connectors, want 6", len(conns))
	}
	for _, conn := range conns {
		waitFor(t, 3*time.Minute, "connector "+conn.Name+" to stream", func() bool {
			st, err := api.Status(ctx, conn.ID)
			return err == nil && st.State == "streaming"
		})
	}
	// A failure on the way must not leak either: a wrong inline secret and a missing reference.
	badSpec := conns[0].ConnectorSpec
	badSpec.Name = "wrong-secret"
	badSpec.Dataverse.ClientSecret, badSpec.Dataverse.ClientSecretEnv, badSpec.Dataverse.ClientSecretFile = c.dvSecret+"x", "", ""
	if bad, err := api.CreateConnector(ctx, badSpec); err == nil {
		_, _ = api.SetActivation(ctx, bad.ID, true) // preflight fails: dataverse credentials refused
	}

	// The agent protocol's credentials: an enrollment token made on this host through the local socket,
	// exchanged for an agent identity, whose credential is rotated. The operator token reaches none of it,
	// and no lease answer goes to it.
	enrollOut, err := exec.Command(testenv.Crmsync(t), "agents", "enroll-token", "--data-dir", dataDir, "--connector", conns[0].ID).Output()
	if err != nil {
		t.Fatalf("crmsync agents enroll-token: %v", err)
	}
	enrollToken := strings.TrimSpace(string(enrollOut))
	_, c.enrollSecret, _ = strings.Cut(enrollToken, ".")
	enroller, err := client.New(client.Config{Endpoint: "http://" + addr, Token: enrollToken})
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := enroller.Enroll(ctx, apitypes.EnrollRequest{Name: "chaos-canary", Host: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	_, c.agentSecret, _ = strings.Cut(enrolled.Credential, ".")
	ag, err := client.New(client.Config{Endpoint: "http://" + addr, Token: enrolled.Credential})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ag.RotateCredential(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, c.rotatedSecret, _ = strings.Cut(rotated.Credential, ".")
	if _, err := ag.AcquireLease(ctx, apitypes.LeaseRequest{ConnectorID: conns[0].ID, Host: "chaos"}); !errors.Is(err, client.ErrConflict) {
		t.Errorf("the enrolled agent took a lease a local agent holds: %v", err)
	}

	// Every API answer a user can get.
	answers := apiAnswers(t, addr, c.token, api)
	if out, err := exec.Command(testenv.Crmsync(t), "agents", "list", "--json", "--data-dir", dataDir).CombinedOutput(); err == nil {
		answers["crmsync agents list --json"] = out
	} else {
		t.Errorf("crmsync agents list: %v\n%s", err, out)
	}

	// The store's files while it runs (database, WAL, shared memory), then as they rest on disk.
	store := map[string][]byte{}
	readStore := func(when string) []os.DirEntry {
		entries, _ := os.ReadDir(dataDir)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dataDir, e.Name())); err == nil {
				store[e.Name()+" ("+when+")"] = b
			}
		}
		return entries
	}
	readStore("running")
	stopServe()
	entries := readStore("stopped")
	if _, ok := store["control-plane.db (stopped)"]; !ok {
		t.Fatalf("no database in %s: %v", dataDir, entries)
	}

	if !strings.Contains(serveLog.String(), "lease acquired") {
		t.Error("the agents' log lines are not in the log searched")
	}
	checked := 0
	check := func(where, text string, except ...string) {
		checked++
		if leaks := c.leaks(text, except...); len(leaks) > 0 {
			t.Errorf("%s holds the %s", where, strings.Join(leaks, ", the "))
		}
	}
	check("the control plane's and agents' log (debug)", serveLog.String())
	for k, v := range outputs {
		check(k+" output", v)
	}
	traceLog, err := os.ReadFile(tfLog)
	if err != nil || len(traceLog) == 0 {
		t.Fatalf("no Terraform TRACE log: %v", err)
	}
	check("Terraform's TRACE log (provider logs included)", string(traceLog))
	for k, v := range answers {
		check("the API answer to "+k, string(v))
	}
	for name, b := range store {
		check("the store file "+name, string(b))
	}
	// State: the inline connector's sensitive arguments hold the inline values; nothing else does.
	state, err := os.ReadFile(filepath.Join(tfDir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Resources []struct {
			Type, Name string
			Instances  []struct {
				Attributes json.RawMessage `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	// Arguments declared inline, per connector: the only places a secret may be in state.
	inline := map[string][]string{"inline": {"salesforce.client_secret", "dataverse.client_secret"},
		"keyinline": {"salesforce.private_key"}, "keyfile": {"dataverse.client_secret"}}
	for _, r := range st.Resources {
		for _, inst := range r.Instances {
			if r.Type != "crmsync_connector" {
				check(fmt.Sprintf("the state of %s.%s", r.Type, r.Name), string(inst.Attributes))
				continue
			}
			var a map[string]any
			if err := json.Unmarshal(inst.Attributes, &a); err != nil {
				t.Fatal(err)
			}
			// The search finds what is there: the inline values are in state, as Terraform keeps them.
			if r.Name == "inline" && !strings.Contains(string(inst.Attributes), c.sfSecret) ||
				r.Name == "keyinline" && !strings.Contains(string(inst.Attributes), c.keyChunk) {
				t.Errorf("the state of crmsync_connector.%s lacks its inline secret: the search cannot be trusted", r.Name)
			}
			for _, side := range []string{"salesforce", "dataverse"} {
				m, _ := a[side].(map[string]any)
				for _, arg := range []string{"client_secret", "private_key"} {
					if v, _ := m[arg].(string); v != "" && !contains(inline[r.Name], side+"."+arg) {
						t.Errorf("the state of crmsync_connector.%s holds %s.%s, which was not given inline", r.Name, side, arg)
					}
					delete(m, arg)
				}
			}
			rest, _ := json.Marshal(a)
			check(fmt.Sprintf("the state of crmsync_connector.%s outside its sensitive arguments", r.Name), string(rest))
		}
	}
	t.Logf("%d places searched for %d canaries: logs, %d API answers, %d store files, Terraform output, TRACE log (%d bytes) and state",
		checked, len(c.all()), len(answers), len(store), len(traceLog))
	finishScenario(t, "secrets/canaries", 0, began, checked, int64(len(c.all())), sb, nil,
		[]compare.Table{compare.Account(), compare.Contact(true)})
}

// apiAnswers reads every API answer a user can get, and `crmsync status --json`, by what was asked.
func apiAnswers(t *testing.T, addr, token string, api *client.Client) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	answers := map[string][]byte{}
	get := func(path string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answers["GET "+path] = b
	}
	conns, _ := api.ListConnectors(ctx)
	for _, p := range []string{"/v1/connectors", "/v1/audit?limit=1000", "/metrics", "/healthz", "/v1/backups"} {
		get(p)
	}
	post := func(path string, body any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with the operator token: %d, want 403", path, resp.StatusCode)
		}
		answers["POST "+path+" (operator token)"] = rb
	}
	for _, conn := range conns {
		for _, p := range []string{"", "/status", "/activation", "/mappings", "/dead-letters"} {
			get("/v1/connectors/" + conn.ID + p)
		}
		// The lease route, which hands an agent its connector's secrets, to the operator token (403).
		post("/v1/agent/leases", apitypes.LeaseRequest{ConnectorID: conn.ID, Host: "operator"})
	}
	cli := exec.Command(testenv.Crmsync(t), "status", "--json")
	cli.Env = append(os.Environ(), "CRMSYNC_TOKEN="+token, "CRMSYNC_ENDPOINT=http://"+addr)
	// Exit 1 is a degraded or failed connector, still a full answer to search.
	if out, err := cli.CombinedOutput(); err == nil || cli.ProcessState != nil && cli.ProcessState.ExitCode() == 1 {
		answers["crmsync status --json"] = out
	} else {
		t.Errorf("crmsync status: %v\n%s", err, out)
	}
	return answers
}

// lockedWriter serialises writes from the two pipes of one process into one buffer.
type lockedWriter struct {
	w  *bytes.Buffer
	mu chanMutex
}

type chanMutex struct{ ch chan struct{} }

func (m *chanMutex) lock() {
	if m.ch == nil {
		m.ch = make(chan struct{}, 1)
	}
	m.ch <- struct{}{}
}

func (m *chanMutex) unlock() { <-m.ch }

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.lock()
	defer l.mu.unlock()
	return l.w.Write(p)
}

// terraformBinary finds a Terraform CLI: TF_ACC_TERRAFORM_PATH, the repository's bin/terraform, or PATH.
func terraformBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TF_ACC_TERRAFORM_PATH"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	if p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "terraform"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("terraform"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// canaryConnector declares a connector of the sandbox named secrets-NAME with the given Salesforce and Dataverse
// credential arguments, its two table mappings and its activation (waiting for the initial load).
func canaryConnector(info sandbox.Info, name, sfAuth, dvAuth string) string {
	sf, dv := info.Salesforce, info.Dataverse
	common := fmt.Sprintf(`login_url = %q
    instance_url = %q
    api_version = %q
    pubsub_addr = %q
    client_id = %q
    ca_file = %q`, sf.LoginURL, sf.InstanceURL, sf.APIVersion, sf.PubSubAddr, sf.ClientID, sf.CAFile)
	dvCommon := fmt.Sprintf(`environment_url = %q
    authority_url = %q
    tenant_id = %q
    client_id = %q
    ca_file = %q`, dv.EnvironmentURL, dv.AuthorityURL, dv.TenantID, dv.ClientID, dv.CAFile)
	return fmt.Sprintf(`
resource "crmsync_connector" %q {
  name    = "secrets-%s"
  team_id = %q
  salesforce = {
    %s
    %s
  }
  dataverse = {
    %s
    %s
  }
  tuning = { flush_interval = "50ms" }
}

resource "crmsync_table_mapping" "%s_account" {
  connector_id = crmsync_connector.%s.id
  source_table = "Account"
}

resource "crmsync_table_mapping" "%s_contact" {
  connector_id = crmsync_connector.%s.id
  source_table = "Contact"
  depends_on   = [crmsync_table_mapping.%s_account]
}

resource "crmsync_activation" %q {
  connector_id             = crmsync_connector.%s.id
  wait_for                 = "initial_load"
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.%s_account, crmsync_table_mapping.%s_contact]
}
`, name, name, dv.TeamID, common, sfAuth, dvCommon, dvAuth, name, name, name, name, name, name, name, name, name)
}

// secretsConfig declares six connectors that between them use every credential path: the Salesforce client
// secret, the Salesforce private key and the Dataverse client secret each inline, by environment variable
// and by file.
func secretsConfig(info sandbox.Info, sfFile, dvFile string) string {
	sf := info.Salesforce
	connector := func(name, sfAuth, dvAuth string) string { return canaryConnector(info, name, sfAuth, dvAuth) }
	key := fmt.Sprintf(`auth = "jwt_bearer"
    username = %q`, sf.Username)
	return `terraform {
  required_providers {
    crmsync = { source = "crmsync/crmsync" }
  }
}

variable "endpoint" { type = string }
variable "token" {
  type      = string
  sensitive = true
}
variable "sf_secret" {
  type      = string
  sensitive = true
}
variable "dv_secret" {
  type      = string
  sensitive = true
}
variable "private_key" {
  type      = string
  sensitive = true
}

provider "crmsync" {
  endpoint = var.endpoint
  token    = var.token
}
` +
		// Every path of each secret: inline, environment variable, file.
		connector("inline", `auth = "client_credentials"
    client_secret = var.sf_secret`, `client_secret = var.dv_secret`) +
		connector("keyinline", key+`
    private_key = var.private_key`, `client_secret_env = "CHAOS_CANARY_DV_SECRET"`) +
		connector("env", `auth = "client_credentials"
    client_secret_env = "CHAOS_CANARY_SF_SECRET"`, `client_secret_env = "CHAOS_CANARY_DV_SECRET"`) +
		connector("keyenv", key+`
    private_key_env = "CHAOS_CANARY_SF_KEY"`, fmt.Sprintf(`client_secret_file = %q`, dvFile)) +
		connector("files", fmt.Sprintf(`auth = "client_credentials"
    client_secret_file = %q`, sfFile), fmt.Sprintf(`client_secret_file = %q`, dvFile)) +
		connector("keyfile", key+fmt.Sprintf(`
    private_key_file = %q`, sf.PrivateKeyFile), `client_secret = var.dv_secret`)
}
