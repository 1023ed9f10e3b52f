package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

const replicaToken = "replicas-test-token-0123456789abcdef"

// replica is one `crmsync serve --store postgres://…` process.
type replica struct {
	url, dir string
	cmd      *exec.Cmd
	done     chan struct{}
}

func startReplica(t *testing.T, storeURL, keyFile string) *replica {
	t.Helper()
	r := &replica{dir: filepath.Join(t.TempDir(), "cp"), done: make(chan struct{})}
	addr := testenv.FreeAddr(t)
	r.url = "http://" + addr
	r.cmd = exec.Command(testenv.Crmsync(t), "serve", "--data-dir", r.dir, "--listen", addr, "--store", storeURL, //nolint:gosec // G204: the test's own binary
		"--key-file", keyFile, "--local-agents=false", "--log-level", "warn")
	r.cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+replicaToken)
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("replica %s log:\n%s", r.url, b)
		}
	})
	c, err := client.New(client.Config{Endpoint: r.url, Token: replicaToken, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Health(t.Context()); err == nil {
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("replica %s exited at start", r.url)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not answer within 30 s", r.url)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Three serve replicas on one PostgreSQL database: each serves the whole API (a connector made through one is
// read through the others, an enrollment token made on one host's socket enrolls through another), a replica
// with another key refuses to start, and when one is SIGKILLed a client given every replica's URL goes on
// answering through the others.
func TestServeReplicasOnPostgresShareTheAPIAndSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and serve processes")
	}
	storeURL := pgtest.Database(t)
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	rs := []*replica{startReplica(t, storeURL, keyFile)} // the first generates the key
	rs = append(rs, startReplica(t, storeURL, keyFile), startReplica(t, storeURL, keyFile))

	// A replica with a key of its own is refused, naming the file.
	other := exec.Command(testenv.Crmsync(t), "serve", "--data-dir", filepath.Join(t.TempDir(), "cp"), "--listen", "127.0.0.1:0", //nolint:gosec // G204: the test's own binary
		"--store", storeURL, "--local-agents=false")
	other.Env = append(os.Environ(), "CRMSYNC_TOKEN="+replicaToken)
	out, err := other.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "secret.key") {
		t.Errorf("a replica with another key: %v\n%s", err, out)
	}

	urls := []string{rs[0].url, rs[1].url, rs[2].url}
	all, err := client.New(client.Config{Endpoint: strings.Join(urls, ","), Token: replicaToken, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	spec := api.ConnectorSpec{Name: "replicated", TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid", ClientSecret: "s3cret"},
		Dataverse: api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "acme.onmicrosoft.com",
			ClientID: "a1b2c3d4-0000-4000-8000-0000000000aa", ClientSecret: "d"}}
	conn, err := all.CreateConnector(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		c, _ := client.New(client.Config{Endpoint: u, Token: replicaToken, Timeout: 5 * time.Second})
		if got, err := c.GetConnector(ctx, conn.ID); err != nil || got.Name != "replicated" {
			t.Errorf("replica %s reads the connector as %+v (%v)", u, got, err)
		}
	}
	// An enrollment token from replica 2's local socket enrolls through replica 1.
	tok, err := exec.Command(testenv.Crmsync(t), "agents", "enroll-token", "--data-dir", rs[2].dir).Output() //nolint:gosec // G204: the test's own binary
	if err != nil {
		t.Fatalf("crmsync agents enroll-token: %v", err)
	}
	en, _ := client.New(client.Config{Endpoint: rs[1].url, Token: strings.TrimSpace(string(tok)), Timeout: 5 * time.Second})
	if _, err := en.Enroll(ctx, api.EnrollRequest{Name: "pool-1", Host: "h"}); err != nil {
		t.Errorf("enrolling through another replica: %v", err)
	}

	// SIGKILL the replica the client uses: the next calls go to the others.
	victim := rs[0]
	for _, r := range rs {
		if r.url == all.Endpoint() {
			victim = r
		}
	}
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.done
	for i := range 20 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := all.ListConnectors(cctx)
		cancel()
		if err != nil {
			t.Fatalf("call %d after the kill of %s: %v", i, victim.url, err)
		}
	}
	if all.Endpoint() == victim.url {
		t.Errorf("the client still uses the killed replica")
	}
	if _, err := all.GetConnector(ctx, conn.ID); errors.Is(err, client.ErrNotFound) || err != nil {
		t.Errorf("reading the connector after the kill: %v", err)
	}
}
