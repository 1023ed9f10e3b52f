package fidelity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// info is the part of sandbox.json the tests read (docs/sandbox.md).
type info struct {
	Salesforce struct {
		LoginURL       string `json:"login_url"`
		InstanceURL    string `json:"instance_url"`
		PubSubAddr     string `json:"pubsub_addr"`
		APIVersion     string `json:"api_version"`
		OrgID          string `json:"org_id"`
		ClientID       string `json:"client_id"`
		ClientSecret   string `json:"client_secret"`
		Username       string `json:"username"`
		PrivateKeyFile string `json:"private_key_file"`
		CAFile         string `json:"ca_file"`
	} `json:"salesforce"`
	Dataverse struct {
		EnvironmentURL string `json:"environment_url"`
		AuthorityURL   string `json:"authority_url"`
		TenantID       string `json:"tenant_id"`
		ClientID       string `json:"client_id"`
		ClientSecret   string `json:"client_secret"`
		TeamID         string `json:"team_id"`
	} `json:"dataverse"`
	AdminURL string `json:"admin_url"`
}

// sb is the sandbox every test of the package drives; seeded with 2,500 contacts (more than one page of a
// SOQL query) and 100 accounts.
var sb info

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "crmsync-fidelity-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop, err := startSandbox(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the sandbox:", err)
		return 1
	}
	defer stop()
	// The clients trust the system's roots; a user adds the sandbox's CA there. Go reads SSL_CERT_FILE the
	// first time it loads the system roots, which nothing in this process has done yet.
	if err := os.Setenv("SSL_CERT_FILE", sb.Salesforce.CAFile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// startSandbox builds crmsync and runs `crmsync sandbox` until stop, reading its sandbox.json.
func startSandbox(dir string) (func(), error) {
	bin := filepath.Join(dir, "crmsync")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/crmsync/terraform-provider-crmsync/cmd/crmsync")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building crmsync: %w\n%s", err, out)
	}
	sbDir := filepath.Join(dir, "sandbox")
	var logs bytes.Buffer
	cmd := exec.Command(bin, "sandbox", "--dir", sbDir, "--contacts", "2500", "--accounts", "100", "--seed", "19") //nolint:gosec // G204: the binary just built
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, err := os.ReadFile(filepath.Join(sbDir, "sandbox.json"))
		if err == nil {
			if err := json.Unmarshal(data, &sb); err != nil {
				stop()
				return nil, err
			}
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("no sandbox.json after 2 minutes; output:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// admin calls the sandbox's admin API and decodes the JSON answer into out (when not nil).
func admin(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, sb.AdminURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("admin %s %s: %v in %s", method, path, err, data)
		}
	}
}

// unique makes names no other test uses.
func unique(prefix string) string {
	return prefix + " " + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
}
