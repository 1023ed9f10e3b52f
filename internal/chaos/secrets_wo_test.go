package chaos_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// writeOnlyCLI finds a CLI with write-only arguments (Terraform or OpenTofu 1.11 and later): the one under test
// (TF_ACC_TERRAFORM_PATH), the repository's bin/tofu (make tools builds it), or a terraform on PATH. "" when none.
func writeOnlyCLI(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	candidates := []string{os.Getenv("TF_ACC_TERRAFORM_PATH"), filepath.Join(filepath.Dir(file), "..", "..", "bin", "tofu")}
	if p, err := exec.LookPath("terraform"); err == nil {
		candidates = append(candidates, p)
	}
	empty := filepath.Join(t.TempDir(), "empty.tfrc")
	writeFile(t, empty, nil)
	for _, p := range candidates {
		if p == "" || !fileExists(p) {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, p, "version", "-json")
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+empty, "CHECKPOINT_DISABLE=1")
		out, err := cmd.Output()
		cancel()
		var v struct {
			Version string `json:"terraform_version"`
		}
		var major, minor int
		if err != nil || json.Unmarshal(out, &v) != nil {
			continue
		}
		if _, err := fmt.Sscanf(v.Version, "%d.%d", &major, &minor); err == nil && (major > 1 || major == 1 && minor >= 11) {
			return p
		}
	}
	return ""
}

// TestChaosWriteOnlySecretsNeverLeak passes canary secrets through the write-only arguments, fed by ephemeral
// variables (the API token of the provider too): the Salesforce private key and client secret and the Dataverse
// client secret. Two connectors use them and run real agents under `crmsync serve` (debug logs), planned into a
// saved plan file and applied from it by a CLI with write-only arguments (TRACE logs). The agents stream (they
// got every secret), and no canary appears anywhere: not in the state (not even in sensitive arguments), the
// saved plan (every entry of the archive), `show -json` of it, the CLI's output, its TRACE log, the control
// plane's and agents' logs, any API answer, or the store's files.
func TestChaosWriteOnlySecretsNeverLeak(t *testing.T) {
	skipShort(t)
	cli := writeOnlyCLI(t)
	if cli == "" {
		t.Skip("no Terraform or OpenTofu 1.11 or later (make tools builds bin/tofu): write-only arguments cannot be checked")
	}
	began := time.Now()
	c := newCanaries(t)
	dir := t.TempDir()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(dir, "sandbox"), Contacts: 30, Accounts: 6, Seed: 7,
		Salesforce: salesforce.Config{ClientSecret: c.sfSecret}, Dataverse: dataverse.Config{ClientSecret: c.dvSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	c.keyPEM = sb.Info.Salesforce.PrivateKeyPEM
	lines := strings.Split(strings.TrimSpace(string(c.keyPEM)), "\n")
	c.keyChunk = lines[len(lines)/2][:48]
	// The sandbox writes its secrets beside sandbox.json; this test gives them write-only, never by reference.
	for _, f := range []string{sb.Info.Salesforce.ClientSecretFile, sb.Info.Dataverse.ClientSecretFile, sb.Info.Salesforce.PrivateKeyFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	addr := testenv.FreeAddr(t)
	dataDir := filepath.Join(dir, "cp")
	var serveLog bytes.Buffer
	// The sandbox's loopback host and its directory (the CA file) are allowed, as for the other secrets test.
	serve := exec.Command(testenv.Crmsync(t), append([]string{"serve", "--data-dir", dataDir, "--listen", addr, "--log-level", "debug",
		"--lease-ttl", "5s"}, harness.ServeArgs(sb.Info)...)...)
	serve.Env = append(os.Environ(), "CRMSYNC_TOKEN="+c.token)
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

	tfDir := filepath.Join(dir, "tf")
	writeFile(t, filepath.Join(tfDir, "main.tf"), []byte(writeOnlySecretsConfig(sb.Info, "http://"+addr)))
	provider := testenv.Binary(t, ".")
	cliConfig := filepath.Join(dir, "terraformrc")
	writeFile(t, cliConfig, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"crmsync/crmsync\" = %q\n  }\n  direct {}\n}\n", filepath.Dir(provider))))
	tfLog := filepath.Join(dir, "trace.log")
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Dir = tfDir
		// Ephemeral variables are given again to every command that needs them: a saved plan does not keep them.
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_LOG=TRACE", "TF_LOG_PATH="+tfLog, "TF_IN_AUTOMATION=1",
			"CHECKPOINT_DISABLE=1", "CRMSYNC_TOKEN=", "TF_VAR_token="+c.token, "TF_VAR_sf_secret="+c.sfSecret,
			"TF_VAR_dv_secret="+c.dvSecret, "TF_VAR_private_key="+string(c.keyPEM))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s%s", filepath.Base(cli), strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	outputs := map[string]string{}
	outputs["plan"] = run("plan", "-input=false", "-no-color", "-out=plan.bin")
	outputs["show -json of the saved plan"] = run("show", "-json", "plan.bin")
	planFile := savedPlanText(t, filepath.Join(tfDir, "plan.bin"))
	outputs["apply"] = run("apply", "-input=false", "-no-color", "plan.bin")
	outputs["plan after apply"] = run("plan", "-input=false", "-no-color", "-detailed-exitcode")
	outputs["show"] = run("show", "-no-color")

	// The agents got every secret: each connector streams.
	ctx := t.Context()
	conns, err := api.ListConnectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 2 {
		t.Fatalf("%d connectors, want 2", len(conns))
	}
	for _, conn := range conns {
		waitFor(t, 3*time.Minute, "connector "+conn.Name+" to stream", func() bool {
			st, err := api.Status(ctx, conn.ID)
			return err == nil && st.State == "streaming"
		})
	}
	answers := apiAnswers(t, addr, c.token, api)
	stopServe()
	store := map[string][]byte{}
	entries, _ := os.ReadDir(dataDir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dataDir, e.Name())); err == nil {
			store[e.Name()] = b
		}
	}
	if _, ok := store["control-plane.db"]; !ok {
		t.Fatalf("no database in %s", dataDir)
	}

	checked := 0
	check := func(where, text string) {
		checked++
		if leaks := c.leaks(text); len(leaks) > 0 {
			t.Errorf("%s holds the %s", where, strings.Join(leaks, ", the "))
		}
	}
	state, err := os.ReadFile(filepath.Join(tfDir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(state, []byte(`"client_secret_wo_version": 1`)) {
		t.Fatalf("the state holds no write-only version: the configuration did not use write-only arguments:\n%.2000s", state)
	}
	check("the state", string(state))
	check("the saved plan file", planFile)
	for k, v := range outputs {
		check("the output of "+k, v)
	}
	trace, err := os.ReadFile(tfLog)
	if err != nil || len(trace) == 0 {
		t.Fatalf("no TRACE log: %v", err)
	}
	check("the CLI's TRACE log (provider logs included)", string(trace))
	check("the control plane's and agents' log (debug)", serveLog.String())
	for k, v := range answers {
		check("the API answer to "+k, string(v))
	}
	for name, b := range store {
		check("the store file "+name, string(b))
	}
	t.Logf("%s: %d places searched for %d canaries: state, saved plan (%d bytes unpacked), outputs, TRACE log (%d bytes), logs, %d API answers, %d store files",
		filepath.Base(cli), checked, len(c.all()), len(planFile), len(trace), len(answers), len(store))
	finishScenario(t, "secrets/write-only", 0, began, checked, int64(len(c.all())), sb, nil,
		[]compare.Table{compare.Account(), compare.Contact(true)})
}

// savedPlanText is every entry of a saved plan (a zip archive whose entries are compressed), unpacked.
func savedPlanText(t *testing.T, path string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("reading the saved plan: %v", err)
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
	}
	return all.String()
}

// writeOnlySecretsConfig declares two connectors whose every secret is write-only, from ephemeral variables: a
// JWT bearer one (private key) and a client-credentials one (client secret), both with the Dataverse secret.
func writeOnlySecretsConfig(info sandbox.Info, endpoint string) string {
	key := fmt.Sprintf(`auth = "jwt_bearer"
    username = %q
    private_key_wo = var.private_key
    private_key_wo_version = 1`, info.Salesforce.Username)
	dv := `client_secret_wo = var.dv_secret
    client_secret_wo_version = 1`
	vars := ""
	for _, v := range []string{"token", "sf_secret", "dv_secret", "private_key"} {
		vars += fmt.Sprintf("variable %q {\n  type      = string\n  sensitive = true\n  ephemeral = true\n}\n", v)
	}
	return `terraform {
  required_providers {
    crmsync = { source = "crmsync/crmsync" }
  }
}

` + vars + fmt.Sprintf(`
provider "crmsync" {
  endpoint = %q
  token    = var.token
}
`, endpoint) +
		canaryConnector(info, "wokey", key, dv) +
		canaryConnector(info, "wosecret", `auth = "client_credentials"
    client_secret_wo = var.sf_secret
    client_secret_wo_version = 1`, dv)
}
