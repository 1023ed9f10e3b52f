package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// TestHelperStoreWriter is not a test: run by TestAKillMidWriteLeavesTheStoreConsistent as a child process, it
// writes to the store in CRMSYNC_STORE_WRITER_DIR until it is killed (bounded at 5000 writes).
func TestHelperStoreWriter(t *testing.T) {
	dir := os.Getenv("CRMSYNC_STORE_WRITER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := OpenSQLite(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := s.CreateConnector(ctx, spec("crashy"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(2)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, time.Hour)
	if err != nil {
		fmt.Println("lease:", err)
		os.Exit(2)
	}
	for i := range 5000 {
		switch i % 4 {
		case 0:
			_, err = s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: fmt.Sprintf("Obj%d__c", i)}, "test")
		case 1:
			sp := spec("crashy")
			sp.Salesforce.APIVersion = fmt.Sprintf("%d.0", 50+i%40)
			_, err = s.UpdateConnector(ctx, c.ID, sp, Secrets{SecretSalesforceClientSecret: fmt.Sprint(canary, i)}, "test")
		case 2:
			err = s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact", LoadDone: int64(i)})
		case 3:
			_, err = s.RenewLease(ctx, l.ID, time.Hour, api.Status{State: "streaming", Revision: int64(i)})
		}
		if err != nil {
			fmt.Println("write:", err)
			os.Exit(2)
		}
		fmt.Println("wrote", i)
	}
	os.Exit(0)
}

func TestAKillMidWriteLeavesTheStoreConsistent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd, sc := startHelper(ctx, t, "TestHelperStoreWriter", "CRMSYNC_STORE_WRITER_DIR="+dir)
	// Kill it in the middle of its writes: after a few hundred, at no particular point of a transaction.
	writes := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "wrote ") {
			writes++
		} else if !strings.HasPrefix(line, "=== RUN") {
			t.Fatalf("writer: %s", line)
		}
		if writes == 300 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if writes < 300 {
		t.Fatalf("the writer stopped after %d writes", writes)
	}

	s := openStore(t, dir)
	defer s.Close()
	var check string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check after a kill: %q, %v", check, err)
	}
	conns, err := s.ListConnectors(ctx)
	if err != nil || len(conns) != 1 {
		t.Fatalf("connectors after a kill: %v, %v", conns, err)
	}
	c := conns[0]
	// Every revision up to the connector's is recorded, and the latest one is exactly the stored mappings.
	var revs int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM revisions WHERE connector_id = ?`, c.ID).Scan(&revs); err != nil {
		t.Fatal(err)
	}
	if revs != c.Revision {
		t.Errorf("%d revisions recorded for revision %d", revs, c.Revision)
	}
	cfg, err := s.RevisionConfig(ctx, c.ID, c.Revision)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.ListMappings(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tables) != len(ms) || cfg.Salesforce.APIVersion != c.Salesforce.APIVersion {
		t.Errorf("latest revision: %d tables, API %s; stored: %d mappings, API %s", len(cfg.Tables), cfg.Salesforce.APIVersion, len(ms), c.Salesforce.APIVersion)
	}
	if _, err := s.ConnectorSecrets(ctx, c.ID); err != nil {
		t.Errorf("the secrets do not decrypt after a kill: %v", err)
	}
}

// startHelper runs this test binary again with only the helper test named, env added to its environment, and
// returns the process and its output's lines (the helper prints what it did; the caller kills it).
func startHelper(ctx context.Context, t *testing.T, helper, env string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}
