package agent

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// applier turns what a table's reader emits into row operations through the table's mapping plan: records
// (a Bulk page, a re-read, a catch-up query) into upserts, or the delete behaviour's operation for deleted
// ones; a window of changes into one net change per record (coalesced in commit order, redeliveries
// dropped, events that arrive out of order settled by re-reading the record). What the mapping cannot
// convert is dead-lettered here, and counted. It remembers, for the most recent records, what it wrote
// last (the SystemModstamp of a re-read, the replay ID of an applied change), so an older change never
// overwrites newer data; mu guards that memory.
type applier struct {
	plan  *mapping.Plan
	table string // the source table, for dead letters
	dead  DeadLetterStore
	st    *tableStats

	mu sync.Mutex
	// recent holds the SystemModstamp of records re-read from Salesforce.
	recent recentTimes
	// applied (and appliedPrev, the previous generation) hold the replay ID of the newest change written per
	// record.
	applied, appliedPrev map[string][]byte
}

// rowOp maps a record (from a query, a Bulk page or a re-read) to an upsert, or to the delete behaviour's
// operation when it is deleted in Salesforce; a record the mapping cannot convert is dead-lettered. ok is
// false when there is nothing to write, and the record is already counted: dead-lettered, or skipped (a
// deletion the table ignores). Callers count nothing more for it.
func (ap *applier) rowOp(ctx context.Context, rec map[string]any) (writer.Op, bool, error) {
	id, _ := rec["Id"].(string)
	return ap.upsertOp(ctx, id, deletedRecord(rec), func(b []byte) ([]byte, error) { return ap.plan.AppendRow(b, rec) })
}

// bulkColumns is where the load finds what it reads in a Bulk results page's rows (positions in the page's
// header; -1 when absent).
type bulkColumns struct {
	id, deleted int
	plan        []int // mapping.Plan.Positions
}

func (ap *applier) bulkColumns(header []string) *bulkColumns {
	return &bulkColumns{id: slices.Index(header, "Id"), deleted: slices.Index(header, "IsDeleted"), plan: ap.plan.Positions(header)}
}

// bulkRowOp is rowOp for a Bulk results row, given by position (an empty value is null): the same
// operation, without a map per record.
func (ap *applier) bulkRowOp(ctx context.Context, cols *bulkColumns, row []string) (writer.Op, bool, error) {
	var id string
	if cols.id >= 0 {
		id = row[cols.id]
	}
	deleted := cols.deleted >= 0 && row[cols.deleted] == "true"
	return ap.upsertOp(ctx, id, deleted, func(b []byte) ([]byte, error) { return ap.plan.AppendValues(b, cols.plan, row) })
}

// upsertOp is rowOp's operation for the record id, its body appended by encode.
func (ap *applier) upsertOp(ctx context.Context, id string, deleted bool, encode func([]byte) ([]byte, error)) (writer.Op, bool, error) {
	key, err := ap.plan.Key(id)
	if err != nil {
		return writer.Op{}, false, ap.deadLetterMapping(ctx, id, "upsert", err)
	}
	if deleted {
		o, ok := ap.deleteOp(id, key)
		if !ok {
			ap.st.skipped.Add(1)
		}
		return o, ok, nil
	}
	// Encode into a reused scratch buffer and keep an exact-size copy: rows wait in batches, so their size is
	// the load's memory.
	scratch := scratchRows.Get().(*[]byte)
	enc, err := encode((*scratch)[:0])
	var body []byte
	if err == nil {
		body = append([]byte(nil), enc...)
		*scratch = enc
	}
	scratchRows.Put(scratch)
	if err != nil {
		return writer.Op{}, false, ap.deadLetterMapping(ctx, id, "upsert", err)
	}
	return writer.Op{Kind: writer.Upsert, RecordID: id, Key: key, Body: body, Changes: 1}, true, nil
}

var scratchRows = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// deletedRecord reports whether a record read from Salesforce is deleted (IsDeleted true in JSON or CSV).
func deletedRecord(rec map[string]any) bool {
	deletedText, _ := rec["IsDeleted"].(string)
	deleted, _ := rec["IsDeleted"].(bool)
	return deleted || deletedText == "true"
}

// deleteOp is the table's delete behaviour for a deleted record; ok is false when deletes are ignored.
func (ap *applier) deleteOp(id, key string) (writer.Op, bool) {
	switch ap.plan.DeleteBehaviour {
	case mapping.DeleteIgnore:
		return writer.Op{}, false
	case mapping.DeleteDeactivate:
		return writer.Op{Kind: writer.Update, RecordID: id, Key: key, Body: []byte(`"statecode":1,"statuscode":2`), Changes: 1}, true
	}
	return writer.Op{Kind: writer.Delete, RecordID: id, Key: key, Changes: 1}, true
}

// deadLetterMapping dead-letters a record the mapping cannot convert, and counts it.
func (ap *applier) deadLetterMapping(ctx context.Context, id, operation string, err error) error {
	ap.st.deadLettered.Add(1)
	dl := DeadLetter{Table: ap.table, RecordID: id, Operation: operation, Code: CodeMapping, Reason: err.Error(), At: time.Now().UTC()}
	if derr := ap.dead.AddDeadLetters(ctx, []DeadLetter{dl}); derr != nil {
		return fmt.Errorf("storing a dead letter: %w", derr)
	}
	ap.st.deadLetterEvents.Add(1)
	return nil
}

// netKind is what a window's changes of one record come to; the first three are written as the writer's
// operation of the same name.
type netKind int

const (
	netNone    netKind = iota // nothing taken in yet
	netUpsert                 // the whole record is known (a create, and the updates after it): write it all
	netUpdate                 // only changed fields are known: write those columns of the existing row
	netDelete                 // the record was deleted
	netRefetch                // the values cannot be trusted (out of order, after a delete, none carried): re-read
)

// netChange accumulates one record's changes within a window, in commit order.
type netChange struct {
	kind    netKind
	values  map[string]any
	changed []string
	changes int64
	newest  []byte // position (replay ID) of the newest change taken in
}

// netWindow is a window coalesced: one net change per record, in the order the records first appeared.
type netWindow struct {
	byID  map[string]*netChange
	order []string
	// overflowSince is the earliest commit of an overflow in the window (zero when none): the table catches
	// up on every record modified since.
	overflowSince time.Time
	commits       []time.Time // every change's commit, for the latencies
}

// coalesce turns a window of changes into one net change per record, counting what it received and what
// it drops (stale or redelivered changes are skipped; an overflow counts as written by the catch-up that
// settles it).
func (ap *applier) coalesce(window []change) *netWindow {
	w := &netWindow{byID: map[string]*netChange{}, commits: make([]time.Time, len(window))}
	for i, c := range window {
		w.commits[i] = c.commit
		if c.op == changeOverflow {
			ap.st.received.Add(1)
			ap.st.written.Add(1) // settled by the catch-up
			if w.overflowSince.IsZero() || c.commit.Before(w.overflowSince) {
				w.overflowSince = c.commit
			}
			continue
		}
		for _, rid := range c.ids {
			ap.take(w, to18(rid), c)
		}
	}
	return w
}

// take adds one record's change to the window.
func (ap *applier) take(w *netWindow, id string, c change) {
	ap.st.received.Add(1)
	if ap.stale(id, c.commit) {
		ap.st.skipped.Add(1)
		return
	}
	n := w.byID[id]
	if n == nil {
		n = &netChange{}
		w.byID[id] = n
		w.order = append(w.order, id)
	}
	// Replay IDs grow in commit order (and are unique per event, unlike commit times, which several
	// transactions can share to the millisecond), so they tell a redelivery and an event delivered out of
	// order.
	applied := ap.lastApplied(id)
	switch {
	case sameReplay(c.position, n.newest) || sameReplay(c.position, applied):
		ap.st.skipped.Add(1) // a redelivery of a change already taken
		if n.changes == 0 && n.kind == netNone {
			delete(w.byID, id)
			w.order = w.order[:len(w.order)-1]
		}
		return
	case olderReplay(c.position, n.newest) || olderReplay(c.position, applied):
		// Applying it would put older values over newer ones, and skipping it could lose the fields it
		// changed: what Salesforce holds now settles it.
		n.changes++
		n.kind, n.values, n.changed = netRefetch, nil, nil
		return
	}
	n.changes++
	n.newest = c.position
	n.add(id, c)
}

// add folds a change that is newer than everything taken in.
func (n *netChange) add(id string, c change) {
	switch c.op {
	case changeCreate:
		n.kind, n.values, n.changed = netUpsert, copyValues(c.values, id), nil
	case changeUpdate:
		switch n.kind {
		case netRefetch, netDelete:
			n.kind = netRefetch // an update after a delete in one window: read what is there now
		case netUpsert:
			n.mergeUpdate(c)
		default:
			n.kind = netUpdate
			if n.values == nil {
				n.values = map[string]any{}
			}
			n.mergeUpdate(c)
		}
	case changeDelete:
		n.kind, n.values, n.changed = netDelete, nil, nil
	default:
		n.kind, n.values, n.changed = netRefetch, nil, nil
	}
}

func copyValues(v map[string]any, id string) map[string]any {
	out := make(map[string]any, len(v)+1)
	for k, x := range v {
		out[k] = x
	}
	out["Id"] = id
	return out
}

// mergeUpdate applies an update's changed and nulled fields to the accumulated values.
func (n *netChange) mergeUpdate(c change) {
	for _, f := range c.changed {
		if v, ok := c.values[f]; ok {
			n.values[f] = v
		} else {
			n.values[f] = nil
		}
		n.changed = append(n.changed, f)
	}
	for _, f := range c.nulled {
		n.values[f] = nil
		n.changed = append(n.changed, f)
	}
}

// ops turns a coalesced window into row operations and the records to re-read; what the mapping cannot
// convert is dead-lettered, what there is nothing to write for is skipped, and both are counted.
func (ap *applier) ops(ctx context.Context, w *netWindow) (ops []writer.Op, refetch []string, err error) {
	for _, id := range w.order {
		n := w.byID[id]
		key, err := ap.plan.Key(id)
		if err != nil {
			if err := ap.deadLetterNet(ctx, id, n, n.kind.operation(), err); err != nil {
				return nil, nil, err
			}
			continue
		}
		switch n.kind {
		case netUpsert:
			body, err := ap.plan.AppendRow(nil, n.values)
			if err != nil {
				if err := ap.deadLetterNet(ctx, id, n, "upsert", err); err != nil {
					return nil, nil, err
				}
				continue
			}
			ops = append(ops, writer.Op{Kind: writer.Upsert, RecordID: id, Key: key, Body: body, Changes: n.changes})
		case netUpdate:
			o, err := ap.updateOp(ctx, id, key, n)
			if err != nil {
				return nil, nil, err
			}
			if o != nil {
				ops = append(ops, *o)
			}
		case netDelete:
			o, ok := ap.deleteOp(id, key)
			if !ok {
				ap.st.skipped.Add(n.changes)
				continue
			}
			o.Changes = n.changes
			ops = append(ops, o)
		case netRefetch:
			refetch = append(refetch, id)
			ap.st.skipped.Add(n.changes - 1) // the re-read write stands for the last of them
		}
	}
	return ops, refetch, nil
}

// updateOp is the update of the mapped columns a net update changed; nil when it changed none (skipped) or
// the mapping cannot convert it (dead-lettered).
func (ap *applier) updateOp(ctx context.Context, id, key string, n *netChange) (*writer.Op, error) {
	row, err := ap.plan.Patch(n.values, n.changed)
	var body []byte
	if err == nil && row != nil {
		body, err = jsonrow.AppendMembers(nil, row)
	}
	switch {
	case err != nil:
		return nil, ap.deadLetterNet(ctx, id, n, "update", err)
	case row == nil:
		ap.st.skipped.Add(n.changes) // no mapped column changed
		return nil, nil
	}
	return &writer.Op{Kind: writer.Update, RecordID: id, Key: key, Body: body, Changes: n.changes}, nil
}

// deadLetterNet dead-letters a record's net change: one dead letter, counted for every change it stands for.
func (ap *applier) deadLetterNet(ctx context.Context, id string, n *netChange, operation string, err error) error {
	if err := ap.deadLetterMapping(ctx, id, operation, err); err != nil {
		return err
	}
	ap.st.deadLettered.Add(n.changes - 1)
	return nil
}

// operation names a net change's operation in dead letters (the writer's names).
func (k netKind) operation() string {
	switch k {
	case netUpdate:
		return writer.Update.String()
	case netDelete:
		return writer.Delete.String()
	}
	return writer.Upsert.String() // a whole record, or a re-read that writes one
}

// deleted returns the records a window deleted, in order.
func (w *netWindow) deleted() []string {
	var out []string
	for _, id := range w.order {
		if w.byID[id].kind == netDelete {
			out = append(out, id)
		}
	}
	return out
}

// written remembers the newest change of every record of a written window.
func (ap *applier) written(w *netWindow) {
	for _, id := range w.order {
		ap.markApplied(id, w.byID[id].newest)
	}
}

// noteRead remembers the SystemModstamp of a record read from Salesforce: an event committed before it is
// older than what is written.
func (ap *applier) noteRead(r salesforce.Record) {
	ms, ok := r["SystemModstamp"].(string)
	if !ok {
		return
	}
	ts, err := parseSFTime(ms)
	if err != nil {
		return
	}
	ap.mu.Lock()
	defer ap.mu.Unlock()
	ap.recent.put(to18(r.ID()), ts)
}

// stale reports whether an event committed at commit is older than what a re-read already wrote.
func (ap *applier) stale(id string, commit time.Time) bool {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	ms, ok := ap.recent.get(to18(id))
	return ok && !commit.After(ms)
}

// markApplied records the replay ID of the newest change written for a record.
func (ap *applier) markApplied(id string, replay []byte) {
	if len(replay) == 0 {
		return
	}
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if ap.applied == nil {
		ap.applied = map[string][]byte{}
	}
	if prev, ok := ap.applied[id]; !ok || !olderReplay(replay, prev) {
		if len(ap.applied) >= recentLimit {
			ap.appliedPrev, ap.applied = ap.applied, map[string][]byte{}
		}
		ap.applied[id] = replay
	}
}

// lastApplied returns the replay ID of the newest change written for a record (nil when unknown).
func (ap *applier) lastApplied(id string) []byte {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if r, ok := ap.applied[id]; ok {
		return r
	}
	return ap.appliedPrev[id]
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

// olderReplay reports whether replay ID a is older than b (both 8-byte big-endian in practice; IDs of
// different lengths are never compared).
func olderReplay(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && bytes.Compare(a, b) < 0 }

func sameReplay(a, b []byte) bool { return len(a) > 0 && bytes.Equal(a, b) }
