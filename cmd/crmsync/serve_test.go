package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// lockedBuffer collects a command's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs `crmsync serve args...` in-process and returns its URL and a stop function that cancels it
// (as SIGTERM does) and returns its error.
func startServe(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cmd := newServeCommand()
	out := &lockedBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s := out.String(); strings.Contains(s, "listening on ") {
			url := strings.Fields(strings.SplitN(s, "listening on ", 2)[1])[0]
			var once sync.Once
			var err error
			return url, func() error {
				once.Do(func() {
					cancel()
					select {
					case err = <-done:
					case <-time.After(40 * time.Second):
						t.Fatal("serve did not stop within 40 s of its context ending")
					}
				})
				return err
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited before listening: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not print where it listens within 20 s:\n%s", out.String())
		}
	}
}

func runServeErr(t *testing.T, args ...string) error {
	t.Helper()
	cmd := newServeCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return cmd.ExecuteContext(ctx)
}

func TestServeRefusesToStartWithoutAToken(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "")
	err := runServeErr(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("serve without a token: %v", err)
	}
}

func TestServeRefusesPlainHTTPOffLoopback(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "tok")
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":8787", "10.1.2.3:8787", "crmsync.internal:8787"} {
		if err := runServeErr(t, "--data-dir", t.TempDir(), "--listen", addr); err == nil || !strings.Contains(err.Error(), "--insecure-listen") {
			t.Errorf("plain HTTP on %s: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8787", "[::1]:8787", "localhost:8787"} {
		if err := checkListen(addr, false, false); err != nil {
			t.Errorf("loopback %s refused: %v", addr, err)
		}
	}
	if err := checkListen("0.0.0.0:8787", false, true); err != nil {
		t.Errorf("--insecure-listen did not allow it: %v", err)
	}
	if err := checkListen("0.0.0.0:8787", true, false); err != nil {
		t.Errorf("TLS did not allow it: %v", err)
	}
	if err := runServeErr(t, "--data-dir", t.TempDir(), "--tls-cert", "/nonexistent"); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("a certificate without a key: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir (generated now, never committed).
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crmsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestServeOverTLSKeepsItsStateAcrossRestartsAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRMSYNC_TOKEN", "")
	data := filepath.Join(dir, "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--token-file", tokenFile}
	url, stop := startServe(t, args...)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("listening on %s, want https on loopback", url)
	}
	c, err := client.New(client.Config{Endpoint: url, Token: "file-token", CAFile: cert, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.ConnectorSpec{Name: "persisted", TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid", ClientSecret: "s"},
		Dataverse:  api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "acme.onmicrosoft.com", ClientID: "a1b2c3d4-0000-4000-8000-0000000000aa", ClientSecret: "s"}}
	created, err := c.CreateConnector(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve stopped with %v", err)
	}
	if _, err := c.Health(t.Context()); err == nil {
		t.Error("the API still answers after serve returned")
	}
	url, stop = startServe(t, args...)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	}()
	c, err = client.New(client.Config{Endpoint: url, Token: "file-token", CAFile: cert, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FindConnector(t.Context(), "persisted")
	if err != nil || got.ID != created.ID || len(got.SecretsSet) != 2 {
		t.Errorf("after a restart: %+v, %v", got, err)
	}
	if _, err := client.New(client.Config{Endpoint: url, Token: "", CAFile: cert}); err == nil {
		t.Error("the client accepted an empty token")
	}
}

// A second `crmsync serve` on a data directory another one runs on started too. It is
// refused before it listens, naming the process that holds the directory.
func TestASecondServeOnOneDataDirRefusesToStart(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "tok")
	data := filepath.Join(t.TempDir(), "data")
	_, stop := startServe(t, "--data-dir", data, "--listen", "127.0.0.1:0", "--local-agents=false")
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("the first serve stopped with %v", err)
		}
	}()
	err := runServeErr(t, "--data-dir", data, "--listen", "127.0.0.1:0", "--local-agents=false")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("a second serve on %s: %v; want a refusal naming the holder's pid", data, err)
	}
}

// Operator tokens rotate without a restart: --token-file may hold several tokens, and SIGHUP re-reads it.
func TestServeReloadsItsTokenFileOnSIGHUP(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte("old-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, stop := startServe(t, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--local-agents=false")
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve stopped with %v", err)
		}
	}()
	works := func(tok string) bool {
		c, err := client.New(client.Config{Endpoint: url, Token: tok, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListConnectors(t.Context())
		return err == nil
	}
	if !works("old-token-1") || works("new-token-2") {
		t.Fatal("before the rotation: the old token must work and the new one not")
	}
	reload := func(content string, want func() bool, what string) {
		t.Helper()
		if err := os.WriteFile(tokenFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !want() {
			if time.Now().After(deadline) {
				t.Fatalf("after SIGHUP: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	reload("old-token-1\nnew-token-2\n", func() bool { return works("old-token-1") && works("new-token-2") }, "both tokens must work")
	reload("new-token-2\n", func() bool { return !works("old-token-1") && works("new-token-2") }, "only the new token must work")
}

// `crmsync agents` reaches the control plane through the socket in its data directory: an enrollment token,
// the identities, a revocation; the operator token has no part in it.
func TestAgentsCommandsUseTheLocalSocket(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "tok-agents")
	data := filepath.Join(t.TempDir(), "data")
	url, stop := startServe(t, "--data-dir", data, "--listen", "127.0.0.1:0", "--local-agents=false")
	defer func() { _ = stop() }()
	run := func(args ...string) string {
		t.Helper()
		cmd := newAgentsCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("crmsync agents %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	token := strings.TrimSpace(run("enroll-token", "--data-dir", data, "--ttl", "10m"))
	if !strings.HasPrefix(token, "enr_") {
		t.Fatalf("enroll-token printed %q", token)
	}
	c, err := client.New(client.Config{Endpoint: url, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := c.Enroll(t.Context(), api.EnrollRequest{Name: "by-hand"})
	if err != nil {
		t.Fatal(err)
	}
	if out := run("list", "--data-dir", data); !strings.Contains(out, cred.AgentID) || !strings.Contains(out, "by-hand") {
		t.Errorf("list does not show the agent:\n%s", out)
	}
	run("revoke", cred.AgentID, "--data-dir", data)
	ag, err := client.New(client.Config{Endpoint: url, Token: cred.Credential, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.RotateCredential(t.Context()); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("a revoked credential still works: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(data, SocketFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the socket: %v, %v; want mode 0600", fi.Mode(), err)
	}
}
