package salesforce

import (
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// table holds one object's records in Id order. Records are never removed (deletes are soft), so a
// record's position is stable and new Ids, issued from a growing counter, are always appended.
type table struct {
	rows []*record
	pos  map[string]int // 18-character Id → index in rows
}

func (t *table) get(id18 string) *record {
	if i, ok := t.pos[id18]; ok {
		return t.rows[i]
	}
	return nil
}

// store is the org's data. Every write is a transaction committed under the write lock, and the
// transaction's change events are appended to the CDC log before the lock is released, so the log's order
// is the commit order.
type store struct {
	mu      sync.RWMutex
	clock   *clock.Clock
	schemas *schema.Registry
	log     *cdc.Log
	ids     *idGen
	tables  map[string]*table // canonical object name → table
	seeded  map[string]*table // the state Reset restores (rows shared: records are immutable)
	users   map[string]bool   // 18-character Ids of the org's users (OwnerId and *ById targets)
	commitN int64

	// overflowThreshold is the number of changes per transaction that get normal events (100,000 on a
	// real org); the rest produce one GAP_OVERFLOW event per entity.
	overflowThreshold int
	// gate serializes writers while a composite request with allOrNone runs (it holds gate for its whole
	// run, and its own commits pass with their batch), so its changes can be undone exactly.
	gate sync.Mutex
	// mergeEvents merges consecutive events of a transaction that make the same change to several records
	// of one object into one event (see mergeSameChanges).
	mergeEvents bool
}

func newStore(c *clock.Clock, reg *schema.Registry, log *cdc.Log, ids *idGen, users []string) *store {
	s := &store{clock: c, schemas: reg, log: log, ids: ids, tables: map[string]*table{}, users: map[string]bool{},
		commitN: 1_100_670_838_951, overflowThreshold: 100_000}
	for _, n := range reg.Names() {
		s.tables[n] = &table{pos: map[string]int{}}
	}
	for _, u := range users {
		s.users[u] = true
	}
	return s
}

// meta returns the current metadata of an object by case-insensitive name.
func (s *store) meta(object string) (*objMeta, bool) {
	o, v, ok := s.schemas.Get(object)
	if !ok {
		return nil, false
	}
	return metaOf(o, v), true
}

// markSeeded records the current data as the state Reset restores.
func (s *store) markSeeded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeded = map[string]*table{}
	for n, t := range s.tables {
		s.seeded[n] = &table{rows: slices.Clone(t.rows), pos: maps.Clone(t.pos)}
	}
}

// reset restores the seeded data.
func (s *store) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.tables {
		if seed, ok := s.seeded[n]; ok {
			s.tables[n] = &table{rows: slices.Clone(seed.rows), pos: maps.Clone(seed.pos)}
		} else {
			s.tables[n] = &table{pos: map[string]int{}}
		}
	}
}

// insertSeed stores a record built outside a transaction (seed data); it produces no events.
func (s *store) insertSeed(object string, r *record) {
	t := s.tables[object]
	t.pos[r.id()] = len(t.rows)
	t.rows = append(t.rows, r)
}

// lookupLocked returns a record of object by 18-character Id, or nil; the caller holds the lock.
func (s *store) lookupLocked(object, id18 string) *record {
	if t := s.tables[object]; t != nil {
		return t.get(id18)
	}
	return nil
}

// opKind is the kind of one operation of a transaction.
type opKind int

const (
	opCreate opKind = iota
	opUpdate
	opDelete
	opUndelete
)

func (k opKind) String() string {
	return [...]string{"create", "update", "delete", "undelete"}[k]
}

func (k opKind) changeType() string {
	return [...]string{cdc.Create, cdc.Update, cdc.Delete, cdc.Undelete}[k]
}

// change is one operation of a transaction. Values are typed (see fromJSON) and keyed by field position.
type change struct {
	kind   opKind
	object string // canonical object name
	id     string // 18-character Id; filled in for creates by commit
	values map[int]any
	// silent applies the change without a change event and without moving LastModifiedDate or
	// LastModifiedById (SystemModstamp still moves): how a merge re-parents child records.
	silent bool
}

// txOptions says who commits a transaction and how it shows up on the event bus.
type txOptions struct {
	user   string // 18-character user Id: LastModifiedById, CreatedById and commitUser
	origin string // changeOrigin of the events
	// gap commits the change silently, as a direct database change would: the events are GAP_<type>
	// header-only events instead of normal ones.
	gap bool
	// dryRun validates the transaction and changes nothing.
	dryRun bool
	// batch collects the commit into a composite request's savepoint: applied with undo entries, its events
	// held until the batch is kept (see beginBatch).
	batch *txBatch
}

// txBatch is the savepoint of a composite request with allOrNone: its commits are applied with undo entries
// and their events wait, so the whole request is kept (its events appended as one transaction) or undone.
type txBatch struct {
	undo   []undoEntry
	events []cdc.Event
}

type undoEntry struct {
	object string
	id     string
	old    *record // nil: the record was created (and is the last row of its table)
}

// beginBatch starts a savepoint; every other writer waits until endBatch.
func (s *store) beginBatch() *txBatch {
	s.gate.Lock()
	return &txBatch{}
}

// endBatch keeps or undoes a savepoint's changes and lets other writers in again. Kept events are appended
// as one transaction (one key, sequence numbers in order, identical changes merged); it returns their
// replay IDs.
func (s *store) endBatch(b *txBatch, keep bool) []uint64 {
	defer s.gate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !keep {
		for i := len(b.undo) - 1; i >= 0; i-- {
			u := b.undo[i]
			t := s.tables[u.object]
			idx := t.pos[u.id]
			if u.old != nil {
				t.rows[idx] = u.old
				continue
			}
			// Created in the batch: no other writer ran since, so it is the table's last row.
			t.rows = t.rows[:idx]
			delete(t.pos, u.id)
		}
		return nil
	}
	events := b.events
	if s.mergeEvents {
		events = mergeSameChanges(events)
	}
	if len(events) == 0 {
		return nil
	}
	key := events[0].TransactionKey
	for i := range events {
		events[i].TransactionKey, events[i].SequenceNumber = key, i+1
	}
	return s.log.Append(events...)
}

// txError is a failed transaction: the operation at Index failed with Err and nothing was committed.
type txError struct {
	Index int
	Err   *apiError
}

// commit validates and applies a transaction atomically: either every change is stored and its events
// appended in order, or nothing changes. It returns the committed changes (with Ids filled in) and the
// events' replay IDs.
func (s *store) commit(changes []change, opt txOptions) ([]change, []uint64, *txError) {
	if opt.batch == nil {
		s.gate.Lock()
		defer s.gate.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(changes, opt)
}

// commitLocked is commit for a caller that holds the write lock.
func (s *store) commitLocked(changes []change, opt txOptions) ([]change, []uint64, *txError) {
	at := s.clock.Now().UTC()
	now := at.Truncate(time.Second) // record datetimes (SystemModstamp, LastModifiedDate) have whole seconds
	nowV := any(now)

	type pending struct {
		meta *objMeta
		old  *record // nil for creates
		new  *record
		ch   change
	}
	work := make([]pending, 0, len(changes))
	txRecords := map[string]*record{} // records already changed in this transaction, by Id

	current := func(object, id string) *record {
		if r, ok := txRecords[id]; ok {
			return r
		}
		return s.lookupLocked(object, id)
	}

	for i, ch := range changes {
		m, ok := s.meta(ch.object)
		if !ok {
			return nil, nil, &txError{i, errorf(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")}
		}
		ch.object = m.obj.Name
		var oldRec, newRec *record
		switch ch.kind {
		case opCreate:
			if err := s.checkValues(m, ch.values, current); err != nil {
				return nil, nil, &txError{i, err}
			}
			newRec = &record{vals: make([]any, len(m.obj.Fields))}
			for pos, v := range ch.values {
				newRec.vals[pos] = v
			}
			if missing := missingRequired(m, newRec); len(missing) > 0 {
				return nil, nil, &txError{i, errorf(http.StatusBadRequest, "REQUIRED_FIELD_MISSING",
					"Required fields are missing: [%s]", strings.Join(missing, ", ")).withFields(missing...)}
			}
			ch.id = s.ids.New(m.obj.KeyPrefix)
			newRec.vals[m.id] = ch.id
			newRec.vals[m.isDeleted] = false
			newRec.vals[m.created], newRec.vals[m.createdBy] = nowV, opt.user
			if m.owner >= 0 && newRec.vals[m.owner] == nil {
				newRec.vals[m.owner] = opt.user
			}
		case opUpdate, opDelete, opUndelete:
			oldRec = current(ch.object, ch.id)
			if oldRec == nil {
				return nil, nil, &txError{i, errNotFound}
			}
			deleted := oldRec.deleted(m)
			switch {
			case ch.kind == opUndelete && !deleted:
				return nil, nil, &txError{i, errorf(http.StatusBadRequest, "UNDELETE_FAILED", "Entity is not in the recycle bin")}
			case ch.kind != opUndelete && deleted:
				return nil, nil, &txError{i, errorf(http.StatusNotFound, "ENTITY_IS_DELETED", "entity is deleted")}
			}
			newRec = oldRec.clone(len(m.obj.Fields))
			switch ch.kind {
			case opUpdate:
				if err := s.checkValues(m, ch.values, current); err != nil {
					return nil, nil, &txError{i, err}
				}
				for pos, v := range ch.values {
					newRec.vals[pos] = v
				}
				if missing := missingRequired(m, newRec); len(missing) > 0 {
					return nil, nil, &txError{i, errorf(http.StatusBadRequest, "REQUIRED_FIELD_MISSING",
						"Required fields are missing: [%s]", strings.Join(missing, ", ")).withFields(missing...)}
				}
			case opDelete:
				newRec.vals[m.isDeleted] = true
				for pos, v := range ch.values { // a merge's loser gets MasterRecordId
					newRec.vals[pos] = v
				}
			case opUndelete:
				newRec.vals[m.isDeleted] = false
			}
		}
		if m.name >= 0 {
			newRec.vals[m.name] = fullName(newRec.get(m.firstName), newRec.get(m.lastName))
		}
		if ch.silent {
			newRec.vals[m.modstamp] = nowV
		} else {
			newRec.vals[m.modified], newRec.vals[m.modifiedBy], newRec.vals[m.modstamp] = nowV, opt.user, nowV
		}
		txRecords[ch.id] = newRec
		work = append(work, pending{meta: m, old: oldRec, new: newRec, ch: ch})
	}

	if opt.dryRun {
		return nil, nil, nil
	}
	// Apply. A record changed twice in one transaction keeps its last state.
	out := make([]change, len(work))
	for i, p := range work {
		t := s.tables[p.ch.object]
		if opt.batch != nil {
			var old *record
			if idx, ok := t.pos[p.ch.id]; ok {
				old = t.rows[idx]
			}
			opt.batch.undo = append(opt.batch.undo, undoEntry{object: p.ch.object, id: p.ch.id, old: old})
		}
		if idx, ok := t.pos[p.ch.id]; ok {
			t.rows[idx] = txRecords[p.ch.id]
		} else {
			t.pos[p.ch.id] = len(t.rows)
			t.rows = append(t.rows, txRecords[p.ch.id])
		}
		out[i] = p.ch
	}

	// Events, in operation order, numbered within the transaction.
	s.commitN += int64(1 + len(work)%7)
	header := cdc.Event{
		ChangeOrigin:   opt.origin,
		TransactionKey: uuid.NewString(),
		// commitTimestamp keeps milliseconds (it is "ms since the epoch" on the wire), so consumers can
		// measure end-to-end latency; whether real orgs fill in the milliseconds is not confirmed.
		CommitTimestamp: at.Truncate(time.Millisecond),
		CommitNumber:    s.commitN,
		CommitUser:      opt.user,
	}
	events := make([]cdc.Event, 0, len(work))
	budget := s.overflowThreshold
	var overflowed []string // entities, in order of first overflow
	for _, p := range work {
		if p.ch.silent {
			continue
		}
		ev := header
		ev.Entity = p.meta.obj.Name
		ev.RecordIDs = []string{p.ch.id}
		ev.ChangeType = p.ch.kind.changeType()
		cost := 1
		switch {
		case opt.gap:
			ev.ChangeType = "GAP_" + ev.ChangeType
		case p.ch.kind == opCreate || p.ch.kind == opUndelete:
			ev.Values = eventValues(p.meta, p.new)
		case p.ch.kind == opUpdate:
			ev.Values, ev.ChangedFields, ev.NulledFields = updateValues(p.meta, p.old, p.new)
			cost = len(ev.ChangedFields)
		}
		if budget -= cost; budget < 0 {
			if !slices.Contains(overflowed, ev.Entity) {
				overflowed = append(overflowed, ev.Entity)
			}
			continue
		}
		events = append(events, ev)
	}
	if s.mergeEvents {
		events = mergeSameChanges(events)
	}
	for _, entity := range overflowed {
		ev := header
		ev.Entity, ev.ChangeType = entity, cdc.GapOverflow
		events = append(events, ev)
	}
	for i := range events {
		events[i].SequenceNumber = i + 1
		normalizeLists(&events[i])
	}
	if opt.batch != nil {
		opt.batch.events = append(opt.batch.events, events...)
		return out, nil, nil
	}
	ids := s.log.Append(events...)
	return out, ids, nil
}

// mergeRecords merges up to two losers into master in one transaction, as SOAP merge does (the order of
// Apex's "Triggers and Merge Statements"): the losers are deleted with MasterRecordId set to the master,
// records of any object whose lookups point at a loser are re-parented to the master, and the master gets
// fields. Re-parented children are changed silently (no change event, LastModifiedDate unchanged) unless
// childEvents is set: the documentation says re-parented children fire no triggers and says nothing of their
// change events, so by default the sandbox models the case a subscriber must cope with, none. It returns the
// committed changes and replay IDs, and the re-parented records by object.
func (s *store) mergeRecords(m *objMeta, master string, losers []string, fields map[int]any, opt txOptions, childEvents bool) ([]change, []uint64, map[string][]string, *txError) {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	masterRef := m.exact["MasterRecordId"]
	var changes []change
	isLoser := map[string]bool{}
	for _, id := range losers {
		isLoser[id] = true
		changes = append(changes, change{kind: opDelete, object: m.obj.Name, id: id, values: map[int]any{masterRef: master}})
	}
	if fields == nil {
		fields = map[int]any{}
	}
	changes = append(changes, change{kind: opUpdate, object: m.obj.Name, id: master, values: fields})
	reparented := map[string][]string{}
	for _, n := range s.schemas.Names() {
		cm, _ := s.meta(n)
		for pos, f := range cm.obj.Fields {
			if f.Type != "reference" || f.Name == "MasterRecordId" || len(f.ReferenceTo) == 0 || f.ReferenceTo[0] != m.obj.Name {
				continue
			}
			for _, r := range s.tables[n].rows {
				ref, _ := r.get(pos).(string)
				if !isLoser[ref] || r.deleted(cm) || isLoser[r.id()] {
					continue
				}
				changes = append(changes, change{kind: opUpdate, object: n, id: r.id(), values: map[int]any{pos: master}, silent: !childEvents})
				reparented[n] = append(reparented[n], r.id())
			}
		}
	}
	done, replay, terr := s.commitLocked(changes, opt)
	return done, replay, reparented, terr
}

// mergeSameChanges merges runs of consecutive events that make the same change to records of one object:
// "for efficiency, sometimes change events for one transaction are merged into one event if the same
// change occurred in multiple records of the same object type during one second" (Change Data Capture
// Developer Guide, Merged Change Events). The guide's examples are an update of one field to one value on
// several records and a deletion of several records, so UPDATE and DELETE events merge when their entity,
// field lists and values are equal; the merged event lists every record in recordIds, in order. A whole
// transaction commits within one second here, and only consecutive events merge, so no record's changes
// are reordered.
func mergeSameChanges(events []cdc.Event) []cdc.Event {
	out := events[:0]
	for _, ev := range events {
		if n := len(out); n > 0 && sameChange(&out[n-1], &ev) {
			prev := &out[n-1]
			prev.RecordIDs = append(slices.Clip(prev.RecordIDs), ev.RecordIDs...)
			continue
		}
		out = append(out, ev)
	}
	return out
}

func sameChange(a, b *cdc.Event) bool {
	if a.Entity != b.Entity || a.ChangeType != b.ChangeType || (a.ChangeType != cdc.Update && a.ChangeType != cdc.Delete) ||
		!slices.Equal(a.ChangedFields, b.ChangedFields) || !slices.Equal(a.NulledFields, b.NulledFields) ||
		!slices.Equal(a.DiffFields, b.DiffFields) || len(a.Values) != len(b.Values) {
		return false
	}
	for k, v := range a.Values {
		w, ok := b.Values[k]
		if !ok || !sameValue(v, w) {
			return false
		}
	}
	return true
}

// appendEvents appends events built by the caller (an injected GAP_OVERFLOW, for instance) as one
// transaction, numbering them and filling in the transaction header.
func (s *store) appendEvents(events []cdc.Event, opt txOptions) []uint64 {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	s.commitN += int64(1 + len(events)%7)
	key := uuid.NewString()
	for i := range events {
		events[i].ChangeOrigin, events[i].TransactionKey = opt.origin, key
		events[i].CommitTimestamp, events[i].CommitNumber, events[i].CommitUser = now, s.commitN, opt.user
		events[i].SequenceNumber = i + 1
		normalizeLists(&events[i])
	}
	return s.log.Append(events...)
}

// normalizeLists makes the three header lists empty rather than nil, as a real header always has them.
func normalizeLists(ev *cdc.Event) {
	if ev.ChangedFields == nil {
		ev.ChangedFields = []string{}
	}
	if ev.NulledFields == nil {
		ev.NulledFields = []string{}
	}
	if ev.DiffFields == nil {
		ev.DiffFields = []string{}
	}
	if ev.RecordIDs == nil {
		ev.RecordIDs = []string{}
	}
}

// eventValues is the body of a CREATE or UNDELETE event: every field the event carries.
func eventValues(m *objMeta, r *record) map[string]any {
	vals := make(map[string]any, len(m.eventFields))
	for _, pos := range m.eventFields {
		vals[m.obj.Fields[pos].Name] = r.get(pos)
	}
	return vals
}

// updateValues is the body and field lists of an UPDATE event: the fields whose value changed (the new
// values, nil for nulled ones), their names in changedFields (always including LastModifiedDate), and the
// nulled ones in nulledFields.
func updateValues(m *objMeta, old, new *record) (vals map[string]any, changed, nulled []string) {
	vals = map[string]any{}
	for _, pos := range m.eventFields {
		a, b := old.get(pos), new.get(pos)
		if sameValue(a, b) && pos != m.modified {
			continue
		}
		name := m.obj.Fields[pos].Name
		vals[name] = b
		changed = append(changed, m.eventName[pos])
		if b == nil {
			nulled = append(nulled, m.eventName[pos])
		}
	}
	return vals, changed, nulled
}

func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

// fullName is Contact.Name: "FirstName LastName", or just the last name.
func fullName(first, last any) any {
	f, _ := first.(string)
	l, _ := last.(string)
	switch {
	case f == "" && l == "":
		return nil
	case f == "":
		return l
	case l == "":
		return f
	}
	return f + " " + l
}

// missingRequired lists the required fields (not nillable, writable, not defaulted) a record lacks.
func missingRequired(m *objMeta, r *record) []string {
	var missing []string
	for pos, f := range m.obj.Fields {
		if !f.Nillable && f.Createable && !f.DefaultedOnCreate && f.Type != "boolean" && r.get(pos) == nil {
			missing = append(missing, f.Name)
		}
	}
	return missing
}

// checkValues checks the references of a create or update: each must name a live record of the field's
// target object (or an org user).
func (s *store) checkValues(m *objMeta, values map[int]any, current func(object, id string) *record) *apiError {
	positions := slices.Sorted(maps.Keys(values))
	for _, pos := range positions {
		f := m.obj.Fields[pos]
		id, ok := values[pos].(string)
		if f.Type != "reference" || !ok {
			continue
		}
		target := f.ReferenceTo[0]
		if target == "User" {
			if !s.users[id] {
				return errorf(http.StatusBadRequest, "INVALID_CROSS_REFERENCE_KEY", "%s: id value of incorrect type: %s", f.Label, id).withFields(f.Name)
			}
			continue
		}
		tm, ok := s.meta(target)
		if !ok {
			continue
		}
		if sfid.KeyPrefix(id) != tm.obj.KeyPrefix {
			return errorf(http.StatusBadRequest, "FIELD_INTEGRITY_EXCEPTION", "%s: id value of incorrect type: %s", f.Label, id).withFields(f.Name)
		}
		r := current(tm.obj.Name, id)
		switch {
		case r == nil:
			return errorf(http.StatusBadRequest, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id").withFields(f.Name)
		case r.deleted(tm):
			return errorf(http.StatusBadRequest, "ENTITY_IS_DELETED", "entity is deleted").withFields(f.Name)
		}
	}
	return nil
}

// get returns the current record of object by 18-character Id, or nil.
func (s *store) get(object, id18 string) *record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookupLocked(object, id18)
}

// count returns the number of records of an object (live ones, and all including deleted).
func (s *store) count(object string) (live, all int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.meta(object)
	t := s.tables[object]
	if !ok || t == nil {
		return 0, 0
	}
	for _, r := range t.rows {
		if !r.deleted(m) {
			live++
		}
	}
	return live, len(t.rows)
}

// changedBetween returns, for the updated/deleted resources, the Ids of records whose SystemModstamp is
// in [start, end) and which are live (updated) or deleted (deleted), with that stamp.
func (s *store) changedBetween(m *objMeta, start, end time.Time, deleted bool) ([]string, []time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	var stamps []time.Time
	for _, r := range s.tables[m.obj.Name].rows {
		ts, _ := r.get(m.modstamp).(time.Time)
		if ts.Before(start) || !ts.Before(end) || r.deleted(m) != deleted {
			continue
		}
		ids = append(ids, r.id())
		stamps = append(stamps, ts)
	}
	return ids, stamps
}

// randomLive picks up to n distinct live records of an object with pick(i) choosing row indexes.
func (s *store) randomLive(m *objMeta, n int, pick func(int) int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rows := s.tables[m.obj.Name].rows
	seen := map[int]bool{}
	var out []string
	for attempts := 0; len(out) < n && attempts < 20*n+100 && len(rows) > 0; attempts++ {
		i := pick(len(rows))
		if seen[i] || rows[i].deleted(m) {
			continue
		}
		seen[i] = true
		out = append(out, rows[i].id())
	}
	return out
}

// matchField returns the Ids of the live records of m whose field at pos equals key (Ids exactly, text
// case-insensitively), for upserts by an external Id field.
func (s *store) matchField(m *objMeta, pos int, key string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m.obj.Fields[pos].Name == "Id" {
		if r := s.lookupLocked(m.obj.Name, key); r != nil && !r.deleted(m) {
			return []string{key}
		}
		return nil
	}
	var out []string
	for _, r := range s.tables[m.obj.Name].rows {
		if v, ok := r.get(pos).(string); ok && strings.EqualFold(v, key) && !r.deleted(m) {
			out = append(out, r.id())
		}
	}
	return out
}

// firstIndex returns the index of the first row with Id ≥ id (string order), for Id range scans.
func (t *table) firstIndex(id string) int {
	return sort.Search(len(t.rows), func(i int) bool { return t.rows[i].id() >= id })
}
