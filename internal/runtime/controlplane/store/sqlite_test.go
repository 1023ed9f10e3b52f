package store

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

const canary = "canary-secret-7d41c0ffee"

func openStore(t *testing.T, dir string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spec(name string) api.ConnectorSpec {
	return api.ConnectorSpec{Name: name, TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid"},
		Dataverse:  api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "t", ClientID: "c"}}
}

func TestMigratingAnEmptyDatabaseAndReopeningIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("one"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s = openStore(t, dir)
		var versions int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if versions != SchemaVersion() {
			t.Errorf("%d migrations recorded, want %d", versions, SchemaVersion())
		}
		got, err := s.GetConnector(ctx, c.ID)
		if err != nil || got.Name != "one" {
			t.Fatalf("after reopening: %+v, %v", got, err)
		}
		sec, err := s.ConnectorSecrets(ctx, c.ID)
		if err != nil || sec[SecretDataverseClientSecret] != canary {
			t.Errorf("secrets after reopening: %v, %v", sec, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestADatabaseFromANewerBinaryIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenSQLite(dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("opening a newer schema: %v", err)
	}
}

func TestTheKeyFileIsPrivateAndTheDatabaseHoldsNoSecretInClear(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("enc"), Secrets{SecretDataverseClientSecret: canary, SecretSalesforcePrivateKey: "-----BEGIN " + canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateConnector(ctx, c.ID, spec("enc"), Secrets{SecretSalesforceClientSecret: canary + "-2"}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{KeyFile, DBFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	// The WAL holds recent pages until a checkpoint: look at every file of the directory, before and after.
	scan := func(when string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("canary-secret")) {
				t.Errorf("%s: %s holds a secret in clear", when, e.Name())
			}
		}
	}
	scan("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed")
}

func TestAKeyReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir).Close()
	key := filepath.Join(dir, KeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSQLite(dir)
	if err == nil || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), key) {
		t.Errorf("opening with a world-readable key: %v", err)
	}
}

func TestAWrongKeyIsRefusedNamingWhatItCannotDecrypt(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	c, err := s.CreateConnector(t.Context(), spec("locked"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	key := filepath.Join(dir, KeyFile)
	orig, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	// Another store's key.
	other := t.TempDir()
	openStore(t, other).Close()
	foreign, err := os.ReadFile(filepath.Join(other, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(dir); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Errorf("opening with a foreign key: %v", err)
	}
	// The key check passes but a connector's secrets were sealed under another key: the connector is named.
	s = openWithKey(t, dir, orig)
	sealed, err := seal(mustAEAD(t, foreign), []byte(`{"dataverse.client_secret":"x"}`), []byte(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`UPDATE connectors SET secrets = ? WHERE id = ?`, sealed, c.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenSQLite(dir); err == nil || !strings.Contains(err.Error(), c.ID) {
		t.Errorf("opening with undecryptable secrets: %v, want the connector named", err)
	}
	// A missing key with secrets stored is refused, not regenerated.
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("opening without the key: %v", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Error("a new key was generated over encrypted secrets")
	}
}

func openWithKey(t *testing.T, dir string, key []byte) *SQLite {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return openStore(t, dir)
}

func mustAEAD(t *testing.T, keyFile []byte) cipher.AEAD {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	key, _, err := loadKey(filepath.Join(dir, KeyFile), false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSecretsCannotBeMovedToAnotherConnector(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	ctx := t.Context()
	a, err := s.CreateConnector(ctx, spec("a"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateConnector(ctx, spec("b"), Secrets{SecretDataverseClientSecret: "other"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`UPDATE connectors SET secrets = (SELECT secrets FROM connectors WHERE id = ?) WHERE id = ?`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConnectorSecrets(ctx, b.ID); err == nil {
		t.Error("a's sealed secrets decrypted as b's")
	}
}

func TestParallelWritersNeverCorruptTheStore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := s.CreateConnector(ctx, spec("busy"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			table := fmt.Sprintf("Obj%d__c", w)
			for i := range each {
				var err error
				switch i % 3 {
				case 0:
					_, err = s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: fmt.Sprintf("%s%d", table, i)}, "test")
				case 1:
					err = s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: table, LoadDone: int64(i)})
				case 2:
					err = s.AddDeadLetters(ctx, l.ID, []api.DeadLetter{{Table: table, RecordID: fmt.Sprintf("003%012dAAA", i), Code: "x", At: time.Now()}})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var check string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
	got, err := s.GetConnector(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.ListMappings(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := writers * each / 3; len(ms) != want || got.Revision != int64(1+want) {
		t.Errorf("%d mappings at revision %d, want %d at %d", len(ms), got.Revision, want, 1+want)
	}
	cps, err := s.ListCheckpoints(ctx, c.ID)
	if err != nil || len(cps) != writers {
		t.Errorf("%d checkpoints (%v), want %d", len(cps), err, writers)
	}
	cfg, err := s.RevisionConfig(ctx, c.ID, got.Revision)
	if err != nil || len(cfg.Tables) != len(ms) {
		t.Errorf("the latest revision has %d tables (%v), the store %d", len(cfg.Tables), err, len(ms))
	}
	s.Close()
}

func TestDeletingAConnectorRemovesWhatItOwnsButKeepsTheAudit(t *testing.T) {
	s := behaviourStore(t)
	defer s.Close()
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("gone"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, "test"); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnector(ctx, c.ID, "test"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"mappings", "revisions", "leases", "checkpoints", "dead_letters", "activations", "agent_status"} {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", table, n, err)
		}
	}
	entries, err := s.Audit(ctx, c.ID, 0)
	if err != nil || len(entries) < 3 || entries[0].Action != "connector.delete" {
		t.Errorf("audit after delete: %+v, %v", entries, err)
	}
	for _, e := range entries {
		if bytes.Contains(e.Detail, []byte(canary)) {
			t.Errorf("audit entry %s holds the secret", e.Action)
		}
	}
}

// Two `crmsync serve` on one --data-dir both ran (a resumed backup collided with the
// running one, restores were marked failed under the first). The second open is refused naming the holder.
func TestASecondOpenOfADataDirIsRefusedNamingTheHoldersPID(t *testing.T) {
	dir := t.TempDir()
	first := openStore(t, dir)
	second, err := OpenSQLite(dir)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second store opened on a data directory another one holds")
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Errorf("the refusal %q does not name the directory and the holder (%s)", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir).Close()
}

// The database and its WAL are 0600 and the directory 0700, checked at start like secret.key: a file or
// directory open to others is refused with the command that fixes it.
func TestADataDirOpenToOthersIsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.CreateConnector(t.Context(), spec("perm"), Secrets{SecretDataverseClientSecret: canary}, "test"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := filepath.Join(dir, DBFile)
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenSQLite(dir); err == nil {
		s.Close()
		t.Fatal("control-plane.db readable by others was accepted")
	} else if !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "chmod") {
		t.Errorf("the refusal %q does not name the file and the fix", err)
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory its group may enter is narrowed to the owner (its files were private already).
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir).Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data directory after a start: %v, %v; want mode 0700", fi.Mode(), err)
	}
}
