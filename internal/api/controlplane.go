package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// SalesforceSettings says how a connector reaches its org. Secrets are write-only: ClientSecret and
// PrivateKey are accepted on create and update, stored encrypted, and never returned (SecretsSet says
// which are stored). *_env and *_file references are resolved by the agent on its own host and are
// returned as declared.
type SalesforceSettings struct {
	LoginURL         string `json:"login_url" crmsync:"required"`
	InstanceURL      string `json:"instance_url,omitempty"`
	APIVersion       string `json:"api_version,omitempty"`
	PubSubAddr       string `json:"pubsub_addr,omitempty"`
	PubSubPlaintext  bool   `json:"pubsub_plaintext,omitempty"`
	Auth             string `json:"auth" crmsync:"required"` // jwt_bearer or client_credentials
	ClientID         string `json:"client_id" crmsync:"required"`
	Username         string `json:"username,omitempty"`
	ClientSecret     string `json:"client_secret,omitempty"` // write-only
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	PrivateKey       string `json:"private_key,omitempty"` // write-only
	PrivateKeyEnv    string `json:"private_key_env,omitempty"`
	PrivateKeyFile   string `json:"private_key_file,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
}

// DataverseSettings says how a connector reaches its environment. ClientSecret is write-only.
type DataverseSettings struct {
	EnvironmentURL   string `json:"environment_url" crmsync:"required"`
	AuthorityURL     string `json:"authority_url,omitempty"`
	TenantID         string `json:"tenant_id" crmsync:"required"`
	ClientID         string `json:"client_id" crmsync:"required"`
	ClientSecret     string `json:"client_secret,omitempty"` // write-only
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
	// AdditionalUsers are more application users the agent writes with besides ClientID: Dataverse budgets
	// each user on its own, so each adds about one user's throughput (docs/scaling.md).
	AdditionalUsers []DataverseApplicationUser `json:"additional_application_users,omitempty"`
}

// DataverseApplicationUser is one more Dataverse application user of a connector: an app registration of
// the same tenant, added to the environment as an application user and a member of the owning team. Its
// secret is given like the connector's own (ClientSecret write-only, or a reference resolved on the agent's
// host).
type DataverseApplicationUser struct {
	ClientID         string `json:"client_id" crmsync:"required"`
	ClientSecret     string `json:"client_secret,omitempty"` // write-only
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
}

// ApplicationUsers is how many Dataverse application users the connector writes with.
func (d DataverseSettings) ApplicationUsers() int { return 1 + len(d.AdditionalUsers) }

// SecretName is the name of the user's stored inline secret in Connector.SecretsSet:
// "dataverse.additional_application_users.<client id>.client_secret", keyed by client id (in lower case) so
// that reordering the list keeps every secret with its user.
func (u DataverseApplicationUser) SecretName() string {
	return SecretDataverseAdditionalUserPrefix + strings.ToLower(u.ClientID) + ".client_secret"
}

// ConnectorSpec is what a caller declares: the body of create and update (an update replaces every field;
// a write-only secret left empty on update keeps the stored one).
type ConnectorSpec struct {
	Name       string             `json:"name" crmsync:"required"`
	TeamID     string             `json:"team_id" crmsync:"required"`
	Salesforce SalesforceSettings `json:"salesforce" crmsync:"required"`
	Dataverse  DataverseSettings  `json:"dataverse" crmsync:"required"`
	// Tuning overrides the agent's batching defaults.
	Tuning *Tuning `json:"tuning,omitempty"`
}

// Connector is a stored connector.
type Connector struct {
	ID string `json:"id"`
	ConnectorSpec
	// Revision is the connector's latest config revision: it moves on every change to the connector or to
	// one of its table mappings.
	Revision int64 `json:"revision"`
	// SecretsSet lists the write-only secrets stored, e.g. "dataverse.client_secret".
	SecretsSet []string  `json:"secrets_set"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ConnectorList is the answer of GET /v1/connectors.
type ConnectorList struct {
	Connectors []Connector `json:"connectors"`
}

// TableMapping is a stored table mapping.
type TableMapping struct {
	ID          string `json:"id"`
	ConnectorID string `json:"connector_id"`
	// TableConfig is the mapping as declared (the OpenAPI document's MappingSpec).
	mapping.TableConfig
	// DestinationTable is filled in with the effective destination; EffectiveColumns are mapping.Effective's.
	EffectiveColumns []mapping.Column `json:"effective_columns"`
	Revision         int64            `json:"revision"` // the connector revision this version created
	CreatedAt        time.Time        `json:"created_at"`
	UpdatedAt        time.Time        `json:"updated_at"`
}

// MappingList is the answer of GET /v1/connectors/{id}/mappings.
type MappingList struct {
	Mappings []TableMapping `json:"mappings"`
}

// PredefinedMappings is the answer of GET /v1/predefined-mappings/{source_table}.
type PredefinedMappings struct {
	SourceTable      string           `json:"source_table"`
	DestinationTable string           `json:"destination_table"`
	Columns          []mapping.Column `json:"columns"`
}

// ValidateRequest asks to validate a mapping without storing it. With Live, the connector's Salesforce
// describe and Dataverse metadata are read and the live rules apply (ConnectorID required).
type ValidateRequest struct {
	ConnectorID string              `json:"connector_id,omitempty"`
	Mapping     mapping.TableConfig `json:"mapping" crmsync:"required"`
	// OtherTables are the source tables of the connector's other mappings (for lookups); with a
	// connector the stored ones are used when this is empty.
	OtherTables []string `json:"other_tables,omitempty"`
	Live        bool     `json:"live,omitempty"`
}

// ValidateTeamRequest is POST /v1/validate/team: would the connector pass the checks a change of its team
// to TeamID affects?
type ValidateTeamRequest struct {
	ConnectorID string `json:"connector_id" crmsync:"required"`
	TeamID      string `json:"team_id" crmsync:"required"`
}

// ValidateTeamResponse lists the preflight checks of a team change (none when the connector is inactive:
// its activation checks everything).
type ValidateTeamResponse struct {
	Active bool             `json:"active"`
	Checks []PreflightCheck `json:"checks"`
}

// ValidateResponse lists every problem and the effective columns.
type ValidateResponse struct {
	Problems         []mapping.Problem `json:"problems"`
	EffectiveColumns []mapping.Column  `json:"effective_columns"`
	// EstimatedRecords is the number of source records a (re-)sync of the table would copy, when live.
	EstimatedRecords *int64 `json:"estimated_records,omitempty"`
	// EstimatedLoad is what a (re-)sync of those records costs and how long it takes at the service-protection
	// budget of the connector's Dataverse application users, when live.
	EstimatedLoad *LoadEstimate `json:"estimated_load,omitempty"`
	Live          bool          `json:"live"`
}

// Activation states.
const (
	ActivationInactive = "inactive"
	ActivationActive   = "active"
)

// PreflightCheck is one activation check.
type PreflightCheck struct {
	Name    string `json:"name"` // salesforce_credentials, dataverse_credentials, change_topics, team_privileges, mappings, api_budget, data_size
	OK      bool   `json:"ok"`
	Warning bool   `json:"warning,omitempty"` // passed, with a caveat
	// Message says why the check failed (its errors only), or what it found.
	Message string `json:"message"`
	// Caveats of a failed check are what it found that does not block activation on its own (a mapping's
	// source longer than its destination), kept apart from the errors that do.
	Caveats []string `json:"caveats,omitempty"`
}

// ActivationRequest activates or deactivates a connector.
type ActivationRequest struct {
	Active bool `json:"active" crmsync:"required"`
	// BackupBeforeFirstSync asks, on the connector's first activation, for a backup of the destination
	// tables before the agent is deployed (nil: true). Later activations take no backup.
	BackupBeforeFirstSync *bool `json:"backup_before_first_sync,omitempty"`
}

// Activation is a connector's activation.
type Activation struct {
	ConnectorID string `json:"connector_id"`
	Active      bool   `json:"active"`
	// DesiredRevision is the revision the control plane deploys; DeployedRevision the revision the running
	// agent reported (0 when none runs).
	DesiredRevision  int64            `json:"desired_revision"`
	DeployedRevision int64            `json:"deployed_revision"`
	Preflight        []PreflightCheck `json:"preflight,omitempty"`
	ActivatedAt      *time.Time       `json:"activated_at,omitempty"`
	DeactivatedAt    *time.Time       `json:"deactivated_at,omitempty"`
	// BackupBeforeFirstSync is the option the connector was first activated with (true when never set).
	BackupBeforeFirstSync bool `json:"backup_before_first_sync"`
	// Backup is the backup taken on the first activation, when one was asked for; while it is not
	// complete the agent is not deployed.
	Backup *Backup `json:"backup,omitempty"`
}

// Connector states in status.
const (
	StateInactive    = "inactive"
	StateDeploying   = "deploying"
	StateInitialLoad = "initial_load"
	StateStreaming   = "streaming"
	StateResyncing   = "resyncing"
	StateFailed      = "failed"
	// StateDegraded: some tables failed on an error that needs a person (a missing privilege, refused
	// credentials, an unknown table or column) while the others sync; the reason names each.
	StateDegraded = "degraded"
	// StateBackingUp: active, and the backup of the first activation runs; the agent is deployed after it.
	StateBackingUp = "backing_up"
)

// AgentInfo describes the agent holding a connector's lease.
type AgentInfo struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid,omitempty"`
	Revision    int64     `json:"revision"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	StartedAt   time.Time `json:"started_at"`
}

// ConnectorStatus is GET /v1/connectors/{id}/status: the control plane's view of a connector and what its
// agent reports.
type ConnectorStatus struct {
	ConnectorID      string `json:"connector_id"`
	Name             string `json:"name"`
	Active           bool   `json:"active"`
	State            string `json:"state"`
	Reason           string `json:"reason,omitempty"`
	LatestRevision   int64  `json:"latest_revision"`
	DeployedRevision int64  `json:"deployed_revision"`
	// Tables are the agent's per-table reports, with ReplayAgeSeconds and RetentionSeconds for the 72 h
	// window.
	Tables          []ConnectorTableStatus `json:"tables"`
	SalesforceCalls int64                  `json:"salesforce_calls"`
	DataverseCalls  int64                  `json:"dataverse_requests"`
	Throttled       int64                  `json:"dataverse_throttled"`
	DeadLetters     int64                  `json:"dead_letters"` // stored now
	LagSeconds      float64                `json:"lag_seconds"`  // the largest table lag
	Agent           *AgentInfo             `json:"agent,omitempty"`
	LastErrors      []ErrorEntry           `json:"last_errors,omitempty"`
	UpdatedAt       time.Time              `json:"updated_at"`
	Calls           map[string]int64       `json:"calls,omitempty"`
	// ApplicationUsers is each Dataverse application user's share of the current agent's requests and what is
	// left of its budget (Status.ApplicationUsers of the last report).
	ApplicationUsers []ApplicationUserStatus `json:"application_users,omitempty"`
	// Backup is the connector's newest backup that is not complete (running, waiting to retry, or failed),
	// with its progress; nil when there is none.
	Backup *Backup `json:"backup,omitempty"`
	// ReconcileRequest is the on-demand reconciliation asked for and not yet taken up by the agent.
	ReconcileRequest *ReconcileRequest `json:"reconcile_request,omitempty"`
	// Activation is the connector's activation with its preflight checks, so one request tells a caller
	// both what was declared and what runs (the provider refreshes crmsync_activation with it alone).
	Activation *Activation `json:"activation,omitempty"`
}

// ConnectorTableStatus is one table's status in ConnectorStatus.
type ConnectorTableStatus struct {
	TableStatus
	// ReplayAgeSeconds is how old the stored replay position is; past RetentionSeconds (72 h) the stream
	// cannot resume and the table is re-synced.
	ReplayAgeSeconds float64 `json:"replay_age_seconds"`
	RetentionSeconds float64 `json:"retention_seconds"`
}

// ErrorEntry is a recent error.
type ErrorEntry struct {
	At      time.Time `json:"at"`
	Table   string    `json:"table,omitempty"`
	Message string    `json:"message"`
}

// DeadLetterList is GET /v1/connectors/{id}/dead-letters.
type DeadLetterList struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	Total       int64        `json:"total"`
}

// DeadLetterAction retries or discards dead letters: every one of Table (all tables when empty), or only
// RecordIDs.
type DeadLetterAction struct {
	Table     string   `json:"table,omitempty"`
	RecordIDs []string `json:"record_ids,omitempty"`
}

// DeadLetterActionResult says how many were affected.
type DeadLetterActionResult struct {
	Affected int64 `json:"affected"`
}

// AuditEntry is one change recorded in the audit log.
type AuditEntry struct {
	ID          int64           `json:"id"`
	At          time.Time       `json:"at"`
	Actor       string          `json:"actor"` // "api" or "agent:<id>"
	Action      string          `json:"action"`
	ConnectorID string          `json:"connector_id,omitempty"`
	Revision    int64           `json:"revision,omitempty"`
	Detail      json.RawMessage `json:"detail,omitempty"` // the change, secrets redacted
}

// AuditList is GET /v1/audit.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}

// Health is GET /healthz.
type Health struct {
	Status  string `json:"status"` // ok
	Version string `json:"version"`
}

// Error is the body of every error answer: {"error": {...}}.
type Error struct {
	// Code is stable: unauthenticated, invalid_json, invalid_argument, not_found, conflict,
	// preflight_failed, too_large, lease_lost, unavailable, internal.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending input, in the request's terms (e.g. "salesforce.login_url").
	Field string `json:"field,omitempty"`
	// Details carry structured detail: preflight checks, mapping problems.
	Details json.RawMessage `json:"details,omitempty"`
}

// ErrorBody wraps Error.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Agent protocol: agents reach the control plane only through these endpoints.

// LeaseRequest asks for a connector's lease (POST /v1/agent/leases).
type LeaseRequest struct {
	ConnectorID string `json:"connector_id" crmsync:"required"`
	// AgentID is the calling agent's identity, which its credential says already: empty, or that one.
	AgentID string `json:"agent_id,omitempty"`
	Host    string `json:"host" crmsync:"required"`
	PID     int    `json:"pid,omitempty"`
}

// Lease grants an agent a connector at one revision until ExpiresAt; the agent renews it by heartbeat.
// Every agent write names the lease, and a write under a lease that is no longer current is refused
// (410 lease_lost), so a stale agent cannot overwrite its successor's checkpoints.
type Lease struct {
	ID          string    `json:"id"`
	ConnectorID string    `json:"connector_id"`
	AgentID     string    `json:"agent_id"`
	Revision    int64     `json:"revision"`
	ExpiresAt   time.Time `json:"expires_at"`
	TTLSeconds  float64   `json:"ttl_seconds"`
	Config      Config    `json:"config"` // inline secrets decrypted for the agent
	// Policy is what the control plane's operator lets the agent reach and resolve; the agent enforces it.
	Policy *Policy `json:"policy,omitempty"`
}

// Policy is the destination and reference policy of a control plane (package policy), handed to its agents
// with their lease: the hosts they may connect to besides the real services', and the references they may
// resolve on their host.
type Policy struct {
	AllowHosts     []string `json:"allow_hosts,omitempty"`
	RefDirs        []string `json:"ref_dirs,omitempty"`
	RefEnvPrefixes []string `json:"ref_env_prefixes,omitempty"`
	// DenyPaths and DenyEnv are refused whatever the rest allows (the control plane's data directory and
	// token file, its token's variable).
	DenyPaths []string `json:"deny_paths,omitempty"`
	DenyEnv   []string `json:"deny_env,omitempty"`
}

// Heartbeat renews a lease and reports the agent's status (POST /v1/agent/leases/{id}/heartbeat).
type Heartbeat struct {
	Status Status `json:"status" crmsync:"required"`
}

// HeartbeatResponse tells the agent whether to go on: Active false or a DesiredRevision above its own means
// drain, commit and stop (the supervisor starts the new revision).
type HeartbeatResponse struct {
	ExpiresAt time.Time `json:"expires_at"`
	// ExpiresInSeconds is the time left on the lease when the control plane answered, by its clock. An agent
	// that sent the X-Crmsync-Lease-Deadline: answer header counts its deadline from when it sent the
	// heartbeat plus this (never more than the TTL): the lease is then renewed only when due.
	ExpiresInSeconds float64 `json:"expires_in_seconds,omitempty"`
	Active           bool    `json:"active"`
	DesiredRevision  int64   `json:"desired_revision"`
	// ReconcileRequestID is the latest on-demand reconciliation request (POST /v1/connectors/{id}/reconcile):
	// when it is above the Status.ReconcileRequestID the agent reported, the agent reconciles every
	// streaming table and reports the ID as taken up. 0 when none was ever asked for.
	ReconcileRequestID int64 `json:"reconcile_request_id,omitempty"`
}

// CheckpointList is GET /v1/agent/leases/{id}/checkpoints.
type CheckpointList struct {
	Checkpoints []Checkpoint `json:"checkpoints"`
}

// DeadLetterBatch is POST /v1/agent/leases/{id}/dead-letters.
type DeadLetterBatch struct {
	DeadLetters []DeadLetter `json:"dead_letters" crmsync:"required"`
}

// ResolveRequest is POST /v1/agent/leases/{id}/dead-letters/resolve.
type ResolveRequest struct {
	Table    string    `json:"table" crmsync:"required"`
	RecordID string    `json:"record_id" crmsync:"required"`
	Before   time.Time `json:"before" crmsync:"required"`
}
