// Package backupjobs runs the control plane's backups and restores (controlplane.Safeguards) in the background
// of `crmsync serve`.
//
// Why the control plane and not a process of their own: a backup must finish before the first activation's
// agent is deployed, which the control plane decides; the files belong under its data directory; and it
// already holds the connectors' secrets and builds clients from them for the preflight checks (the same
// construction is used here). The export streams (one Dataverse page in memory) and every job is resumable
// from files in the backup's directory, so a job neither weighs on the API nor is lost when the process
// stops: unfinished backups resume when the control plane starts again, and a restore interrupted by a stop
// is marked failed and resumes from its last finished chunk when asked again.
//
// Contracts:
//   - A backup is retried with backoff until it completes or is cancelled (only a first activation's
//     blocking backup is cancelled: when the connector is deactivated). The Deployer hears about a blocking
//     backup's end, so the agent starts at once.
//   - The store records progress after every chunk, so status shows it.
//   - Start's context ending stops every job (their files stay consistent); Wait returns when they stopped.
package backupjobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/backup"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// ClientFactory builds a connector's clients on this host (preflight.Checker.Clients).
type ClientFactory func(conn api.Connector, secrets store.Secrets) (*salesforce.Client, *dataverse.Client, error)

// Store is what backups and restores use: the connector's settings, secrets and revisions, and the
// backups' and restores' records.
type Store interface {
	store.Connectors
	store.Backups
	store.Restores
}

// Config configures a Manager.
type Config struct {
	Store Store
	// DataDir is the control plane's data directory; backups go to DataDir/backups/<connector>/<backup>.
	DataDir string
	Clients ClientFactory
	// Deployer is told when a blocking backup ends; nil when nothing deploys agents.
	Deployer controlplane.Deployer
	Logger   *slog.Logger
	// RetryMin and RetryMax bound the delay between attempts of a failing backup (1 s and 5 min when zero).
	RetryMin, RetryMax time.Duration
	// PageSize and ChunkPages tune the export (backup's defaults when zero).
	PageSize, ChunkPages int
	// Claims, when set, share the jobs with other control-plane replicas (claims.go): Holder names this
	// replica, ClaimTTL is how long a claim lives unrenewed (DefaultClaimTTL when zero). With replicas,
	// DataDir/backups must be one volume every replica mounts at the same path.
	Claims   store.Claims
	Holder   string
	ClaimTTL time.Duration
}

// Manager implements controlplane.Safeguards.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	backups map[string]*job // by backup ID
}

type job struct {
	cancel    context.CancelFunc
	cancelled bool // by CancelBlocking, not by a shutdown
}

var _ controlplane.Safeguards = (*Manager)(nil)

// New returns a Manager; jobs may start before Run, which resumes what a previous process left.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	base, stop := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "backups"), base: base, stop: stop, backups: map[string]*job{}}
}

// Start resumes unfinished backups and marks restores a stopped process left running as failed; jobs
// stop when ctx ends (Wait waits for them).
func (m *Manager) Start(ctx context.Context) error {
	if m.cfg.Store == nil || m.cfg.DataDir == "" || m.cfg.Clients == nil {
		return errors.New("backups: a store, the data directory and a client factory are required")
	}
	m.interruptOrphanedRestores(ctx)
	bs, err := m.cfg.Store.UnfinishedBackups(ctx)
	if err != nil {
		return err
	}
	for _, b := range bs {
		m.log.Info("resuming a backup", "backup_id", b.ID, "connector_id", b.ConnectorID, "rows", b.Rows)
		m.launch(b) //nolint:contextcheck // jobs run under the manager's context, stopped by Start's

	}
	go func() {
		select {
		case <-ctx.Done():
			m.stop()
		case <-m.base.Done():
		}
	}()
	if m.cfg.Claims != nil {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.rescan(m.base) }() //nolint:contextcheck // the manager's context, stopped by Start's
	}
	return nil
}

// Wait returns once every job has stopped (after Start's context ended).
func (m *Manager) Wait() { m.wg.Wait() }

// StartBackup implements controlplane.Safeguards.
func (m *Manager) StartBackup(ctx context.Context, conn api.Connector, trigger string, blocking bool) (api.Backup, error) {
	b := api.Backup{ID: store.NewID(store.PrefixBackup), ConnectorID: conn.ID, ConnectorName: conn.Name, Revision: conn.Revision,
		Trigger: trigger, State: api.BackupPending, Blocking: blocking, Tables: []api.BackupTable{}, EnvironmentURL: conn.Dataverse.EnvironmentURL}
	b.Path = filepath.Join(m.cfg.DataDir, "backups", conn.ID, b.ID)
	b, err := m.cfg.Store.CreateBackup(ctx, b, "api")
	if err != nil {
		return b, err
	}
	m.launch(b) //nolint:contextcheck // the job outlives the request: it runs under the manager's context
	return b, nil
}

// CancelBlocking implements controlplane.Safeguards.
func (m *Manager) CancelBlocking(ctx context.Context, connectorID string) error {
	bs, err := m.cfg.Store.ListBackups(ctx, connectorID)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if !b.Blocking || !unfinished(b.State) {
			continue
		}
		m.mu.Lock()
		if j := m.backups[b.ID]; j != nil {
			j.cancelled = true
			j.cancel()
		}
		m.mu.Unlock()
		b.State, b.Blocking, b.Error = api.BackupCancelled, false, "the connector was deactivated before its first sync"
		if err := m.cfg.Store.UpdateBackup(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func unfinished(state string) bool {
	return state == api.BackupPending || state == api.BackupRunning || state == api.BackupRetrying
}

func (m *Manager) launch(b api.Backup) {
	ctx, cancel := context.WithCancel(m.base)
	j := &job{cancel: cancel}
	m.mu.Lock()
	m.backups[b.ID] = j
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		defer func() {
			m.mu.Lock()
			delete(m.backups, b.ID)
			m.mu.Unlock()
		}()
		jctx, release, ok := m.hold(ctx, "backup:"+b.ID)
		if !ok {
			return // another replica runs it
		}
		defer release()
		m.runBackup(jctx, j, b)
	}()
}

// runBackup exports until the backup completes, is cancelled, or the manager stops.
func (m *Manager) runBackup(ctx context.Context, j *job, b api.Backup) {
	log := m.log.With("backup_id", b.ID, "connector_id", b.ConnectorID)
	for attempt := 1; ; attempt++ {
		b.State, b.Error = api.BackupRunning, ""
		if err := m.save(ctx, j, &b); err != nil {
			log.Warn("recording the backup", "err", err)
			return
		}
		err := m.exportOnce(ctx, j, &b, log)
		if err == nil {
			now := time.Now().UTC()
			blocking := b.Blocking
			b.State, b.Blocking, b.CompletedAt = api.BackupComplete, false, &now
			if err := m.cfg.Store.UpdateBackup(context.WithoutCancel(ctx), b); err != nil {
				log.Error("recording the finished backup", "err", err)
				return
			}
			log.Info("backup complete", "rows", b.Rows, "bytes", b.Bytes, "path", b.Path)
			if blocking && m.cfg.Deployer != nil {
				m.cfg.Deployer.Changed(b.ConnectorID)
			}
			return
		}
		if ctx.Err() != nil || errors.Is(err, store.ErrNotFound) {
			return // cancelled, the manager stops (it resumes on the next start), or the connector is gone
		}
		// RetryMin doubling up to RetryMax, and up to a quarter more at random.
		wait := retry.Policy{Base: m.cfg.RetryMin * 5 / 4, Max: m.cfg.RetryMax * 5 / 4, Jitter: 0.2}.Delay(attempt - 1)
		log.Warn("backup failed; retrying", "err", err, "attempt", attempt, "in", wait)
		b.State, b.Error = api.BackupRetrying, err.Error()
		if err := m.save(ctx, j, &b); err != nil {
			return
		}
		if retry.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// save records the backup unless it was cancelled meanwhile (CancelBlocking wrote its final state).
func (m *Manager) save(ctx context.Context, j *job, b *api.Backup) error {
	m.mu.Lock()
	cancelled := j.cancelled
	m.mu.Unlock()
	if cancelled || ctx.Err() != nil {
		return context.Canceled
	}
	return m.cfg.Store.UpdateBackup(ctx, *b)
}

func (m *Manager) exportOnce(ctx context.Context, j *job, b *api.Backup, log *slog.Logger) error {
	conn, err := m.cfg.Store.GetConnector(ctx, b.ConnectorID)
	if err != nil {
		return err
	}
	secrets, err := m.cfg.Store.ConnectorSecrets(ctx, b.ConnectorID)
	if err != nil {
		return err
	}
	_, dv, err := m.cfg.Clients(conn, secrets)
	if dv == nil {
		return fmt.Errorf("the control plane cannot reach Dataverse for the backup (it runs on the control plane's host): %w", err)
	}
	opts := backup.ExportOptions{Dir: b.Path, PageSize: m.cfg.PageSize, ChunkPages: m.cfg.ChunkPages, Logger: log,
		Progress: func(man backup.Manifest) {
			fill(b, &man)
			if err := m.save(ctx, j, b); err != nil && ctx.Err() == nil {
				log.Warn("recording the backup's progress", "err", err)
			}
		}}
	if _, err := os.Stat(filepath.Join(b.Path, backup.ManifestFile)); errors.Is(err, os.ErrNotExist) {
		cfg, err := m.cfg.Store.RevisionConfig(ctx, b.ConnectorID, b.Revision)
		if err != nil {
			return err
		}
		tables, err := backup.PlanTables(ctx, dv, backup.SourcesOf(cfg.Tables))
		if err != nil {
			return err
		}
		opts.Manifest = backup.Manifest{ID: b.ID, ConnectorID: b.ConnectorID, ConnectorName: conn.Name, Revision: b.Revision,
			Trigger: b.Trigger, EnvironmentURL: conn.Dataverse.EnvironmentURL, Tables: tables}
	}
	man, err := backup.Export(ctx, dv, opts)
	if man != nil {
		fill(b, man)
	}
	return err
}

// fill copies a manifest's counts into the backup's record.
func fill(b *api.Backup, m *backup.Manifest) {
	b.Rows, b.Bytes = m.Rows()
	b.Tables = b.Tables[:0]
	for _, t := range m.Tables {
		bt := api.BackupTable{Table: t.Table, SourceTable: t.SourceTable, Rows: t.Rows, Bytes: t.Bytes, Chunks: len(t.Chunks),
			Estimated: t.Estimated, Complete: t.Complete, Columns: []string{t.PrimaryID}}
		for _, c := range t.Columns {
			bt.Columns = append(bt.Columns, c.Property)
		}
		b.Tables = append(b.Tables, bt)
	}
}

// StartRestore implements controlplane.Safeguards.
func (m *Manager) StartRestore(ctx context.Context, b api.Backup, req api.RestoreRequest) (api.Restore, error) {
	// The connector restored into: the backup's own, or the one the request names (the server checked it
	// syncs into the backup's environment).
	target := b.ConnectorID
	if req.ConnectorID != "" {
		target = req.ConnectorID
	}
	rs, err := m.cfg.Store.CreateRestore(ctx, api.Restore{BackupID: b.ID, ConnectorID: target, DeleteCreated: req.DeleteCreated}, "api")
	if err != nil {
		return rs, err
	}
	m.wg.Add(1)
	go func() { //nolint:contextcheck // the restore outlives the request: it runs under the manager's context
		defer m.wg.Done()
		ctx, release, ok := m.hold(m.base, "restore:"+rs.ID)
		if !ok {
			return
		}
		defer release()
		m.runRestore(ctx, rs, b)
	}()
	return rs, nil
}

func (m *Manager) runRestore(ctx context.Context, rs api.Restore, b api.Backup) {
	log := m.log.With("restore_id", rs.ID, "backup_id", b.ID, "connector_id", rs.ConnectorID)
	id, created := rs.ID, rs.CreatedAt
	record := func(r api.Restore) {
		r.ID, r.CreatedAt = id, created
		if err := m.cfg.Store.UpdateRestore(context.WithoutCancel(ctx), r); err != nil {
			log.Warn("recording the restore", "err", err)
		}
	}
	fail := func(err error) {
		rs.State, rs.Error = api.RestoreFailed, err.Error()
		if ctx.Err() != nil {
			rs.Error = "interrupted: the control plane stopped during the restore; run it again to resume from its last finished chunk"
		}
		log.Error("restore failed", "err", err)
		record(rs)
	}
	conn, err := m.cfg.Store.GetConnector(ctx, rs.ConnectorID)
	if err != nil {
		fail(err)
		return
	}
	secrets, err := m.cfg.Store.ConnectorSecrets(ctx, rs.ConnectorID)
	if err != nil {
		fail(err)
		return
	}
	sf, dv, cerr := m.cfg.Clients(conn, secrets)
	if dv == nil || (rs.DeleteCreated && sf == nil) {
		fail(fmt.Errorf("the control plane cannot reach both services for the restore (it runs on the control plane's host): %w", cerr))
		return
	}
	opts := backup.RestoreOptions{Dir: b.Path, RestoreID: rs.ID, DeleteCreated: rs.DeleteCreated, Logger: log, Progress: func(r api.Restore) {
		if r.State == api.RestoreRunning {
			record(r)
		}
	}}
	if rs.DeleteCreated {
		opts.Source = backup.SalesforceIDs(sf)
	}
	log.Info("restore started", "delete_created", rs.DeleteCreated)
	rep, err := backup.Restore(ctx, dv, opts)
	if err != nil {
		if rep != nil {
			rs = *rep
		}
		fail(err)
		return
	}
	log.Info("restore complete", "restored", rep.Restored, "unchanged", rep.Unchanged, "deleted", rep.Deleted, "kept", rep.Kept, "failed", rep.Failed)
	record(*rep)
}
