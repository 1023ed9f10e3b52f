package api

import "time"

// Table phases reported in status and stored in checkpoints.
const (
	PhasePending     = "pending"      // waiting for a table it depends on (lookups) to finish loading
	PhaseInitialLoad = "initial_load" // reading the whole table
	PhaseStreaming   = "streaming"    // applying change events
	PhaseResync      = "resyncing"    // reloading after an expired replay ID, an overflow or a config change
	PhaseFailed      = "failed"       // stopped on an error that needs a person (reason in status)
)

// Checkpoint is one table's durable progress.
type Checkpoint struct {
	Table string `json:"table" crmsync:"required"` // source object, e.g. Contact
	Phase string `json:"phase" crmsync:"required"`
	// ReplayID is the change-stream position to resume after (8 bytes, big-endian); empty when unknown.
	ReplayID []byte `json:"replay_id,omitempty"`
	// RefetchIDs are records whose change arrived while the table was loading; they are re-read when the
	// load ends (the event itself was not kept).
	RefetchIDs []string `json:"refetch_ids,omitempty"`
	// CatchUpSince asks for an incremental re-sync of rows modified since then (server time) before streaming.
	CatchUpSince time.Time `json:"catch_up_since,omitzero"`
	// DeletesSince asks for the deletions made since then (server time) to be applied after a full re-sync,
	// which reloads every live row but cannot see deleted ones.
	DeletesSince time.Time `json:"deletes_since,omitzero"`
	// Load progress of the initial load or re-sync.
	LoadJobID     string    `json:"load_job_id,omitempty"`
	LoadLocator   string    `json:"load_locator,omitempty"`
	LoadDone      int64     `json:"load_done" crmsync:"required"`
	LoadTotal     int64     `json:"load_total" crmsync:"required"`
	LoadStartedAt time.Time `json:"load_started_at,omitzero"` // server time the load's query began
	LoadReason    string    `json:"load_reason,omitempty"`    // why the current load runs
	// MappingHash identifies the mapping the table was loaded with; a different hash means columns were added
	// or changed and the table is re-synced.
	MappingHash string `json:"mapping_hash,omitempty"`
	// MappingColumns are the effective columns ("dest<-source") the table was last loaded with.
	MappingColumns []string `json:"mapping_columns,omitempty"`
	// OutOfBandSince is the Dataverse modifiedon the out-of-band edit detector has looked at up to.
	OutOfBandSince time.Time `json:"out_of_band_since,omitzero"`
	// LastReconcile is the result of the table's last reconciliation (its FinishedAt schedules the next).
	LastReconcile *ReconcileResult `json:"last_reconcile,omitempty"`
	// Recoveries are the table's most recent recoveries (up to 20, each "<time> <what>"), kept across
	// agent restarts so status still names a re-sync after the process that started it is gone.
	Recoveries []string `json:"recoveries,omitempty"`
	// LoadMappingHash is the MappingHash of the mapping the running load (LoadJobID) writes with: a load is
	// resumed only by an agent with that same mapping, never by one whose columns differ (its job's query
	// would lack them, and the pages already written hold the other mapping's values).
	LoadMappingHash string `json:"load_mapping_hash,omitempty"`
	// Intents is what the table still owes (see Intent). They are stored before the work starts and removed
	// only when it is done; a new revision, a restart or a restore adds to them, never drops them.
	Intents []Intent `json:"intents,omitempty"`
	// IntentSeq is the highest Intent.Seq the agent has taken in (intents the control plane adds carry a
	// sequence number, so the store keeps those an agent has not seen yet when the agent saves).
	IntentSeq int64     `json:"intent_seq,omitempty"`
	UpdatedAt time.Time `json:"updated_at" crmsync:"required"`
}

// Kinds of Intent.
const (
	// IntentLoad owes a load of the whole table with the current mapping (the initial load, a re-sync).
	IntentLoad = "load"
	// IntentReconcile owes a reconciliation once the table streams.
	IntentReconcile = "reconcile"
	// IntentCatchUp owes a catch-up on the rows modified since Since (folded into Checkpoint.CatchUpSince).
	IntentCatchUp = "catch_up"
	// IntentDeletes owes the deletions made since Since (folded into Checkpoint.DeletesSince).
	IntentDeletes = "deletes"
)

// Intent is one piece of work a table owes.
type Intent struct {
	Kind   string `json:"kind" crmsync:"required"`
	Reason string `json:"reason" crmsync:"required"`
	// Columns of a load: the destination columns whose values may differ from Salesforce under the current
	// mapping (added or re-pointed columns, including those of a revision that was reverted); empty for a
	// load owed for every column (the initial load, a restore, an expired replay ID).
	Columns []string `json:"columns,omitempty"`
	// Since is the start of a catch-up or of the deletions to apply.
	Since time.Time `json:"since,omitzero"`
	At    time.Time `json:"at" crmsync:"required"`
	// Seq numbers the intents the control plane adds (a restore); 0 for the agent's own.
	Seq int64 `json:"seq,omitempty"`
}

// DeadLetter is a record Dataverse refused (or that could not be mapped).
type DeadLetter struct {
	Table     string    `json:"table" crmsync:"required"`
	RecordID  string    `json:"record_id" crmsync:"required"` // Salesforce Id
	Operation string    `json:"operation" crmsync:"required"` // upsert, update, delete
	Code      string    `json:"code" crmsync:"required"`      // Dataverse error code or a crmsync code (mapping, lookup_missing)
	Reason    string    `json:"reason" crmsync:"required"`
	Payload   string    `json:"payload,omitempty"`           // the row body that was refused (JSON)
	At        time.Time `json:"at" crmsync:"required"`       // this failure
	FirstAt   time.Time `json:"first_at" crmsync:"required"` // the record's first failure (kept across retries)
	Attempts  int       `json:"attempts" crmsync:"required"`
}

// TableStatus is one table's reported state. Received, Written, DeadLettered and Skipped count records since
// the agent started; in the control plane's status they add up every agent the connector has had (every
// revision, every restart), as do the out-of-band counts and the latency histogram.
type TableStatus struct {
	Table       string `json:"table" crmsync:"required"`
	Destination string `json:"destination" crmsync:"required"`
	Phase       string `json:"phase" crmsync:"required"`
	Reason      string `json:"reason,omitempty"` // why a load/resync runs, or why failed
	LoadDone    int64  `json:"load_done" crmsync:"required"`
	LoadTotal   int64  `json:"load_total" crmsync:"required"`
	// LoadRate is the running load's measured rate in records per second over its last LoadRateWindow (since
	// it started, when younger); 0 when no load runs or it has not been measured yet.
	LoadRate float64 `json:"load_rate,omitempty"`
	// LoadETASeconds is the time the load has left at LoadRate; 0 when unknown.
	LoadETASeconds float64 `json:"load_eta_seconds,omitempty"`
	Received       int64   `json:"received" crmsync:"required"`
	Written        int64   `json:"written" crmsync:"required"`
	DeadLettered   int64   `json:"dead_lettered" crmsync:"required"`
	// DeadLetterEvents counts every time a record was put in the dead-letter store (a record retried and
	// refused again counts again). Unlike DeadLettered, which a successful retry takes back so the counters
	// add up, it never goes down: it is what the crmsync_dead_letter_events_total counter serves.
	DeadLetterEvents int64     `json:"dead_letter_events,omitempty"`
	Skipped          int64     `json:"skipped" crmsync:"required"`
	LagSeconds       float64   `json:"lag_seconds" crmsync:"required"` // now − commit time of the last applied event
	LastEventAt      time.Time `json:"last_event_at,omitzero"`         // commit time of the last applied event
	ReplayAt         time.Time `json:"replay_at,omitzero"`             // when the stored replay position was last moved
	// Position is the replay ID written up to, read as a big-endian number (opaque to Salesforce clients,
	// 8 bytes in practice); for progress checks and debugging.
	Position   uint64   `json:"position,omitempty"`
	Recoveries []string `json:"recoveries,omitempty"` // recoveries that ran: gap refetch, overflow resync, ...
	// Latency summarises, over the last changes written, the time from their Salesforce commit to
	// Dataverse's acknowledgement.
	Latency *Latency `json:"latency,omitempty"`
	// LatencyHistogram counts every change written since the agent started (in the control plane's status,
	// since the connector's first activation) by latency, in the buckets of LatencyBuckets.
	LatencyHistogram *Histogram `json:"latency_histogram,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	LastErrorAt      time.Time  `json:"last_error_at,omitzero"`
	// OutOfBand reports synced rows changed in Dataverse by someone other than the agent (nil until the
	// detector first ran for the table).
	OutOfBand *OutOfBandStatus `json:"out_of_band,omitempty"`
	// Reconcile is the last reconciliation of the table (nil when none ran yet).
	Reconcile *ReconcileResult `json:"reconcile,omitempty"`
	// Owed lists what the table still owes (its checkpoint's intents and pending catch-ups), with why.
	Owed []string `json:"owed,omitempty"`
}

// Latency is a summary of recent end-to-end change latencies, in seconds.
type Latency struct {
	Samples int     `json:"samples" crmsync:"required"`
	P50     float64 `json:"p50" crmsync:"required"`
	P95     float64 `json:"p95" crmsync:"required"`
	P99     float64 `json:"p99" crmsync:"required"`
	Max     float64 `json:"max" crmsync:"required"`
}

// Status is the agent's reported state.
type Status struct {
	State           string           `json:"state" crmsync:"required"` // starting, initial_load, streaming, resyncing, failed, stopped
	Reason          string           `json:"reason,omitempty"`
	Revision        int64            `json:"revision" crmsync:"required"`
	StartedAt       time.Time        `json:"started_at" crmsync:"required"`
	Tables          []TableStatus    `json:"tables"`
	SalesforceCalls int64            `json:"salesforce_calls"`
	DataverseCalls  int64            `json:"dataverse_requests"`
	Throttled       int64            `json:"dataverse_throttled"`
	Calls           map[string]int64 `json:"calls,omitempty"`
	// ReconcileRequestID is the latest on-demand reconciliation request the agent has taken up (see
	// HeartbeatResponse.ReconcileRequestID).
	ReconcileRequestID int64 `json:"reconcile_request_id,omitempty"`
	// ApplicationUsers is each Dataverse application user the agent writes with, the connector's own first
	// (counted since the agent started).
	ApplicationUsers []ApplicationUserStatus `json:"application_users,omitempty"`
}

// ApplicationUserStatus is one Dataverse application user's share of an agent's requests and what is left of
// its service-protection budget.
type ApplicationUserStatus struct {
	ClientID    string `json:"client_id" crmsync:"required"`
	Requests    int64  `json:"requests,omitempty"`
	Throttled   int64  `json:"throttled,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
	InFlight    int    `json:"in_flight,omitempty"`
	// RemainingExecutionSeconds and RemainingRequests are what the service last said the user has left in its
	// window; nil before its first answer.
	RemainingExecutionSeconds *float64 `json:"remaining_execution_seconds,omitempty"`
	RemainingRequests         *int     `json:"remaining_requests,omitempty"`
	ThrottledForSeconds       float64  `json:"throttled_for_seconds,omitempty"`
}
