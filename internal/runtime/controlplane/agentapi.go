package controlplane

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// The agent protocol: an agent leases a connector, renews the lease by heartbeat (reporting its status), and
// writes checkpoints and dead letters under the lease. A write under a lease that is no longer the
// connector's current one is refused with 410 lease_lost, which fences a stale agent off its successor's
// state.

func (s *Server) acquireLease(w http.ResponseWriter, r *http.Request) error {
	var req api.LeaseRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !store.ValidID(store.PrefixConnector, req.ConnectorID) {
		return invalid("connector_id", "%q is not a connector ID", truncate(req.ConnectorID, 80))
	}
	// The lease is the calling identity's: a lease answer carries the connector's secrets to it alone.
	me := principalOf(r).agent
	if req.AgentID != "" && req.AgentID != me.ID {
		return invalid("agent_id", "agent_id %q is not the calling agent's identity (%s); leave it out", truncate(req.AgentID, 80), me.ID)
	}
	if me.ConnectorID != "" && me.ConnectorID != req.ConnectorID {
		return errorf(http.StatusForbidden, CodeForbidden, "connector_id", "this agent was enrolled for connector %s only", me.ConnectorID)
	}
	req.AgentID = me.ID
	if err := text("host", req.Host, maxHost, false); err != nil {
		return err
	}
	if req.PID < 0 {
		return invalid("pid", "pid must not be negative")
	}
	l, err := s.cfg.Store.AcquireLease(r.Context(), req, s.cfg.LeaseTTL)
	if err != nil {
		return storeError(err, "connector_id")
	}
	// The agent keeps to this control plane's destination and reference policy.
	l.Policy = policy.ToAPI(s.cfg.Hosts, s.cfg.Refs)
	s.log.InfoContext(r.Context(), "lease granted", "connector", l.ConnectorID, "lease", l.ID, "agent", l.AgentID, "revision", l.Revision)
	writeJSON(w, http.StatusCreated, l)
	return nil
}

// LeaseDeadlineHeader, sent with "answer" on a heartbeat, says the agent takes its lease's deadline from the
// answer's expires_in_seconds: the lease is then renewed in the store only when a fifth of the TTL passed
// since it last was, not at every heartbeat. Without it (an older agent counting TTL from its request) every
// heartbeat renews, so the store's expiry is never earlier than the deadline the agent keeps.
const LeaseDeadlineHeader = "X-Crmsync-Lease-Deadline"

// heartbeat is the control plane's hottest call (every connector's agent, up to once a second): one read
// checks the holder and reads the answer; the lease is renewed when due, and the status is buffered by the
// store (docs/scaling.md, "Status at scale").
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixLease)
	if err != nil {
		return err
	}
	var hb api.Heartbeat
	if err := decodeJSON(r, &hb); err != nil {
		return err
	}
	if err := sanitizeStatus(&hb.Status); err != nil {
		return err
	}
	var renewEvery time.Duration
	if r.Header.Get(LeaseDeadlineHeader) == "answer" {
		renewEvery = s.cfg.LeaseTTL / 5
	}
	b, err := s.cfg.Store.Heartbeat(r.Context(), id, principalOf(r).agent.ID, s.cfg.LeaseTTL, renewEvery, hb.Status)
	if errors.Is(err, store.ErrNotHolder) {
		return errorf(http.StatusForbidden, CodeForbidden, "id", "lease %s belongs to another agent", id)
	}
	if err != nil {
		return storeError(err, "id")
	}
	var reconcile int64
	if b.Reconcile != nil {
		reconcile = b.Reconcile.RequestID
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{ExpiresAt: b.Lease.ExpiresAt, ExpiresInSeconds: max(0, b.ExpiresIn.Seconds()),
		Active: b.Activation.Active, DesiredRevision: b.Activation.DesiredRevision, ReconcileRequestID: reconcile})
	return nil
}

func (s *Server) releaseLease(w http.ResponseWriter, r *http.Request) error {
	id, err := s.ownLease(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.ReleaseLease(r.Context(), id); err != nil {
		return storeError(err, "id")
	}
	noContent(w)
	return nil
}

func (s *Server) leaseAndTable(r *http.Request) (string, string, error) {
	id, err := s.ownLease(r)
	if err != nil {
		return "", "", err
	}
	table := r.PathValue("table")
	if err := validateTable("table", table); err != nil {
		return "", "", err
	}
	return id, table, nil
}

func (s *Server) loadCheckpoint(w http.ResponseWriter, r *http.Request) error {
	id, table, err := s.leaseAndTable(r)
	if err != nil {
		return err
	}
	cp, err := s.cfg.Store.LoadCheckpoint(r.Context(), id, table)
	if err != nil {
		return storeError(err, "id")
	}
	if cp == nil {
		// The client tells "no checkpoint yet" from other 404s by the field.
		return errorf(http.StatusNotFound, CodeNotFound, "table", "no checkpoint is stored for %s", table)
	}
	writeJSON(w, http.StatusOK, cp)
	return nil
}

func (s *Server) saveCheckpoint(w http.ResponseWriter, r *http.Request) error {
	id, table, err := s.leaseAndTable(r)
	if err != nil {
		return err
	}
	var cp api.Checkpoint
	if err := decodeJSON(r, &cp); err != nil {
		return err
	}
	switch cp.Table {
	case "":
		cp.Table = table
	case table:
	default:
		return invalid("table", "the body's table %q differs from the path's %q", truncate(cp.Table, maxTableName), table)
	}
	if err := validateCheckpoint(&cp); err != nil {
		return err
	}
	if err := s.cfg.Store.SaveCheckpoint(r.Context(), id, cp); err != nil {
		return storeError(err, "id")
	}
	noContent(w)
	return nil
}

func validateCheckpoint(cp *api.Checkpoint) error {
	for _, c := range []struct {
		field, v string
		max      int
	}{
		{"phase", cp.Phase, 32},
		{"load_job_id", cp.LoadJobID, 128},
		{"load_locator", cp.LoadLocator, 1024},
		{"mapping_hash", cp.MappingHash, 128},
		{"load_mapping_hash", cp.LoadMappingHash, 128},
	} {
		if err := text(c.field, c.v, c.max, false); err != nil {
			return err
		}
	}
	if len(cp.ReplayID) > 64 {
		return invalid("replay_id", "replay_id is %d bytes; the limit is 64", len(cp.ReplayID))
	}
	cp.LoadReason = clip(cp.LoadReason)
	for i, id := range cp.RefetchIDs {
		if err := validateRecordID("refetch_ids["+strconv.Itoa(i)+"]", id); err != nil {
			return err
		}
	}
	if len(cp.MappingColumns) > 2*maxColumns {
		return invalid("mapping_columns", "mapping_columns has %d entries; the limit is %d", len(cp.MappingColumns), 2*maxColumns)
	}
	for i, c := range cp.MappingColumns {
		if err := text("mapping_columns["+strconv.Itoa(i)+"]", c, 2*maxColumnName+2, false); err != nil {
			return err
		}
	}
	if len(cp.Intents) > maxIntents {
		return invalid("intents", "intents has %d entries; the limit is %d", len(cp.Intents), maxIntents)
	}
	for i := range cp.Intents {
		in := &cp.Intents[i]
		field := "intents[" + strconv.Itoa(i) + "]"
		switch in.Kind {
		case api.IntentLoad, api.IntentReconcile, api.IntentCatchUp, api.IntentDeletes:
		default:
			return invalid(field+".kind", "%s.kind %q is not load, reconcile, catch_up or deletes", field, truncate(in.Kind, 40))
		}
		in.Reason = clip(in.Reason)
		if len(in.Columns) > maxColumns {
			return invalid(field+".columns", "%s.columns has %d entries; the limit is %d", field, len(in.Columns), maxColumns)
		}
		for j, c := range in.Columns {
			if err := text(field+".columns["+strconv.Itoa(j)+"]", c, maxColumnName, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxIntents bounds a checkpoint's intents: an agent merges its own into one per kind, and a restore adds
// three.
const maxIntents = 64

func (s *Server) addDeadLetters(w http.ResponseWriter, r *http.Request) error {
	id, err := s.ownLease(r)
	if err != nil {
		return err
	}
	var b api.DeadLetterBatch
	if err := decodeJSON(r, &b); err != nil {
		return err
	}
	if len(b.DeadLetters) > maxBatch {
		return invalid("dead_letters", "dead_letters has %d entries; the limit is %d per call", len(b.DeadLetters), maxBatch)
	}
	for i := range b.DeadLetters {
		if err := validateDeadLetter("dead_letters["+strconv.Itoa(i)+"]", &b.DeadLetters[i]); err != nil {
			return err
		}
	}
	if err := s.cfg.Store.AddDeadLetters(r.Context(), id, b.DeadLetters); err != nil {
		return storeError(err, "id")
	}
	noContent(w)
	return nil
}

func (s *Server) retryableDeadLetters(w http.ResponseWriter, r *http.Request) error {
	id, err := s.ownLease(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.DeadLetterFilter{Table: q.Get("table"), Code: q.Get("code")}
	if err := validateTable("table", f.Table); err != nil {
		return err
	}
	if err := text("code", f.Code, 128, false); err != nil {
		return err
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return invalid("since", "since %q is not an RFC 3339 time", truncate(v, 64))
		}
		if t.After(time.Unix(0, 0)) { // the zero time.Time means "no bound"
			f.Since = t
		}
	}
	if f.Limit, err = queryLimit(r, 500, maxBatch); err != nil {
		return err
	}
	dls, err := s.cfg.Store.RetryableDeadLetters(r.Context(), id, f)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.DeadLetterBatch{DeadLetters: dls})
	return nil
}

func (s *Server) resolveDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := s.ownLease(r)
	if err != nil {
		return err
	}
	var req api.ResolveRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := validateTable("table", req.Table); err != nil {
		return err
	}
	if err := validateRecordID("record_id", req.RecordID); err != nil {
		return err
	}
	if req.Before.IsZero() {
		return invalid("before", "before is required: dead letters that failed before it are resolved")
	}
	if err := s.cfg.Store.ResolveDeadLetter(r.Context(), id, req.Table, req.RecordID, req.Before); err != nil {
		return storeError(err, "id")
	}
	noContent(w)
	return nil
}
