package backupjobs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/backupjobs"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/preflight"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
)

type deployer struct {
	mu      sync.Mutex
	changed []string
}

func (d *deployer) Changed(id string) {
	d.mu.Lock()
	d.changed = append(d.changed, id)
	d.mu.Unlock()
}

func (d *deployer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.changed)
}

type env struct {
	sb   *sandbox.Sandbox
	st   *store.SQLite
	dir  string
	conn api.Connector
	dep  *deployer
}

// newEnv is a sandbox with n contacts in Dataverse and a connector mapping Contact, in a fresh store.
func newEnv(t *testing.T, n int) *env {
	t.Helper()
	dir := t.TempDir()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(dir, "sandbox")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	for i := range n {
		if _, err := sb.Dataverse.CreateRow("contact", "", map[string]any{"lastname": fmt.Sprintf("Row %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.OpenSQLite(filepath.Join(dir, "cp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	i := sb.Info
	conn, err := st.CreateConnector(t.Context(), api.ConnectorSpec{Name: "backups", TeamID: i.Dataverse.TeamID,
		Salesforce: api.SalesforceSettings{LoginURL: i.Salesforce.LoginURL, APIVersion: i.Salesforce.APIVersion, Auth: "jwt_bearer",
			ClientID: i.Salesforce.ClientID, Username: i.Salesforce.Username, CAFile: i.Salesforce.CAFile},
		Dataverse: api.DataverseSettings{EnvironmentURL: i.Dataverse.EnvironmentURL, AuthorityURL: i.Dataverse.AuthorityURL,
			TenantID: i.Dataverse.TenantID, ClientID: i.Dataverse.ClientID, CAFile: i.Dataverse.CAFile},
	}, store.Secrets{store.SecretSalesforcePrivateKey: string(i.Salesforce.PrivateKeyPEM), store.SecretDataverseClientSecret: i.Dataverse.ClientSecret}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateMapping(t.Context(), conn.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}, "test"); err != nil {
		t.Fatal(err)
	}
	if conn, err = st.GetConnector(t.Context(), conn.ID); err != nil {
		t.Fatal(err)
	}
	return &env{sb: sb, st: st, dir: dir, conn: conn, dep: &deployer{}}
}

func (e *env) manager() *backupjobs.Manager {
	return backupjobs.New(backupjobs.Config{Store: e.st, DataDir: filepath.Join(e.dir, "cp"), Clients: preflight.NewChecker(preflight.Config{
		// The sandbox is on loopback and its CA file in its directory: allowed, as crmsync serve allows them.
		Hosts: policy.Hosts{Allow: []string{"127.0.0.1"}}, Refs: policy.Refs{Dirs: []string{filepath.Join(e.dir, "sandbox")}}}).Clients,
		Deployer: e.dep, PageSize: 4, ChunkPages: 1, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond})
}

func (e *env) waitBackup(t *testing.T, id string, what string, cond func(api.Backup) bool) api.Backup {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := e.st.GetBackup(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAnUnfinishedBackupResumesWhenTheControlPlaneStartsAgain(t *testing.T) {
	e := newEnv(t, 30)
	// Slow Dataverse down so the first process stops half-way.
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 80 * time.Millisecond, PathPrefix: "/api/data/"})
	ctx, stop := context.WithCancel(t.Context())
	first := e.manager()
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := first.StartBackup(t.Context(), e.conn, api.BackupTriggerActivation, true)
	if err != nil {
		t.Fatal(err)
	}
	half := e.waitBackup(t, b.ID, "a few chunks", func(b api.Backup) bool { return b.Rows >= 8 })
	stop()
	first.Wait()
	if half.State == api.BackupComplete {
		t.Fatalf("the backup finished before the stop: %+v", half)
	}
	e.sb.Dataverse.Faults().Set(faults.Config{})
	if e.dep.count() != 0 {
		t.Fatal("the deployer heard of a backup that is not complete")
	}

	second := e.manager()
	ctx2, stop2 := context.WithCancel(t.Context())
	defer func() { stop2(); second.Wait() }()
	reads := e.sb.Dataverse.Counters()["read"]
	if err := second.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	done := e.waitBackup(t, b.ID, "the resumed backup to complete", func(b api.Backup) bool { return b.State == api.BackupComplete })
	if done.Rows != 30 || done.Blocking || done.CompletedAt == nil || len(done.Tables) != 1 || done.Tables[0].Chunks < 8 {
		t.Errorf("resumed backup %+v: want 30 rows in 4-row chunks, complete and no longer blocking", done)
	}
	// 30 rows in pages of 4: 8 pages for a whole export; the resumed one read only what was left.
	if got := e.sb.Dataverse.Counters()["read"] - reads; got >= 8 {
		t.Errorf("the resumed backup read %d pages; it should continue after the %d rows already exported", got, half.Rows)
	}
	if e.dep.count() != 1 {
		t.Errorf("the deployer heard %d times of the blocking backup's end, want once", e.dep.count())
	}
}

func TestAFailingBackupIsRetriedAndSaysWhy(t *testing.T) {
	e := newEnv(t, 5)
	e.sb.Dataverse.Faults().Set(faults.Config{ErrorRate: 1, ErrorStatus: 403, PathPrefix: "/api/data/"})
	m := e.manager()
	ctx, stop := context.WithCancel(t.Context())
	defer func() { stop(); m.Wait() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := m.StartBackup(t.Context(), e.conn, api.BackupTriggerOnDemand, false)
	if err != nil {
		t.Fatal(err)
	}
	failed := e.waitBackup(t, b.ID, "a failed attempt", func(b api.Backup) bool { return b.State == api.BackupRetrying && b.Error != "" })
	t.Logf("while failing: %s", failed.Error)
	e.sb.Dataverse.Faults().Set(faults.Config{})
	done := e.waitBackup(t, b.ID, "the retried backup to complete", func(b api.Backup) bool { return b.State == api.BackupComplete })
	if done.Rows != 5 || done.Error != "" {
		t.Errorf("retried backup %+v: want 5 rows, no error", done)
	}
}

func TestDeactivationCancelsABlockingBackup(t *testing.T) {
	e := newEnv(t, 20)
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 100 * time.Millisecond, PathPrefix: "/api/data/"})
	m := e.manager()
	ctx, stop := context.WithCancel(t.Context())
	defer func() { stop(); m.Wait() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := m.StartBackup(t.Context(), e.conn, api.BackupTriggerActivation, true)
	if err != nil {
		t.Fatal(err)
	}
	e.waitBackup(t, b.ID, "the backup to run", func(b api.Backup) bool { return b.State == api.BackupRunning })
	if err := m.CancelBlocking(t.Context(), e.conn.ID); err != nil {
		t.Fatal(err)
	}
	// The job stops (the only one: Wait returns) and never writes over the cancelled state.
	stopped := make(chan struct{})
	go func() { m.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled backup's job did not stop within 10 s")
	}
	got, err := e.st.GetBackup(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.BackupCancelled || got.Blocking {
		t.Errorf("cancelled backup reads %+v", got)
	}
	if e.dep.count() != 0 {
		t.Error("the deployer heard of a cancelled backup as complete")
	}
}
