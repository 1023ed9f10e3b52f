package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// table runs one table mapping: load, then stream, with re-syncs when the stream cannot resume.
type table struct {
	a      *Agent
	cfg    mapping.TableConfig
	plan   *mapping.Plan
	types  salesforce.FieldTypes
	w      *writer.Writer
	target writer.Target // where w writes this table's rows
	log    *slog.Logger
	topic  string
	// pos stores the table's checkpoint and what it owes: every position and intent goes through it.
	pos *positions

	deps []*table // tables whose load must finish before this one loads (lookup targets)
	// lookupsTo names, per synced table this one's mapped lookups point at (itself included), the source
	// fields of those lookups: a merge in that table re-parents records here (merge.go).
	lookupsTo map[*table][]string
	bridge    *pump         // the load's bridge stream, handed over to stream() when the load ends (load.go)
	loaded    chan struct{} // closed when this table's first load finished
	once      sync.Once

	// st is what the table reports: counters, phase, health, latency.
	st *tableStats

	// recent remembers the SystemModstamp of records re-read from Salesforce, so events older than what was
	// written are skipped and never overwrite newer data.
	recentMu sync.Mutex
	recent   recentTimes // SystemModstamp of records re-read from Salesforce
	// applied (and appliedPrev, the previous generation) hold the replay ID of the newest change written per
	// record, for the most recent records only.
	applied, appliedPrev map[string][]byte
}

// newMappingID identifies a plan's mapping: its "dest<-source" columns, the owner included, and their hash.
func newMappingID(plan *mapping.Plan) mappingID {
	var cols []string
	for _, c := range plan.Columns() {
		cols = append(cols, c.Destination+"<-"+strings.ToLower(c.Source))
	}
	if plan.OwnerBind != "" {
		// The owner is written like a column: another team means every row must be reassigned.
		cols = append(cols, ownerColumn+"<-"+strings.ToLower(plan.OwnerBind))
	}
	sort.Strings(cols)
	sum := sha256.Sum256([]byte(strings.Join(cols, ",")))
	return mappingID{columns: cols, hash: hex.EncodeToString(sum[:8])}
}

// addRecovery lists a recovery in status (and in the checkpoint, with its next save).
func (t *table) addRecovery(what string) { t.pos.addRecovery(what) }

func (t *table) status() TableStatus {
	cp := t.pos.snapshot()
	s := TableStatus{Table: t.cfg.SourceTable, Destination: t.plan.DestTable,
		LoadDone: max(cp.LoadDone, t.pos.loadWritten.Load()), LoadTotal: cp.LoadTotal, Recoveries: slices.Clone(cp.Recoveries)}
	t.st.fill(&s)
	if len(cp.ReplayID) > 0 {
		s.ReplayAt, s.Position = cp.UpdatedAt, salesforce.ReplayUint(cp.ReplayID)
	}
	s.Owed = owedList(cp)
	return s
}

// run drives the table until ctx ends: it resumes from the stored checkpoint and retries failures with
// backoff, never dropping changes.
func (t *table) run(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := t.begin(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.st.recordError(err)
		t.log.Error("cannot read or store the table's checkpoint; retrying", "err", err, "attempt", attempt)
		if err := sleepCtx(ctx, retryDelay(attempt)); err != nil {
			return err
		}
	}
	return t.loop(ctx)
}

// begin stores what the table owes before any work starts (positions.begin).
func (t *table) begin(ctx context.Context) error {
	if err := t.pos.begin(ctx); err != nil {
		return err
	}
	if t.pos.snapshot().Phase == PhaseStreaming {
		t.markLoaded()
	}
	return nil
}

// loop runs the table's phases until ctx ends, retrying failures with backoff.
func (t *table) loop(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		var err error
		switch t.pos.snapshot().Phase {
		case PhaseStreaming:
			err = t.stream(ctx)
		default:
			err = t.load(ctx)
		}
		if err == nil || ctx.Err() != nil {
			if err == nil {
				t.st.worked(sideSalesforce) // a phase finished: both sides worked
				t.st.worked(sideDataverse)
			}
			failures = 0
			continue
		}
		failures++
		t.st.noteError(err)
		t.log.Error("table failed, retrying", "err", err, "attempt", failures)
		if errors.Is(err, salesforce.ErrAPILimit) || errors.Is(err, salesforce.ErrDeliveryLimit) {
			t.st.setPhase(t.pos.snapshot().Phase, "paused: "+err.Error())
		}
		if serr := sleepCtx(ctx, retryDelay(failures)); serr != nil {
			break
		}
	}
	return ctx.Err()
}

func retryDelay(failures int) time.Duration {
	d := time.Second << min(failures-1, 6)
	return min(d, time.Minute)
}

func (t *table) markLoaded() { t.once.Do(func() { close(t.loaded) }) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rowOps maps records (from a query, a Bulk page or a re-read) to upserts, or deletes for records that are
// deleted in Salesforce; records the mapping cannot convert are dead-lettered. ok is false when there is
// nothing to write, and the record is already counted: dead-lettered, or skipped (a deletion the table
// ignores). Callers count nothing more for it.
func (t *table) rowOp(ctx context.Context, rec map[string]any) (writer.Op, bool, error) {
	id, _ := rec["Id"].(string)
	key, err := t.plan.Key(id)
	if err != nil {
		return writer.Op{}, false, t.deadLetterMapping(ctx, id, "upsert", err)
	}
	if deletedRecord(rec) {
		o, ok, err := t.deleteOp(id, key)
		if !ok {
			t.st.skipped.Add(1)
		}
		return o, ok, err
	}
	// Encode into a reused scratch buffer and keep an exact-size copy: rows wait in batches, so their size is
	// the load's memory.
	scratch := scratchRows.Get().(*[]byte)
	enc, err := t.plan.AppendRow((*scratch)[:0], rec)
	var body []byte
	if err == nil {
		body = append([]byte(nil), enc...)
		*scratch = enc
	}
	scratchRows.Put(scratch)
	if err != nil {
		return writer.Op{}, false, t.deadLetterMapping(ctx, id, "upsert", err)
	}
	return writer.Op{Kind: writer.Upsert, RecordID: id, Key: key, Body: body, Changes: 1}, true, nil
}

// deletedRecord reports whether a record read from Salesforce is deleted (IsDeleted true in JSON or CSV).
func deletedRecord(rec map[string]any) bool {
	deletedText, _ := rec["IsDeleted"].(string)
	deleted, _ := rec["IsDeleted"].(bool)
	return deleted || deletedText == "true"
}

var scratchRows = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// deleteOp applies the table's delete behaviour; ok is false when deletes are ignored.
func (t *table) deleteOp(id, key string) (writer.Op, bool, error) {
	switch t.plan.DeleteBehaviour {
	case mapping.DeleteIgnore:
		return writer.Op{}, false, nil
	case mapping.DeleteDeactivate:
		return writer.Op{Kind: writer.Update, RecordID: id, Key: key, Body: []byte(`"statecode":1,"statuscode":2`), Changes: 1}, true, nil
	}
	return writer.Op{Kind: writer.Delete, RecordID: id, Key: key, Changes: 1}, true, nil
}

func (t *table) deadLetterMapping(ctx context.Context, id, operation string, err error) error {
	t.st.deadLettered.Add(1)
	dl := DeadLetter{Table: t.cfg.SourceTable, RecordID: id, Operation: operation, Code: CodeMapping, Reason: err.Error(), At: time.Now().UTC()}
	if derr := t.a.stores.DeadLetters.AddDeadLetters(ctx, []DeadLetter{dl}); derr != nil {
		return fmt.Errorf("storing a dead letter: %w", derr)
	}
	return nil
}

// writeAll writes ops until Dataverse accepts them or ctx ends: table-level failures are retried with
// backoff (throttling is already handled inside the client), so nothing is ever dropped. It returns what
// the writes did, per change: written, dead-lettered (refused by Dataverse) or skipped.
func (t *table) writeAll(ctx context.Context, ops []writer.Op) (writer.Outcome, error) {
	for attempt := 1; ; attempt++ {
		out, err := t.w.Write(ctx, t.target, ops)
		if err == nil {
			if len(ops) > 0 {
				t.st.worked(sideDataverse)
			}
			t.st.tally(out)
			if len(out.Missing) > 0 {
				// Updates of rows that are not in Dataverse: write the whole record instead.
				missing := out.Missing
				out.Missing = nil
				more, err := t.refetch(ctx, missing)
				out.Add(more)
				return out, err
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return writer.Outcome{}, ctx.Err()
		}
		var te *writer.TableError
		if !errors.As(err, &te) {
			return writer.Outcome{}, err
		}
		t.st.noteError(err)
		t.log.Warn("write failed, retrying", "err", err, "attempt", attempt)
		if err := sleepCtx(ctx, retryDelay(attempt)); err != nil {
			return writer.Outcome{}, err
		}
	}
}

// refetch re-reads records from Salesforce (deleted ones included) and writes their current state: an
// upsert, or a delete for records deleted or gone. It is how gap events, undeletes, events that arrived
// during a load and updates of missing rows are settled. The outcome counts one change per record: written
// (Dataverse accepted it), dead-lettered (refused, or not convertible) or skipped (a deletion the table
// ignores).
func (t *table) refetch(ctx context.Context, ids []string) (writer.Outcome, error) {
	if len(ids) == 0 {
		return writer.Outcome{}, nil
	}
	var out writer.Outcome
	seen := map[string]bool{}
	var ops []writer.Op
	err := t.a.sf.Retrieve(ctx, t.cfg.SourceTable, t.plan.SourceFields(), ids, func(r salesforce.Record) error {
		id := r.ID()
		seen[id] = true
		if ms, ok := r["SystemModstamp"].(string); ok {
			if ts, err := parseSFTime(ms); err == nil {
				t.remember(id, ts)
			}
		}
		o, ok, err := t.rowOp(ctx, r)
		if err != nil {
			return err
		}
		_, keyErr := t.plan.Key(id)
		switch {
		case ok:
			ops = append(ops, o)
		case deletedRecord(r) && keyErr == nil:
			out.Skipped++ // a deletion the table ignores
		default:
			out.Refused++ // the mapping cannot convert it
			out.RefusedIDs = append(out.RefusedIDs, id)
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		if seen[id] || seen[to18(id)] {
			continue
		}
		key, err := t.plan.Key(id)
		if err != nil {
			continue
		}
		// Not even in the recycle bin: hard-deleted.
		if o, ok, _ := t.deleteOp(to18(id), key); ok {
			ops = append(ops, o)
		} else {
			t.st.skipped.Add(1)
			out.Skipped++
		}
	}
	wrote, err := t.writeAll(ctx, ops)
	out.Add(wrote)
	return out, err
}

func (t *table) remember(id string, modstamp time.Time) {
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	t.recent.put(to18(id), modstamp)
}

// stale reports whether an event committed at commit is older than what a re-read already wrote.
func (t *table) stale(id string, commit time.Time) bool {
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	ms, ok := t.recent.get(to18(id))
	return ok && !commit.After(ms)
}

// markApplied records the replay ID of the newest change written for a record.
func (t *table) markApplied(id string, replay []byte) {
	if len(replay) == 0 {
		return
	}
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	if t.applied == nil {
		t.applied = map[string][]byte{}
	}
	if prev, ok := t.applied[id]; !ok || !olderReplay(replay, prev) {
		if len(t.applied) >= recentLimit {
			t.appliedPrev, t.applied = t.applied, map[string][]byte{}
		}
		t.applied[id] = replay
	}
}

// lastApplied returns the replay ID of the newest change written for a record (nil when unknown).
func (t *table) lastApplied(id string) []byte {
	t.recentMu.Lock()
	defer t.recentMu.Unlock()
	if r, ok := t.applied[id]; ok {
		return r
	}
	return t.appliedPrev[id]
}

// recentTimes remembers a time per record for the most recent records only: two generations of up to
// recentLimit entries each, the older dropped when the newer fills up, so memory stays bounded.
type recentTimes struct {
	cur, prev map[string]time.Time
}

const recentLimit = 100_000

func (r *recentTimes) put(id string, at time.Time) {
	if r.cur == nil {
		r.cur = map[string]time.Time{}
	}
	if len(r.cur) >= recentLimit {
		r.prev, r.cur = r.cur, map[string]time.Time{}
	}
	r.cur[id] = at
}

func (r *recentTimes) get(id string) (time.Time, bool) {
	if at, ok := r.cur[id]; ok {
		return at, true
	}
	at, ok := r.prev[id]
	return at, ok
}

func parseSFTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000Z", time.RFC3339Nano} {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised datetime %q", s)
}

func to18(id string) string {
	if v, err := sfid.To18(id); err == nil {
		return v
	}
	return id
}
