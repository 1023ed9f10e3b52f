package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
)

// newQuiet builds an agent on the env's configuration with its state in a fresh directory.
func newQuiet(t *testing.T, cfg agent.Config, opts ...agent.Option) (*agent.Agent, error) {
	t.Helper()
	st, err := localstore.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return agent.New(cfg, agent.Stores{Checkpoints: st, DeadLetters: st, Reporter: st}, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
}

// A source table the org does not have was retried forever with backoff. It is a
// configuration error: Run fails at start, naming the table, without waiting for a retry.
func TestAnUnknownSourceTableFailsAtStart(t *testing.T) {
	e := newEnv(t, 5, 2)
	cfg := e.cfg
	cfg.Tables = mapping.ResolveAll([]mapping.TableConfig{{SourceTable: "Invoice__c", DestinationTable: "contact", Columns: map[string]mapping.ColumnOverride{"lastname": {Source: "Name"}}}})
	a, err := newQuiet(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = a.Run(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Invoice__c") {
		t.Fatalf("Run with an unknown source table: %v after %s; want it to fail at start naming the table", err, time.Since(start).Round(time.Millisecond))
	}
	if st := a.Status(); st.State != "failed" || !strings.Contains(st.Reason, "Invoice__c") {
		t.Errorf("status %q %q; want failed naming the table", st.State, st.Reason)
	}
}

// A CA certificate given as the private key was retried forever. Key material is
// checked when the agent is built, and the error names the setting.
func TestACertificateGivenAsThePrivateKeyIsRefusedAtStart(t *testing.T) {
	e := newEnv(t, 1, 1)
	ca, err := os.ReadFile(e.sb.Info.Salesforce.CAFile)
	if err != nil || len(ca) == 0 {
		t.Skipf("the sandbox has no CA file to misuse: %v", err)
	}
	cfg := e.cfg
	cfg.Salesforce.PrivateKeyFile = e.sb.Info.Salesforce.CAFile
	if err := os.Chmod(cfg.Salesforce.PrivateKeyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = newQuiet(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "salesforce.private_key_file") || !strings.Contains(err.Error(), "CERTIFICATE") {
		t.Fatalf("a certificate as the private key: %v; want a refusal naming salesforce.private_key_file and what it holds", err)
	}
	cfg.Salesforce.PrivateKeyFile, cfg.Salesforce.PrivateKey = "", string(ca)
	if _, err = newQuiet(t, cfg); err == nil || !strings.Contains(err.Error(), "salesforce.private_key") {
		t.Fatalf("a certificate as the inline private key: %v; want a refusal naming salesforce.private_key", err)
	}
}

// A private key file group or others can read was accepted silently. It is refused
// naming the file and the fix, unless the operator allows it explicitly.
func TestAPrivateKeyFileReadableByOthersIsRefusedUnlessAllowed(t *testing.T) {
	e := newEnv(t, 1, 1)
	key, err := os.ReadFile(e.sb.Info.Salesforce.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(t.TempDir(), "sf.key")
	if err := os.WriteFile(loose, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Salesforce.PrivateKeyFile = loose
	if _, err := newQuiet(t, cfg); err == nil || !strings.Contains(err.Error(), loose) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file readable by others: %v; want a refusal naming the file and chmod 600", err)
	}
	if _, err := newQuiet(t, cfg, agent.AllowReadableKeyFiles()); err != nil {
		t.Fatalf("with the key files allowed to be readable: %v", err)
	}
}
