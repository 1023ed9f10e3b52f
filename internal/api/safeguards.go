package api

import "time"

// Safeguards: backups of the destination tables before the first sync, rollback from a backup,
// detection of rows edited in Dataverse behind the sync's back, and reconciliation of both sides.

// Backup states.
const (
	BackupPending   = "pending"   // recorded, not started yet
	BackupRunning   = "running"   // exporting
	BackupRetrying  = "retrying"  // the last attempt failed (Error says why); it resumes after a delay
	BackupComplete  = "complete"  // every table exported; the manifest is final
	BackupCancelled = "cancelled" // the connector was deactivated before the first activation's backup ended
)

// Backup triggers.
const (
	BackupTriggerActivation = "first_activation"
	BackupTriggerOnDemand   = "on_demand"
)

// Backup is a copy of a connector's destination tables, taken before the first sync or on demand: per
// table, every column the connector writes, the primary key, modifiedon and the owner, in gzip-compressed
// NDJSON chunks with a manifest (manifest.json) under the control plane's data directory.
type Backup struct {
	ID            string `json:"id"`
	ConnectorID   string `json:"connector_id"`
	ConnectorName string `json:"connector_name"`
	// Revision is the connector revision whose mappings chose the tables and columns.
	Revision int64  `json:"revision"`
	Trigger  string `json:"trigger"`
	State    string `json:"state"`
	Error    string `json:"error,omitempty"`
	// Blocking is true while the backup holds back the agent of a first activation.
	Blocking bool `json:"blocking"`
	// Rows and Bytes count what is exported so far (all of it once complete); Bytes are compressed.
	Rows   int64         `json:"rows"`
	Bytes  int64         `json:"bytes"`
	Tables []BackupTable `json:"tables"`
	// EnvironmentURL is the Dataverse environment the backup was taken of: it can be restored into any
	// connector of that environment (its own, or another once it was deleted).
	EnvironmentURL string `json:"environment_url,omitempty"`
	// ConnectorDeleted says the connector the backup was taken of no longer exists; the backup stays, and
	// is restored into another connector of the same environment.
	ConnectorDeleted bool `json:"connector_deleted,omitempty"`
	// Path is the backup's directory on the control plane's host.
	Path        string     `json:"path"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// BackupTable is one destination table of a backup.
type BackupTable struct {
	Table       string `json:"table"`
	SourceTable string `json:"source_table"`
	// Columns are the Web API properties exported (lookups as _x_value).
	Columns []string `json:"columns"`
	Rows    int64    `json:"rows"`
	Bytes   int64    `json:"bytes"`
	Chunks  int      `json:"chunks"`
	// Estimated is the table's row count when the export started (0 when unknown), for progress.
	Estimated int64 `json:"estimated,omitempty"`
	Complete  bool  `json:"complete"`
}

// BackupList is GET /v1/backups.
type BackupList struct {
	Backups []Backup `json:"backups"`
}

// RestoreRequest is POST /v1/backups/{id}/restore.
type RestoreRequest struct {
	// DeleteCreated also deletes rows the sync created since the backup (rows the backup does not hold whose
	// key is the GUID of a Salesforce Id of the mapped object and that the connector's application user
	// created). Rows nobody synced are never touched.
	DeleteCreated bool `json:"delete_created,omitempty"`
	// ConnectorID is the connector whose Dataverse environment is restored and whose credentials the restore
	// uses: the backup's own by default; another connector of the same environment when that one was deleted
	// (or to restore with another's credentials).
	ConnectorID string `json:"connector_id,omitempty"`
}

// Restore states.
const (
	RestoreRunning  = "running"
	RestoreComplete = "complete"
	RestoreFailed   = "failed"
)

// Restore is a rollback of Dataverse to a backup. A restore of a backup that was interrupted (its process
// killed) resumes from its last finished chunk when asked again; a finished one can be run again and
// changes nothing more.
type Restore struct {
	ID            string         `json:"id"`
	BackupID      string         `json:"backup_id"`
	ConnectorID   string         `json:"connector_id"`
	DeleteCreated bool           `json:"delete_created"`
	State         string         `json:"state"`
	Error         string         `json:"error,omitempty"`
	Tables        []RestoreTable `json:"tables"`
	// Totals over the tables.
	Restored  int64 `json:"restored"`
	Unchanged int64 `json:"unchanged"`
	Deleted   int64 `json:"deleted"`
	Kept      int64 `json:"kept"`
	Failed    int64 `json:"failed"`
	// Resumed says the run continued an interrupted one (its counts include the earlier run's).
	Resumed     bool       `json:"resumed"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// RestoreTable is what a restore did to one table.
type RestoreTable struct {
	Table string `json:"table"`
	// Rows is the number of rows in the backup; Done how many of them the restore has settled.
	Rows int64 `json:"rows"`
	Done int64 `json:"done"`
	// Restored rows were written back (changed or deleted since the backup); Unchanged ones already held
	// the backed-up values.
	Restored  int64 `json:"restored"`
	Unchanged int64 `json:"unchanged"`
	// Deleted rows were created by the sync since the backup (with delete_created); Kept rows are not in
	// the backup but were left alone: without delete_created, or not provably created by the sync.
	Deleted int64 `json:"deleted"`
	Kept    int64 `json:"kept"`
	// Failed rows were refused by Dataverse; Examples say why.
	Failed   int64    `json:"failed"`
	Examples []string `json:"examples,omitempty"`
	Complete bool     `json:"complete"`
}

// ReconcileRequest is the answer of POST /v1/connectors/{id}/reconcile: the request the agent takes up
// with its next heartbeat.
type ReconcileRequest struct {
	ConnectorID string    `json:"connector_id"`
	RequestID   int64     `json:"request_id"`
	RequestedAt time.Time `json:"requested_at"`
}

// OutOfBandStatus reports synced rows changed in Dataverse by someone other than the agent since it last
// wrote them.
type OutOfBandStatus struct {
	// Detected counts such rows found since the agent started (a row edited twice counts twice); Repaired
	// those rewritten from Salesforce.
	Detected int64 `json:"detected" crmsync:"required"`
	Repaired int64 `json:"repaired" crmsync:"required"`
	// Repair says the table mapping asks for them to be rewritten (repair_out_of_band_edits).
	Repair bool `json:"repair" crmsync:"required"`
	// CheckedAt is when the detector last ran; Since the Dataverse modifiedon it has looked at up to.
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Since     time.Time `json:"since,omitzero"`
	// Examples are the most recent ones, newest first (at most 10).
	Examples []OutOfBandEdit `json:"examples,omitempty"`
}

// OutOfBandEdit is one synced row changed in Dataverse by someone else.
type OutOfBandEdit struct {
	RecordID string `json:"record_id" crmsync:"required"` // Salesforce Id
	Key      string `json:"key" crmsync:"required"`       // Dataverse primary key
	// Columns are the mapped columns whose Dataverse value differs from what Salesforce holds.
	Columns        []string  `json:"columns" crmsync:"required"`
	ModifiedBy     string    `json:"modified_by" crmsync:"required"` // systemuser ID
	ModifiedByName string    `json:"modified_by_name,omitempty"`
	ModifiedAt     time.Time `json:"modified_at" crmsync:"required"`
	Repaired       bool      `json:"repaired" crmsync:"required"`
}

// Reconciliation triggers.
const (
	ReconcileScheduled = "schedule"
	ReconcileRequested = "request"
)

// ReconcileResult is one table's reconciliation: row counts and checksums over the mapped columns on both
// sides (values normalised as the mapping writes them), the records that differ, what was healed, and the
// API calls it cost.
type ReconcileResult struct {
	Trigger    string    `json:"trigger" crmsync:"required"`
	RequestID  int64     `json:"request_id,omitempty"`
	StartedAt  time.Time `json:"started_at" crmsync:"required"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Match is true when both sides held the same rows with the same values (before healing).
	Match bool `json:"match" crmsync:"required"`
	// SourceRows are the live Salesforce records the mapping converts; DestinationRows the Dataverse rows.
	SourceRows          int64  `json:"source_rows" crmsync:"required"`
	DestinationRows     int64  `json:"destination_rows" crmsync:"required"`
	SourceChecksum      string `json:"source_checksum" crmsync:"required"`
	DestinationChecksum string `json:"destination_checksum" crmsync:"required"`
	// Ranges is the number of key ranges hashed on each side; DifferingRanges those whose hashes differed
	// (only they were drilled into).
	Ranges          int `json:"ranges" crmsync:"required"`
	DifferingRanges int `json:"differing_ranges" crmsync:"required"`
	// Missing: records with no row; Different: rows with another value in a mapped column; Extra: synced
	// rows of no live record; Kept: rows of no live record left alone (not created by the sync, or kept by
	// the delete behaviour).
	Missing   int64 `json:"missing" crmsync:"required"`
	Different int64 `json:"different" crmsync:"required"`
	Extra     int64 `json:"extra" crmsync:"required"`
	Kept      int64 `json:"kept" crmsync:"required"`
	// Healed rows were re-fetched from Salesforce and written (or deleted, for extra ones) and Dataverse
	// accepted the write. Unhealed are differences whose rewrite Dataverse refused: those records are
	// dead-lettered with the reason, and stay different.
	Healed   int64                 `json:"healed" crmsync:"required"`
	Unhealed int64                 `json:"unhealed,omitempty"`
	Examples []ReconcileDifference `json:"examples,omitempty"`
	// SalesforceCalls and DataverseCalls are the API calls the reconciliation used (healing included).
	SalesforceCalls int64  `json:"salesforce_calls" crmsync:"required"`
	DataverseCalls  int64  `json:"dataverse_requests" crmsync:"required"`
	Error           string `json:"error,omitempty"`
}

// Kinds of ReconcileDifference.
const (
	DiffMissing   = "missing"
	DiffDifferent = "different"
	DiffExtra     = "extra"
)

// ReconcileDifference is one record a reconciliation found different.
type ReconcileDifference struct {
	Kind     string   `json:"kind" crmsync:"required"`
	RecordID string   `json:"record_id,omitempty"` // Salesforce Id (unknown for extra rows)
	Key      string   `json:"key" crmsync:"required"`
	Columns  []string `json:"columns,omitempty"`
}
