// Package store is the control plane's persistent state behind one interface: connectors with their
// encrypted inline secrets, table mappings, config revisions, activation, agent leases, checkpoints, dead
// letters, the last reported status and the audit log. The SQLite implementation (pure Go) is the default; a
// PostgreSQL one can satisfy the same interface for several control-plane replicas.
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

// Store is the control plane's state.
type Store interface {
	// Connectors. actor names who made the change in the audit log ("api", "agent:<id>").
	CreateConnector(ctx context.Context, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error)
	GetConnector(ctx context.Context, id string) (api.Connector, error)
	FindConnector(ctx context.Context, name string) (api.Connector, error)
	ListConnectors(ctx context.Context) ([]api.Connector, error)
	UpdateConnector(ctx context.Context, id string, spec api.ConnectorSpec, secrets Secrets, actor string) (api.Connector, error)
	// DeleteConnector removes a connector with its mappings, activation, leases, checkpoints and dead letters.
	DeleteConnector(ctx context.Context, id string, actor string) error
	ConnectorSecrets(ctx context.Context, id string) (Secrets, error)

	// Table mappings. A connector maps each source table at most once (ErrConflict).
	CreateMapping(ctx context.Context, connectorID string, spec mapping.TableConfig, actor string) (api.TableMapping, error)
	GetMapping(ctx context.Context, id string) (api.TableMapping, error)
	ListMappings(ctx context.Context, connectorID string) ([]api.TableMapping, error)
	UpdateMapping(ctx context.Context, id string, spec mapping.TableConfig, actor string) (api.TableMapping, error)
	DeleteMapping(ctx context.Context, id string, actor string) error

	// RevisionConfig returns the agent configuration recorded at a revision (secrets not included).
	RevisionConfig(ctx context.Context, connectorID string, revision int64) (api.Config, error)

	// Activation.
	GetActivation(ctx context.Context, connectorID string) (api.Activation, error)
	SetActivation(ctx context.Context, connectorID string, active bool, preflight []api.PreflightCheck, actor string) (api.Activation, error)
	// ListActive returns the active connectors' activations (the supervisor's work list).
	ListActive(ctx context.Context) ([]api.Activation, error)

	// Leases. AcquireLease grants the connector's lease to an agent when no other lease is live (renewed
	// within its TTL), replacing an expired one; the lease carries the connector's latest revision.
	AcquireLease(ctx context.Context, req api.LeaseRequest, ttl time.Duration) (api.Lease, error)
	// RenewLease extends a current lease and stores the agent's status.
	RenewLease(ctx context.Context, leaseID string, ttl time.Duration, status api.Status) (api.Lease, error)
	ReleaseLease(ctx context.Context, leaseID string) error
	// CurrentLease returns the connector's current lease (ErrNotFound when none); Lease.Config is empty.
	CurrentLease(ctx context.Context, connectorID string) (api.Lease, error)
	// CurrentAgent returns the connector's current lease with its agent's host, pid and times, for status
	// (ErrNotFound when none). The lease may have expired: compare ExpiresAt with the time.
	CurrentAgent(ctx context.Context, connectorID string) (LeaseInfo, error)

	// Checkpoints, fenced by the lease.
	LoadCheckpoint(ctx context.Context, leaseID, table string) (*api.Checkpoint, error) // nil, nil when none
	SaveCheckpoint(ctx context.Context, leaseID string, cp api.Checkpoint) error
	ListCheckpoints(ctx context.Context, connectorID string) ([]api.Checkpoint, error)

	// Dead letters: the agent's (fenced by the lease) and the API's.
	AddDeadLetters(ctx context.Context, leaseID string, dls []api.DeadLetter) error
	RetryableDeadLetters(ctx context.Context, leaseID string, f DeadLetterFilter) ([]api.DeadLetter, error)
	ResolveDeadLetter(ctx context.Context, leaseID, table, recordID string, before time.Time) error
	ListDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter) ([]api.DeadLetter, int64, error)
	// MarkDeadLettersForRetry sets the code of the selected dead letters to retry_requested (the agent
	// retries them); DiscardDeadLetters deletes them. Both return how many were affected.
	MarkDeadLettersForRetry(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error)
	// DeadLetterCounts counts the connector's dead letters by table (for the metrics).
	DeadLetterCounts(ctx context.Context, connectorID string) (map[string]int64, error)
	DiscardDeadLetters(ctx context.Context, connectorID string, f DeadLetterFilter, actor string) (int64, error)

	// Status: the last status an agent reported, with when. Its counters (records, calls, out-of-band edits,
	// the latency histogram) add up every agent the connector has had, so they only grow across revisions
	// and restarts.
	LastStatus(ctx context.Context, connectorID string) (*api.Status, time.Time, error)
	// StatusHistory returns the reports kept since then (one per HistoryInterval at most, for
	// HistoryRetention), oldest first, counters as in LastStatus.
	StatusHistory(ctx context.Context, connectorID string, since time.Time) ([]api.HistoryPoint, error)

	// Audit log, newest first.
	Audit(ctx context.Context, connectorID string, limit int) ([]api.AuditEntry, error)

	// Safeguards (issue 9). A connector has at most one unfinished backup and one running restore
	// (ErrConflict). While a blocking backup is unfinished, AcquireLease refuses the connector (ErrConflict)
	// and its activation's Backup says why.
	CreateBackup(ctx context.Context, b api.Backup, actor string) (api.Backup, error)
	UpdateBackup(ctx context.Context, b api.Backup) error
	GetBackup(ctx context.Context, id string) (api.Backup, error)
	ListBackups(ctx context.Context, connectorID string) ([]api.Backup, error)
	UnfinishedBackups(ctx context.Context) ([]api.Backup, error)
	SetBackupOption(ctx context.Context, connectorID string, on bool) error
	CreateRestore(ctx context.Context, r api.Restore, actor string) (api.Restore, error)
	UpdateRestore(ctx context.Context, r api.Restore) error
	GetRestore(ctx context.Context, id string) (api.Restore, error)
	RunningRestores(ctx context.Context) ([]api.Restore, error)
	// RequestReconcile records an on-demand reconciliation; ReconcileProgress records the latest request an
	// agent completed and returns the latest one still to do (nil when none).
	RequestReconcile(ctx context.Context, connectorID, actor string) (api.ReconcileRequest, error)
	ReconcileProgress(ctx context.Context, connectorID string, completed int64) (*api.ReconcileRequest, error)

	// Agent identities (agents.go). Credentials are "<id>.<secret>"; only hashes are stored.
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
	// LeaseHolder returns the agent and connector of a current lease (ErrLeaseLost when it is not one).
	LeaseHolder(ctx context.Context, leaseID string) (agentID, connectorID string, err error)

	Close() error
}
