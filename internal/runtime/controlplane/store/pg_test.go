package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	os.Exit(code)
}

// behaviourStore is the store a behavioural test runs on: SQLite, or PostgreSQL when
// CRMSYNC_TEST_STORE=postgres (`make test` runs this package both ways).
func behaviourStore(t *testing.T) *SQLite {
	t.Helper()
	if os.Getenv("CRMSYNC_TEST_STORE") != "postgres" {
		return openStore(t, t.TempDir())
	}
	return openPG(t, pgtest.Database(t), t.TempDir(), "")
}

func openPG(t *testing.T, url, dir, keyFile string) *SQLite {
	t.Helper()
	s, err := OpenPostgres(t.Context(), PostgresOptions{URL: url, Dir: dir, KeyFile: keyFile, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Replicas opening an empty database at once migrate it once; each needs the key the first one made, and
// one with another key is refused naming its key file.
func TestReplicasMigrateOnceAndShareOneKey(t *testing.T) {
	url := pgtest.Database(t)
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, KeyFile)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	stores := make([]*SQLite, 3)
	// The first opens alone (it creates the key); then three more replicas with that key open together.
	first := openPG(t, url, t.TempDir(), key)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = OpenPostgres(t.Context(), PostgresOptions{URL: url, Dir: t.TempDir(), KeyFile: key, MaxConns: 4})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var versions int
	if err := first.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != PGSchemaVersion() {
		t.Errorf("schema_migrations holds %d versions (%v), want %d", versions, err, PGSchemaVersion())
	}
	c, err := first.CreateConnector(t.Context(), spec("shared"), Secrets{SecretDataverseClientSecret: canary}, "test")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := stores[2].ConnectorSecrets(t.Context(), c.ID)
	if err != nil || sec[SecretDataverseClientSecret] != canary {
		t.Errorf("another replica reads the secret as %q (%v)", sec[SecretDataverseClientSecret], err)
	}
	// A replica with a key of its own (its data directory's, generated) is refused.
	_, err = OpenPostgres(t.Context(), PostgresOptions{URL: url, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("a replica without the key: %v, want a refusal naming the key file", err)
	}
}

// Agents racing for one connector through several replicas: exactly one lease is granted while it lives
// (every method is a serializable transaction, retried on conflict).
func TestOneLeaseAcrossReplicas(t *testing.T) {
	url := pgtest.Database(t)
	key := filepath.Join(t.TempDir(), KeyFile)
	replicas := []*SQLite{openPG(t, url, t.TempDir(), key)}
	for range 2 {
		replicas = append(replicas, openPG(t, url, t.TempDir(), key))
	}
	ctx := t.Context()
	for round := range 5 {
		c, err := replicas[0].CreateConnector(ctx, spec(fmt.Sprintf("race-%d", round)), nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		granted := 0
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := replicas[i%len(replicas)]
				_, err := st.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: fmt.Sprintf("agt_%d", i), Host: "h"}, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					granted++
				case !errors.Is(err, ErrConflict):
					t.Errorf("agent %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if granted != 1 {
			t.Fatalf("round %d: %d leases granted for one connector, want 1", round, granted)
		}
	}
}

// The store rides out a PostgreSQL restart: calls fail while it is down and work again after, with the data.
func TestThePostgresStoreSurvivesARestartOfTheServer(t *testing.T) {
	pg := pgtest.New(t)
	url, err := pg.CreateDatabase(t.Context(), "restart")
	if err != nil {
		t.Fatal(err)
	}
	s := openPG(t, url, t.TempDir(), "")
	c, err := s.CreateConnector(t.Context(), spec("survivor"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	if _, err := s.GetConnector(ctx, c.ID); err == nil {
		t.Error("a read succeeded while PostgreSQL was down")
	}
	cancel()
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := s.GetConnector(t.Context(), c.ID)
		if err == nil {
			if got.Name != "survivor" {
				t.Errorf("read back %q", got.Name)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within 30 s of the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
