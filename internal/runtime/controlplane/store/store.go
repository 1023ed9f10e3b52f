// Package store owns the control plane's persistent state, one small interface per aggregate: connectors
// with their encrypted inline secrets and config revisions (Connectors), table mappings (Mappings),
// activation (Activations), agent leases (Leases), agent identities and enrollment (Agents), checkpoints with
// their durable intents and on-demand reconciliations (Checkpoints, Reconciliations), the agents' reports and
// their history (Statuses), dead letters (DeadLetters), backups and restores (Backups, Restores) and the audit
// log (AuditLog). Store is their union; each caller depends on the interfaces it uses.
//
// The SQLite implementation (pure Go) is the default: sqlite.go opens it, sqlite_migrations.go versions its
// schema, and one sqlite_<aggregate>.go file implements each interface. A second implementation (PostgreSQL,
// for several control-plane replicas) is the same set of files; ids.go, credentials.go and crypto.go are
// shared.
//
// Contracts: every method is safe for concurrent use and atomic (a crash at any instant leaves the store
// consistent: each method is one transaction). Every change to a connector or one of its mappings bumps the
// connector's revision and records the full agent configuration of that revision. Secrets are never
// returned by the connector and mapping reads; ConnectorSecrets decrypts them for the agent lease and
// preflight. Writes in the name of an agent are fenced by the lease: a lease that is no longer the
// connector's current one gets ErrLeaseLost.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// Errors callers branch on (compare with errors.Is).
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")   // a unique name taken, a lease held by another live agent, a mapping of the same table
	ErrLeaseLost = errors.New("lease lost") // the lease is not the connector's current one
	ErrNotHolder = errors.New("not the lease's holder")
	// ErrUnauthenticated is an unknown, wrong, used or expired credential; callers answer it with no detail.
	ErrUnauthenticated = errors.New("unauthenticated")
)

// Secrets are the write-only secrets of a connector, by name: "salesforce.client_secret",
// "salesforce.private_key", "dataverse.client_secret". An empty value deletes the secret; a name absent from
// the map keeps the stored value.
type Secrets map[string]string

// DeadLetterFilter selects dead letters; zero fields match everything.
type DeadLetterFilter struct {
	Table     string
	RecordIDs []string
	Code      string
	Since     time.Time // FirstAt at or after
	Limit     int
}

// LeaseInfo is a connector's current lease with its agent's details.
type LeaseInfo struct {
	api.AgentInfo
	LeaseID   string
	ExpiresAt time.Time
}

// Connectors are connectors with their secrets, and the agent configuration of each revision. actor names
// who made a change in the audit log ("api", "agent:<id>").
type Connectors interface {
	CreateConnector(ctx context.Context, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error)
	GetConnector(ctx context.Context, id string) (api.Connector, error)
	FindConnector(ctx context.Context, name string) (api.Connector, error)
	ListConnectors(ctx context.Context) ([]api.Connector, error)
	UpdateConnector(ctx context.Context, id string, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error)
	// DeleteConnector removes a connector with its mappings, activation, leases, checkpoints and dead letters.
	DeleteConnector(ctx context.Context, id string, actor string) error
	ConnectorSecrets(ctx context.Context, id string) (Secrets, error)
	// RevisionConfig returns the agent configuration recorded at a revision (secrets not included), every
	// table with its effective columns.
	RevisionConfig(ctx context.Context, connectorID string, revision int64) (api.Config, error)
}

// Mappings are a connector's table mappings. A connector maps each source table at most once (ErrConflict).
type Mappings interface {
	CreateMapping(ctx context.Context, connectorID string, spec mapping.TableConfig, actor string) (api.TableMapping, error)
	GetMapping(ctx context.Context, id string) (api.TableMapping, error)
	ListMappings(ctx context.Context, connectorID string) ([]api.TableMapping, error)
	UpdateMapping(ctx context.Context, id string, spec mapping.TableConfig, actor string) (api.TableMapping, error)
	DeleteMapping(ctx context.Context, id string, actor string) error
}

// Activations say which connectors run.
type Activations interface {
	GetActivation(ctx context.Context, connectorID string) (api.Activation, error)
	SetActivation(ctx context.Context, connectorID string, active bool, preflight []api.PreflightCheck, actor string) (api.Activation, error)
	// ListActive returns the active connectors' activations (the supervisor's work list).
	ListActive(ctx context.Context) ([]api.Activation, error)
}

// Leases are the agents' claims on connectors.
type Leases interface {
	// AcquireLease grants the connector's lease to an agent when no other lease is live (renewed within its
	// TTL), replacing an expired one; the lease carries the connector's latest revision.
	AcquireLease(ctx context.Context, req api.LeaseRequest, ttl time.Duration) (api.Lease, error)
	// RenewLease extends a current lease and stores the agent's status.
	RenewLease(ctx context.Context, leaseID string, ttl time.Duration, status api.Status) (api.Lease, error)
	ReleaseLease(ctx context.Context, leaseID string) error
	// CurrentLease returns the connector's current lease (ErrNotFound when none); Lease.Config is empty.
	CurrentLease(ctx context.Context, connectorID string) (api.Lease, error)
	// CurrentAgent returns the connector's current lease with its agent's host, pid and times, for status
	// (ErrNotFound when none). The lease may have expired: compare ExpiresAt with the time.
	CurrentAgent(ctx context.Context, connectorID string) (LeaseInfo, error)
	// LeaseHolder returns the agent and connector of a current lease (ErrLeaseLost when it is not one).
	LeaseHolder(ctx context.Context, leaseID string) (agentID, connectorID string, err error)
	// Heartbeat is an agent's heartbeat, atomic: RenewLease for the lease's holder only (ErrNotHolder for
	// another agent, ErrLeaseLost when it is not current), with what the answer needs: the connector's
	// activation and ReconcileProgress(status.ReconcileRequestID). With renewEvery above 0 the lease is
	// renewed only when renewEvery passed since it last was (the agent then takes its deadline from
	// Beat.ExpiresIn, never from ttl). The status is kept by the store and written within
	// StatusFlushInterval (LastStatus through the same store shows it at once).
	Heartbeat(ctx context.Context, leaseID, agentID string, ttl, renewEvery time.Duration, status api.Status) (Beat, error)
}

// Beat is what a heartbeat returns: the lease and what its answer tells the agent.
type Beat struct {
	Lease api.Lease
	// ExpiresIn is the time left before the lease expires, by the store's clock when it answered.
	ExpiresIn time.Duration
	// Activation holds the connector's Active and DesiredRevision (the rest is not read).
	Activation api.Activation
	Reconcile  *api.ReconcileRequest // the pending reconciliation request, nil when none
}

// Agents are agent identities and their enrollment. Credentials are "<id>.<secret>"; only hashes are stored.
type Agents interface {
	// CreateEnrollment creates a single-use enrollment token (the answer's Token, shown once).
	CreateEnrollment(ctx context.Context, req api.EnrollmentRequest, actor string) (api.Enrollment, error)
	// Enroll uses an enrollment token, once and within its lifetime, to create an agent identity
	// (ErrUnauthenticated otherwise).
	Enroll(ctx context.Context, token string, req api.EnrollRequest) (api.AgentCredential, error)
	// CreateLocalAgent creates the identity of one local agent process (crmsync serve --local-agents).
	CreateLocalAgent(ctx context.Context, connectorID, name, host string) (api.AgentCredential, error)
	// AuthenticateAgent returns the identity of a credential (ErrUnauthenticated when it is not one).
	AuthenticateAgent(ctx context.Context, credential string) (api.AgentIdentity, error)
	// RotateAgentCredential issues a new credential; the current one works until the new one is used.
	RotateAgentCredential(ctx context.Context, agentID string) (api.AgentCredential, error)
	// RevokeAgent deletes an identity and its leases.
	RevokeAgent(ctx context.Context, agentID, actor string) error
	ListAgents(ctx context.Context) ([]api.AgentIdentity, error)
}

// Checkpoints are each table's sync position and the work it owes (durable intents), written by the agent
// (fenced by the lease) and by the control plane (a restore's re-sync).
type Checkpoints interface {
	LoadCheckpoint(ctx context.Context, leaseID, table string) (*api.Checkpoint, error) // nil, nil when none
	SaveCheckpoint(ctx context.Context, leaseID string, cp api.Checkpoint) error
	ListCheckpoints(ctx context.Context, connectorID string) ([]api.Checkpoint, error)
}

// Reconciliations are on-demand reconciliation requests.
type Reconciliations interface {
	// RequestReconcile records an on-demand reconciliation; ReconcileProgress records the latest request an
	// agent completed and returns the latest one still to do (nil when none).
	RequestReconcile(ctx context.Context, connectorID, actor string) (api.ReconcileRequest, error)
	ReconcileProgress(ctx context.Context, connectorID string, completed int64) (*api.ReconcileRequest, error)
}

// Statuses are the agents' reports (RenewLease stores them).
type Statuses interface {
	// LastStatus returns the last status an agent reported, with when. Its counters (records, calls,
	// out-of-band edits, the latency histogram) add up every agent the connector has had, so they only grow
	// across revisions and restarts.
	LastStatus(ctx context.Context, connectorID string) (*api.Status, time.Time, error)
	// StatusHistory returns the reports kept since then (one per HistoryInterval at most, for
	// HistoryRetention), oldest first, counters as in LastStatus.
	StatusHistory(ctx context.Context, connectorID string, since time.Time) ([]api.HistoryPoint, error)
}

// DeadLetters are the records Dataverse refused: the agent's (fenced by the lease) and the API's.
type DeadLetters interface {
	AddDeadLetters(ctx context.Context, leaseID string, dls []api.DeadLetter) error
	RetryableDeadLetters(ctx context.Context, leaseID string, f DeadLetterFilter) ([]api.DeadLetter, error)
	ResolveDeadLetter(ctx context.Context, leaseID, table, recordID string, before time.Time) error
	ListDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter) ([]api.DeadLetter, int64, error)
	// MarkDeadLettersForRetry sets the code of the selected dead letters to retry_requested (the agent
	// retries them); DiscardDeadLetters deletes them. Both return how many were affected.
	MarkDeadLettersForRetry(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error)
	DiscardDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error)
	// DeadLetterCounts counts the connector's dead letters by table (for the metrics).
	DeadLetterCounts(ctx context.Context, connectorID string) (map[string]int64, error)
}

// Backups are backups of a connector's Dataverse tables. A connector has at most one unfinished backup
// (ErrConflict). While a blocking backup is unfinished, AcquireLease refuses the connector (ErrConflict) and
// its activation's Backup says why. Backups outlive their connector.
type Backups interface {
	CreateBackup(ctx context.Context, b api.Backup, actor string) (api.Backup, error)
	UpdateBackup(ctx context.Context, b api.Backup) error
	GetBackup(ctx context.Context, id string) (api.Backup, error)
	ListBackups(ctx context.Context, connectorID string) ([]api.Backup, error)
	UnfinishedBackups(ctx context.Context) ([]api.Backup, error)
	// SetBackupOption records whether the connector's first activation takes a backup.
	SetBackupOption(ctx context.Context, connectorID string, on bool) error
}

// Restores are restores of a backup into a connector's tables; a connector has at most one running
// (ErrConflict).
type Restores interface {
	CreateRestore(ctx context.Context, r api.Restore, actor string) (api.Restore, error)
	UpdateRestore(ctx context.Context, r api.Restore) error
	GetRestore(ctx context.Context, id string) (api.Restore, error)
	RunningRestores(ctx context.Context) ([]api.Restore, error)
}

// AuditLog is the record of every change and who made it; it outlives what it describes.
type AuditLog interface {
	// Audit returns a connector's entries (every connector's when connectorID is empty), newest first, at
	// most limit (100 when 0).
	Audit(ctx context.Context, connectorID string, limit int) ([]api.AuditEntry, error)
}

// Store is the control plane's state: every aggregate.
type Store interface {
	Connectors
	Mappings
	Activations
	Leases
	Agents
	Checkpoints
	Reconciliations
	Statuses
	DeadLetters
	Backups
	Restores
	AuditLog
	Pool
	Claims
	Close() error
}

// Claims are named, expiring rights to do once-only work (a backup, a restore), held by one control-plane
// replica at a time: a replica that dies holding one loses it when it expires, and another takes the work
// over (docs/scaling.md).
type Claims interface {
	// Claim takes the named claim for holder until ttl from now when it is free or expired, or renews it
	// when holder has it already. It returns the claim's token, which grows at every change of holder, and
	// false (with no error) when another holder has it.
	Claim(ctx context.Context, name, holder string, ttl time.Duration) (token int64, ok bool, err error)
	// ReleaseClaim gives a claim up (nothing when holder does not have it).
	ReleaseClaim(ctx context.Context, name, holder string) error
}
