package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// recorder is a listener the test runs in place of Salesforce and Entra ID: it keeps every request it gets
// (line, headers, body) and refuses them all.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.n++
	fmt.Fprintf(&r.buf, "%s %s\n", req.Method, req.URL)
	_ = req.Header.Write(&r.buf)
	r.buf.Write(body)
	r.buf.WriteString("\n\n")
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"refused by the test's listener"}`)
}

func (r *recorder) seen() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String(), r.n
}

func canary(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// runServe starts `crmsync serve` with env added and returns a client and a stop function.
func runServe(t *testing.T, dataDir, tok string, env []string, args ...string) (*client.Client, func()) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(testenv.Crmsync(t), append([]string{"serve", "--data-dir", dataDir, "--listen", addr, "--log-level", "warn"}, args...)...)
	cmd.Env = append(append(os.Environ(), "CRMSYNC_TOKEN="+tok), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	c, err := client.New(client.Config{Endpoint: "http://" + addr, Token: tok, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return c, stop
		}
		select {
		case <-done:
			t.Fatalf("crmsync serve exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crmsync serve did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A connector's URLs point at a listener the test runs. With the
// default destination policy the declaration is refused; with the listener allowed, no file or environment
// content of the control plane's host reaches it, whatever the connector references (the data directory's
// key, the API token's variable, other variables and files of the host), through declaration, activation
// (preflight) and live validation.
func TestAListenerNamedByAConnectorNeverGetsTheControlPlanesHost(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds crmsync and runs processes")
	}
	listener := &recorder{}
	srv := httptest.NewServer(listener)
	defer srv.Close()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "cp")
	tok, envCanary, fileCanary := canary(t, "TOKENcanary"), canary(t, "ENVcanary"), canary(t, "FILEcanary")
	hostFile := filepath.Join(dir, "host-secret")
	if err := os.WriteFile(hostFile, []byte(fileCanary), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOST_CANARY=" + envCanary}
	const team, dvClient = "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10", "a1b2c3d4-0000-4000-8000-0000000000aa"
	spec := func(name string) api.ConnectorSpec {
		return api.ConnectorSpec{Name: name, TeamID: team,
			Salesforce: api.SalesforceSettings{LoginURL: srv.URL, InstanceURL: srv.URL, Auth: "client_credentials", ClientID: "cid",
				ClientSecret: "inline-sf-secret"},
			Dataverse: api.DataverseSettings{EnvironmentURL: srv.URL, AuthorityURL: srv.URL, TenantID: "acme.onmicrosoft.com",
				ClientID: dvClient, ClientSecret: "inline-dv-secret"}}
	}
	ctx := t.Context()
	refused := func(c *client.Client, s api.ConnectorSpec, field string) {
		t.Helper()
		_, err := c.CreateConnector(ctx, s)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || ce.Body.Field != field {
			t.Errorf("declaring %s: %v; want 400 naming %s", s.Name, err, field)
		}
	}

	// The default policy: the listener is no real service's host.
	c, stop := runServe(t, dataDir, tok, env)
	refused(c, spec("to-listener"), "salesforce.login_url")
	dvOnly := spec("dataverse-to-listener")
	dvOnly.Salesforce.LoginURL, dvOnly.Salesforce.InstanceURL = "https://login.salesforce.com", "https://acme.my.salesforce.com"
	refused(c, dvOnly, "dataverse.environment_url")
	stop()

	// The listener allowed: the host's files and variables are still refused as references.
	c, stop = runServe(t, dataDir, tok, env, "--allow-host", "127.0.0.1", "--allow-ref-env-prefix", "CRMSYNC_")
	key := spec("key")
	key.Salesforce.ClientSecret, key.Salesforce.ClientSecretFile = "", filepath.Join(dataDir, "secret.key")
	refused(c, key, "salesforce.client_secret_file")
	shadow := spec("shadow")
	shadow.Dataverse.ClientSecret, shadow.Dataverse.ClientSecretFile = "", "/etc/shadow"
	refused(c, shadow, "dataverse.client_secret_file")
	hostf := spec("host-file")
	hostf.Dataverse.ClientSecret, hostf.Dataverse.ClientSecretFile = "", hostFile
	refused(c, hostf, "dataverse.client_secret_file")
	tokenRef := spec("token")
	tokenRef.Salesforce.ClientSecret, tokenRef.Salesforce.ClientSecretEnv = "", "CRMSYNC_TOKEN"
	refused(c, tokenRef, "salesforce.client_secret_env")
	envRef := spec("host-env")
	envRef.Dataverse.ClientSecret, envRef.Dataverse.ClientSecretEnv = "", "HOST_CANARY"
	refused(c, envRef, "dataverse.client_secret_env")

	// A connector with inline secrets is accepted; activating it runs preflight toward the listener, which
	// refuses; live validation too. Only the inline secrets may reach it.
	conn, err := c.CreateConnector(ctx, spec("inline"))
	if err != nil {
		t.Fatal(err)
	}
	upd := spec("inline")
	upd.Salesforce.ClientSecret, upd.Salesforce.ClientSecretFile = "", filepath.Join(dataDir, "secret.key")
	if _, err := c.UpdateConnector(ctx, conn.ID, upd); err == nil {
		t.Error("an update referencing the data directory's key was accepted")
	}
	if _, err := c.CreateMapping(ctx, conn.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetActivation(ctx, conn.ID, true); !errors.Is(err, client.ErrPreflightFailed) {
		t.Errorf("activating toward a listener that refuses everything: %v; want preflight_failed", err)
	}
	_, _ = c.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: conn.ID, Mapping: mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, Live: true})
	stop()

	got, n := listener.seen()
	if n == 0 || !strings.Contains(got, "inline-sf-secret") {
		t.Fatalf("the listener got %d requests without the inline secret: the search below would prove nothing", n)
	}
	keyFile, err := os.ReadFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]string{"the data directory's key": strings.TrimSpace(string(keyFile)), "the API token": tok,
		"a variable of the host": envCanary, "a file of the host": fileCanary} {
		if strings.Contains(got, v) {
			t.Errorf("the listener received %s", what)
		}
	}
	t.Logf("the listener got %d requests; none held a file or variable of the control plane's host", n)
}
