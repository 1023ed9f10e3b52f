package salesforce

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/fakedata"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// The admin API: changes made "by someone else in the org" (generated, explicit or random, each call one
// transaction), injected gap and overflow events, record reads and a whole-org export that do not count as
// API usage, tokens, settings, limits, faults, counters and reset. Every operation is also a Go method for
// in-process tests. docs/sandbox-salesforce.md documents the HTTP form.

// AdminOrigin is the changeOrigin of events caused through the admin API, unless a request names another:
// the value a change made in the Salesforce UI carries.
const AdminOrigin = "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/"

// Operation is one operation of an admin transaction.
type Operation struct {
	Op     string `json:"op"` // create, update, delete, undelete
	Object string `json:"object"`
	// ID or IDs name the records of update, delete and undelete (and of gap events that are not applied).
	ID  string   `json:"id,omitempty"`
	IDs []string `json:"ids,omitempty"`
	// Fields are the values of a create, or the changes every named record gets in an update. Values are
	// JSON values as in a REST body; Go callers may also pass time.Time, ints and floats.
	Fields map[string]any `json:"fields,omitempty"`
	// Records creates several records in one operation.
	Records []map[string]any `json:"records,omitempty"`
}

// Transaction is an admin transaction: its operations are applied atomically and their events share one
// transaction key.
type Transaction struct {
	Operations []Operation `json:"operations"`
	// ChangeOrigin overrides AdminOrigin for the transaction's events.
	ChangeOrigin string `json:"change_origin,omitempty"`
}

// TransactionResult says what a transaction did.
type TransactionResult struct {
	// IDs lists, per operation, the Ids of the records it created or changed.
	IDs [][]string `json:"ids"`
	// ReplayIDs are the replay IDs of the events the transaction appended, in order.
	ReplayIDs []uint64 `json:"replay_ids"`
}

// adminGen generates the admin API's records; it is separate from the seed generator so that generated
// data does not depend on how many records were seeded.
type adminGen struct {
	mu  sync.Mutex
	g   *fakedata.Generator
	rng *rand.Rand
}

func (e *Emulator) generator() *adminGen {
	e.adminGenMu.Lock()
	defer e.adminGenMu.Unlock()
	if e.adminGen == nil {
		e.adminGen = &adminGen{g: fakedata.New(e.cfg.Seed + 1), rng: rand.New(rand.NewPCG(uint64(e.cfg.Seed), 0xad))} //nolint:gosec // repeatable test data, not secrets
	}
	return e.adminGen
}

func (e *Emulator) adminOptions(origin string) txOptions {
	if origin == "" {
		origin = AdminOrigin
	}
	return txOptions{user: e.adminUserID, origin: origin}
}

// Transact applies an admin transaction.
func (e *Emulator) Transact(tx Transaction) (TransactionResult, error) {
	changes, spans, err := e.buildChanges(tx.Operations, false)
	if err != nil {
		return TransactionResult{}, err
	}
	return e.commitAdmin(changes, spans, e.adminOptions(tx.ChangeOrigin))
}

// buildChanges converts operations into store changes; spans[i] is the number of changes of operation i.
// With gapCreateNeedsIDs, a create names existing records instead of making new ones.
func (e *Emulator) buildChanges(ops []Operation, namesOnly bool) ([]change, []int, error) {
	if len(ops) == 0 {
		return nil, nil, errors.New("a transaction needs at least one operation")
	}
	var changes []change
	spans := make([]int, len(ops))
	for i, op := range ops {
		m, ok := e.store.meta(op.Object)
		if !ok {
			return nil, nil, fmt.Errorf("operation %d: sObject type '%s' is not supported", i, op.Object)
		}
		kind, ok := map[string]opKind{"create": opCreate, "update": opUpdate, "delete": opDelete, "undelete": opUndelete}[strings.ToLower(op.Op)]
		if !ok {
			return nil, nil, fmt.Errorf("operation %d: op must be create, update, delete or undelete, got %q", i, op.Op)
		}
		ids := op.IDs
		if op.ID != "" {
			ids = append([]string{op.ID}, ids...)
		}
		if kind == opCreate && !namesOnly {
			if len(ids) > 0 {
				return nil, nil, fmt.Errorf("operation %d: a create takes fields or records, not ids", i)
			}
			records := op.Records
			if op.Fields != nil {
				records = append([]map[string]any{op.Fields}, records...)
			}
			if len(records) == 0 {
				return nil, nil, fmt.Errorf("operation %d: a create needs fields or records", i)
			}
			for k, fields := range records {
				vals, aerr := goRecordValues(m, fields, true)
				if aerr != nil {
					return nil, nil, fmt.Errorf("operation %d, record %d: %s", i, k, aerr.Error())
				}
				changes = append(changes, change{kind: opCreate, object: m.obj.Name, values: vals})
			}
			spans[i] = len(records)
			continue
		}
		if len(ids) == 0 {
			return nil, nil, fmt.Errorf("operation %d: %s needs id or ids", i, op.Op)
		}
		var vals map[int]any
		if kind == opUpdate && !namesOnly {
			if len(op.Fields) == 0 {
				return nil, nil, fmt.Errorf("operation %d: an update needs fields", i)
			}
			var aerr *apiError
			if vals, aerr = goRecordValues(m, op.Fields, false); aerr != nil {
				return nil, nil, fmt.Errorf("operation %d: %s", i, aerr.Error())
			}
		} else if len(op.Fields) > 0 || len(op.Records) > 0 {
			return nil, nil, fmt.Errorf("operation %d: %s takes no fields", i, op.Op)
		}
		for _, raw := range ids {
			id, ok := normalizeID(raw, m.obj.KeyPrefix)
			if !ok {
				return nil, nil, fmt.Errorf("operation %d: %q is not a %s Id", i, raw, m.obj.Name)
			}
			changes = append(changes, change{kind: kind, object: m.obj.Name, id: id, values: vals})
		}
		spans[i] = len(ids)
	}
	return changes, spans, nil
}

// goRecordValues is recordValues for admin callers: Go values (time.Time, ints, floats) are accepted
// besides JSON ones.
func goRecordValues(m *objMeta, fields map[string]any, create bool) (map[int]any, *apiError) {
	norm := make(map[string]any, len(fields))
	for k, v := range fields {
		norm[k] = jsonish(v)
	}
	return recordValues(m, norm, create)
}

func jsonish(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case int:
		return json.Number(strconv.Itoa(x))
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
	case float32:
		return json.Number(strconv.FormatFloat(float64(x), 'f', -1, 32))
	}
	return v
}

func (e *Emulator) commitAdmin(changes []change, spans []int, opt txOptions) (TransactionResult, error) {
	done, replay, terr := e.store.commit(changes, opt)
	if terr != nil {
		op, k := 0, terr.Index
		for op < len(spans) && k >= spans[op] {
			k -= spans[op]
			op++
		}
		return TransactionResult{}, fmt.Errorf("operation %d (record %d) failed: %s", op, k, terr.Err.Error())
	}
	res := TransactionResult{IDs: make([][]string, len(spans)), ReplayIDs: replay}
	if res.ReplayIDs == nil {
		res.ReplayIDs = []uint64{}
	}
	i := 0
	for op, n := range spans {
		res.IDs[op] = []string{}
		for ; n > 0; n-- {
			res.IDs[op] = append(res.IDs[op], done[i].id)
			i++
		}
	}
	return res, nil
}

// Generate creates n realistic records of object in one transaction (contacts are linked to random live
// accounts two times in three) and returns their Ids.
func (e *Emulator) Generate(object string, n int, origin string) (TransactionResult, error) {
	m, ok := e.store.meta(object)
	if !ok {
		return TransactionResult{}, fmt.Errorf("sObject type '%s' is not supported", object)
	}
	if n <= 0 || n > 2_000_000 {
		return TransactionResult{}, fmt.Errorf("count must be between 1 and 2000000, got %d", n)
	}
	gen := e.generator()
	var accounts []string
	if m.obj.Name == "Contact" {
		am, _ := e.store.meta("Account")
		gen.mu.Lock()
		accounts = e.store.randomLive(am, min(n, 1000), gen.rng.IntN)
		gen.mu.Unlock()
	}
	changes := make([]change, n)
	gen.mu.Lock()
	for i := range changes {
		var vals map[string]any
		switch m.obj.Name {
		case "Account":
			vals = gen.g.Account()
		case "Contact":
			acc := ""
			if len(accounts) > 0 && gen.rng.IntN(3) != 0 {
				acc = accounts[gen.rng.IntN(len(accounts))]
			}
			vals = gen.g.Contact(acc)
		default:
			gen.mu.Unlock()
			return TransactionResult{}, fmt.Errorf("generating %s records is not supported", m.obj.Name)
		}
		changes[i] = change{kind: opCreate, object: m.obj.Name, values: typedValues(m, vals)}
	}
	gen.mu.Unlock()
	return e.commitAdmin(changes, []int{n}, e.adminOptions(origin))
}

// typedValues places generator values (already of package schema's Go types) by field position.
func typedValues(m *objMeta, vals map[string]any) map[int]any {
	out := make(map[int]any, len(vals))
	for k, v := range vals {
		if pos, ok := m.exact[k]; ok {
			out[pos] = v
		}
	}
	return out
}

// Mutate changes n random live records of object in one transaction, each with a realistic change of one
// to three fields (sometimes nulling one), and returns their Ids.
func (e *Emulator) Mutate(object string, n int, origin string) (TransactionResult, error) {
	m, ok := e.store.meta(object)
	if !ok {
		return TransactionResult{}, fmt.Errorf("sObject type '%s' is not supported", object)
	}
	if n <= 0 {
		return TransactionResult{}, fmt.Errorf("count must be positive, got %d", n)
	}
	gen := e.generator()
	gen.mu.Lock()
	ids := e.store.randomLive(m, n, gen.rng.IntN)
	changes := make([]change, 0, len(ids))
	for _, id := range ids {
		vals := gen.g.Update(m.obj.Name)
		if vals == nil {
			gen.mu.Unlock()
			return TransactionResult{}, fmt.Errorf("mutating %s records is not supported", m.obj.Name)
		}
		changes = append(changes, change{kind: opUpdate, object: m.obj.Name, id: id, values: typedValues(m, vals)})
	}
	gen.mu.Unlock()
	if len(changes) == 0 {
		return TransactionResult{}, fmt.Errorf("there are no live %s records to mutate", m.obj.Name)
	}
	return e.commitAdmin(changes, []int{len(changes)}, e.adminOptions(origin))
}

// AddField adds a custom field to an object (schema.Registry.AddField); the describe, SOQL, Bulk and the
// change event schemas show it from now on.
func (e *Emulator) AddField(object string, f schema.Field) error {
	return e.schemas.AddField(object, f)
}

// GapRequest injects gap events (spec 5.5).
type GapRequest struct {
	Object string `json:"object"`
	// ChangeType is GAP_CREATE, GAP_UPDATE, GAP_DELETE or GAP_UNDELETE.
	ChangeType string `json:"change_type"`
	// IDs name existing records (required unless Apply creates records).
	IDs []string `json:"ids,omitempty"`
	// Apply also makes the change to the data, silently, as a direct database change would: Fields are
	// set on every named record (GAP_UPDATE), or Records/Fields are created (GAP_CREATE), or the records
	// are deleted or undeleted.
	Apply   bool             `json:"apply,omitempty"`
	Fields  map[string]any   `json:"fields,omitempty"`
	Records []map[string]any `json:"records,omitempty"`
}

// InjectGap appends gap events for records, optionally applying the change they stand for.
func (e *Emulator) InjectGap(req GapRequest) (TransactionResult, error) {
	kind, ok := map[string]string{cdc.GapCreate: "create", cdc.GapUpdate: "update", cdc.GapDelete: "delete", cdc.GapUndelete: "undelete"}[strings.ToUpper(req.ChangeType)]
	if !ok {
		return TransactionResult{}, fmt.Errorf("change_type must be GAP_CREATE, GAP_UPDATE, GAP_DELETE or GAP_UNDELETE, got %q", req.ChangeType)
	}
	op := Operation{Op: kind, Object: req.Object, IDs: req.IDs}
	if req.Apply {
		op.Fields, op.Records = req.Fields, req.Records
		changes, spans, err := e.buildChanges([]Operation{op}, false)
		if err != nil {
			return TransactionResult{}, err
		}
		opt := e.adminOptions("")
		opt.gap = true
		return e.commitAdmin(changes, spans, opt)
	}
	if len(req.Fields) > 0 || len(req.Records) > 0 {
		return TransactionResult{}, errors.New("fields and records need apply: true")
	}
	changes, _, err := e.buildChanges([]Operation{op}, true)
	if err != nil {
		return TransactionResult{}, err
	}
	events := make([]cdc.Event, len(changes))
	ids := make([]string, len(changes))
	for i, ch := range changes {
		events[i] = cdc.Event{Entity: ch.object, ChangeType: strings.ToUpper(req.ChangeType), RecordIDs: []string{ch.id}}
		ids[i] = ch.id
	}
	replay := e.store.appendEvents(events, e.adminOptions(""))
	return TransactionResult{IDs: [][]string{ids}, ReplayIDs: replay}, nil
}

// MergeRequest merges records the way SOAP merge, the UI and Apex's merge statement do.
type MergeRequest struct {
	Object string `json:"object"` // Contact or Account
	// MasterID is the winning record; MergedIDs the one or two losing records (three records at most).
	MasterID  string   `json:"master_id"`
	MergedIDs []string `json:"merged_ids"`
	// Fields are values the master takes in the merge (typically ones kept from a loser), as in an update.
	Fields       map[string]any `json:"fields,omitempty"`
	ChangeOrigin string         `json:"change_origin,omitempty"`
}

// MergeResult says what a merge did.
type MergeResult struct {
	MasterID  string   `json:"master_id"`
	MergedIDs []string `json:"merged_ids"`
	// Reparented lists, per object, the child records whose lookups now point at the master.
	Reparented map[string][]string `json:"reparented"`
	ReplayIDs  []uint64            `json:"replay_ids"`
}

// Merge merges up to two records into a master, in one transaction: the losers are deleted (soft, into the
// recycle bin, visible to queryAll) with MasterRecordId set to the master; child records whose lookups
// point at a loser (contacts of a merged account, child accounts, direct reports of a merged contact) are
// re-parented to the master; the master is updated with Fields. On the change stream the losers' deletion
// is one DELETE event (merged, as a transaction's identical changes are) and the master gets an UPDATE
// event; the re-parented children get none unless the merge_child_events setting is on.
func (e *Emulator) Merge(req MergeRequest) (MergeResult, error) {
	m, ok := e.store.meta(req.Object)
	if !ok {
		return MergeResult{}, fmt.Errorf("sObject type '%s' is not supported", req.Object)
	}
	if m.obj.Name != "Contact" && m.obj.Name != "Account" {
		return MergeResult{}, fmt.Errorf("merge supports Contact and Account, not %s", m.obj.Name)
	}
	master, ok := normalizeID(req.MasterID, m.obj.KeyPrefix)
	if !ok {
		return MergeResult{}, fmt.Errorf("master_id %q is not a %s Id", req.MasterID, m.obj.Name)
	}
	if len(req.MergedIDs) == 0 || len(req.MergedIDs) > 2 {
		return MergeResult{}, fmt.Errorf("a merge takes one or two merged_ids besides the master (three records at most), got %d", len(req.MergedIDs))
	}
	seen := map[string]bool{master: true}
	var losers []string
	for _, raw := range req.MergedIDs {
		id, ok := normalizeID(raw, m.obj.KeyPrefix)
		if !ok {
			return MergeResult{}, fmt.Errorf("merged_ids: %q is not a %s Id", raw, m.obj.Name)
		}
		if seen[id] {
			return MergeResult{}, fmt.Errorf("merged_ids: %s is named twice or is the master", id)
		}
		seen[id] = true
		losers = append(losers, id)
	}
	var vals map[int]any
	if len(req.Fields) > 0 {
		var aerr *apiError
		if vals, aerr = goRecordValues(m, req.Fields, false); aerr != nil {
			return MergeResult{}, fmt.Errorf("fields: %s", aerr.Error())
		}
	}
	_, replay, reparented, terr := e.store.mergeRecords(m, master, losers, vals, e.adminOptions(req.ChangeOrigin), e.currentSettings().MergeChildEvents)
	if terr != nil {
		return MergeResult{}, fmt.Errorf("merge failed: %s", terr.Err.Error())
	}
	if replay == nil {
		replay = []uint64{}
	}
	return MergeResult{MasterID: master, MergedIDs: losers, Reparented: reparented, ReplayIDs: replay}, nil
}

// InjectOverflow appends one GAP_OVERFLOW event for object, as a transaction of more than the overflow
// threshold's changes would.
func (e *Emulator) InjectOverflow(object string) (TransactionResult, error) {
	m, ok := e.store.meta(object)
	if !ok {
		return TransactionResult{}, fmt.Errorf("sObject type '%s' is not supported", object)
	}
	replay := e.store.appendEvents([]cdc.Event{{Entity: m.obj.Name, ChangeType: cdc.GapOverflow}}, e.adminOptions(""))
	return TransactionResult{IDs: [][]string{{}}, ReplayIDs: replay}, nil
}

// Record returns a record as stored, in REST JSON form with every field (deleted records included), without
// counting API usage.
func (e *Emulator) Record(object, id string) (map[string]any, bool) {
	m, ok := e.store.meta(object)
	if !ok {
		return nil, false
	}
	id18, ok := normalizeID(id, m.obj.KeyPrefix)
	if !ok {
		return nil, false
	}
	rec := e.store.get(m.obj.Name, id18)
	if rec == nil {
		return nil, false
	}
	var buf bytes.Buffer
	e.writeExportRecord(&buf, m, rec)
	var out map[string]any
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, false
	}
	return out, true
}

func (e *Emulator) writeExportRecord(buf *bytes.Buffer, m *objMeta, rec *record) {
	rs := &resultSet{q: &query{meta: m, fields: allFieldRefs(m)}, recs: []*record{rec}}
	writeRecordJSON(buf, rs, 0, "/services/data/v"+e.cfg.APIVersion)
}

// Export writes every record of the named objects (all objects when none are named), deleted ones
// included, as NDJSON: one REST-form record per line, objects in name order, records in Id order. It reads
// a snapshot, so concurrent changes do not tear it.
func (e *Emulator) Export(w io.Writer, objects ...string) error {
	if len(objects) == 0 {
		objects = e.schemas.Names()
	}
	type part struct {
		m    *objMeta
		rows []*record
	}
	var parts []part
	e.store.mu.RLock()
	for _, o := range objects {
		m, ok := e.store.meta(o)
		if !ok {
			e.store.mu.RUnlock()
			return fmt.Errorf("sObject type '%s' is not supported", o)
		}
		parts = append(parts, part{m: m, rows: slices.Clone(e.store.tables[m.obj.Name].rows)})
	}
	e.store.mu.RUnlock()
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	for _, p := range parts {
		for _, rec := range p.rows {
			buf.Reset()
			e.writeExportRecord(&buf, p.m, rec)
			buf.WriteByte('\n')
			if _, err := bw.Write(buf.Bytes()); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// MintRefreshToken issues a refresh token of the integration user, usable with the refresh_token grant
// (server-to-server flows return none).
func (e *Emulator) MintRefreshToken() string { return e.tokens.mintRefresh(e.userID) }

// ExpireTokens ends every access token now; refresh tokens keep working.
func (e *Emulator) ExpireTokens() { e.tokens.expireAll() }

// Counters returns the API calls counted so far by kind.
func (e *Emulator) Counters() map[string]int64 { return e.counters.snapshot() }

// ResetCounters zeroes the API call counters.
func (e *Emulator) ResetCounters() { e.counters.reset() }

// LimitUsage is the usage of the enforced limits.
type LimitUsage struct {
	APIRequests     Usage `json:"api_requests"`
	DeliveredEvents Usage `json:"delivered_events"`
	BulkQueryJobs   Usage `json:"bulk_query_jobs"`
}

// Usage is one limit's maximum and its use over the rolling 24 hours.
type Usage struct {
	Max  int64 `json:"max"`
	Used int64 `json:"used"`
}

// LimitUsage returns the usage of the daily limits.
func (e *Emulator) LimitUsage() LimitUsage {
	s := e.currentSettings()
	return LimitUsage{
		APIRequests:     Usage{Max: s.APIRequestsMax, Used: e.apiRequests.used()},
		DeliveredEvents: Usage{Max: s.DeliveredEventsMax, Used: e.deliveries.used()},
		BulkQueryJobs:   Usage{Max: dailyBulkJobsMax, Used: e.bulkJobs24h.used()},
	}
}

// AdminHandler serves the admin API; the sandbox mounts it under /salesforce/.
func (e *Emulator) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		contacts, contactsAll := e.store.count("Contact")
		accounts, accountsAll := e.store.count("Account")
		adminJSON(w, http.StatusOK, map[string]any{
			"org_id": e.cfg.OrgID, "user_id": e.userID, "admin_user_id": e.adminUserID,
			"login_url": e.cfg.LoginURL, "instance_url": e.cfg.InstanceURL, "api_version": e.cfg.APIVersion,
			"records": map[string]any{
				"Contact": map[string]int{"live": contacts, "all": contactsAll},
				"Account": map[string]int{"live": accounts, "all": accountsAll},
			},
			"events_retained": e.log.Len(), "latest_replay_id": e.log.Latest(),
		})
	})
	mux.HandleFunc("POST /generate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Object       string `json:"object"`
			Count        int    `json:"count"`
			ChangeOrigin string `json:"change_origin"`
			OmitIDs      bool   `json:"omit_ids"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		res, err := e.Generate(req.Object, req.Count, req.ChangeOrigin)
		adminResult(w, res, err, req.OmitIDs)
	})
	mux.HandleFunc("POST /transaction", func(w http.ResponseWriter, r *http.Request) {
		var tx Transaction
		if !decodeAdmin(w, r, &tx) {
			return
		}
		res, err := e.Transact(tx)
		adminResult(w, res, err, false)
	})
	mux.HandleFunc("POST /mutate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Object       string `json:"object"`
			Count        int    `json:"count"`
			ChangeOrigin string `json:"change_origin"`
			OmitIDs      bool   `json:"omit_ids"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		res, err := e.Mutate(req.Object, req.Count, req.ChangeOrigin)
		adminResult(w, res, err, req.OmitIDs)
	})
	mux.HandleFunc("POST /fields", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Object string `json:"object"`
			Field  struct {
				Name      string `json:"name"`
				Label     string `json:"label"`
				Type      string `json:"type"`
				Length    int    `json:"length"`
				Precision int    `json:"precision"`
				Scale     int    `json:"scale"`
				Digits    int    `json:"digits"`
			} `json:"field"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		f := req.Field
		err := e.AddField(req.Object, schema.Field{Name: f.Name, Label: f.Label, Type: f.Type, Length: f.Length,
			Precision: f.Precision, Scale: f.Scale, Digits: f.Digits})
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]string{"status": "added"})
	})
	mux.HandleFunc("POST /gaps", func(w http.ResponseWriter, r *http.Request) {
		var req GapRequest
		if !decodeAdmin(w, r, &req) {
			return
		}
		res, err := e.InjectGap(req)
		adminResult(w, res, err, false)
	})
	mux.HandleFunc("POST /merge", func(w http.ResponseWriter, r *http.Request) {
		var req MergeRequest
		if !decodeAdmin(w, r, &req) {
			return
		}
		res, err := e.Merge(req)
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /overflow", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Object string `json:"object"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		res, err := e.InjectOverflow(req.Object)
		adminResult(w, res, err, false)
	})
	mux.HandleFunc("GET /records/{object}/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, ok := e.Record(r.PathValue("object"), r.PathValue("id"))
		if !ok {
			adminJSON(w, http.StatusNotFound, map[string]string{"error": "no " + r.PathValue("object") + " record " + r.PathValue("id")})
			return
		}
		adminJSON(w, http.StatusOK, rec)
	})
	mux.HandleFunc("GET /export", func(w http.ResponseWriter, r *http.Request) {
		var objects []string
		if o := r.URL.Query().Get("object"); o != "" {
			objects = strings.Split(o, ",")
			for _, name := range objects {
				if _, ok := e.store.meta(name); !ok {
					adminError(w, fmt.Errorf("sObject type '%s' is not supported", name))
					return
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := e.Export(w, objects...); err != nil {
			e.logger.Debug("admin export", "error", err)
		}
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		e.adminEvents(w, r)
	})
	mux.HandleFunc("POST /refresh-tokens", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string]string{"refresh_token": e.MintRefreshToken(), "client_id": e.cfg.ClientID})
	})
	mux.HandleFunc("POST /tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		e.ExpireTokens()
		adminJSON(w, http.StatusOK, map[string]string{"status": "expired"})
	})
	mux.HandleFunc("GET /settings", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, settingsToJSON(e.currentSettings()))
	})
	mux.HandleFunc("PUT /settings", func(w http.ResponseWriter, r *http.Request) {
		var req settingsJSON
		if !decodeAdmin(w, r, &req) {
			return
		}
		s, err := req.merge(e.currentSettings())
		if err == nil {
			err = e.SetSettings(s)
		}
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, settingsToJSON(e.currentSettings()))
	})
	mux.HandleFunc("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, e.LimitUsage())
	})
	mux.HandleFunc("PUT /limits", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			APIRequestsMax     *int64 `json:"api_requests_max"`
			DeliveredEventsMax *int64 `json:"delivered_events_max"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		s := e.currentSettings()
		if req.APIRequestsMax != nil {
			s.APIRequestsMax = *req.APIRequestsMax
		}
		if req.DeliveredEventsMax != nil {
			s.DeliveredEventsMax = *req.DeliveredEventsMax
		}
		if err := e.SetSettings(s); err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, e.LimitUsage())
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string]any{"config": e.faults.Config(), "counts": e.faults.Counts()})
	})
	mux.HandleFunc("PUT /faults", func(w http.ResponseWriter, r *http.Request) {
		var cfg faults.Config
		if !decodeAdmin(w, r, &cfg) {
			return
		}
		if cfg.ErrorRate < 0 || cfg.ResetRate < 0 || cfg.TruncateRate < 0 || cfg.StreamDropRate < 0 ||
			cfg.ErrorRate+cfg.ResetRate+cfg.TruncateRate > 1 || cfg.StreamDropRate > 1 {
			adminError(w, errors.New("fault rates must be between 0 and 1 (error, reset and truncate rates together at most 1)"))
			return
		}
		e.faults.Set(cfg)
		adminJSON(w, http.StatusOK, map[string]any{"config": e.faults.Config(), "counts": e.faults.Counts()})
	})
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, r *http.Request) {
		c := e.Counters()
		if c == nil {
			c = map[string]int64{}
		}
		adminJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("DELETE /counters", func(w http.ResponseWriter, r *http.Request) {
		e.ResetCounters()
		adminJSON(w, http.StatusOK, map[string]int64{})
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Reset(); err != nil {
			adminJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			adminJSON(w, http.StatusNotFound, map[string]string{"error": r.Method + " " + r.URL.Path + " is not an admin endpoint; see docs/sandbox-salesforce.md"})
			return
		}
		mux.ServeHTTP(w, r) // (not the handler found above: ServeHTTP sets the path values)
	})
}

// adminEvents serves GET /events?after=<replay id>&limit=<n>&topic=<topic>: retained events as JSON, for
// tests and debugging.
func (e *Emulator) adminEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			adminError(w, fmt.Errorf("after must be a replay ID (an unsigned integer), got %q", s))
			return
		}
		after = n
	}
	limit := 1000
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			adminError(w, fmt.Errorf("limit must be a positive integer, got %q", s))
			return
		}
		limit = n
	}
	topic := q.Get("topic")
	if topic == "" {
		topic = cdc.AllChangesTo
	}
	events, pos := e.log.Read(topic, after, limit)
	out := make([]map[string]any, len(events))
	for i, ev := range events {
		vals := map[string]any{}
		m, _ := e.store.meta(ev.Entity)
		for k, v := range ev.Values {
			if m != nil {
				if pos, ok := m.exact[k]; ok {
					v = jsonValue(m.obj.Fields[pos], v)
				}
			}
			vals[k] = v
		}
		out[i] = map[string]any{
			"replay_id": ev.ReplayID, "entity": ev.Entity, "change_type": ev.ChangeType, "record_ids": ev.RecordIDs,
			"change_origin": ev.ChangeOrigin, "transaction_key": ev.TransactionKey, "sequence_number": ev.SequenceNumber,
			"commit_timestamp": ev.CommitTimestamp.UnixMilli(), "commit_number": ev.CommitNumber, "commit_user": ev.CommitUser,
			"changed_fields": ev.ChangedFields, "nulled_fields": ev.NulledFields, "diff_fields": ev.DiffFields, "values": vals,
		}
	}
	adminJSON(w, http.StatusOK, map[string]any{"events": out, "position": pos})
}

// settingsJSON is the admin form of Settings: durations as Go duration strings; PUT changes the fields
// given.
type settingsJSON struct {
	TokenLifetime      *string `json:"token_lifetime,omitempty"`
	Retention          *string `json:"retention,omitempty"`
	KeepaliveInterval  *string `json:"keepalive_interval,omitempty"`
	IdleTimeout        *string `json:"idle_timeout,omitempty"`
	BulkDelay          *string `json:"bulk_delay,omitempty"`
	QueryLocatorTTL    *string `json:"query_locator_ttl,omitempty"`
	BulkPageSize       *int    `json:"bulk_page_size,omitempty"`
	OverflowThreshold  *int    `json:"overflow_threshold,omitempty"`
	APIRequestsMax     *int64  `json:"api_requests_max,omitempty"`
	DeliveredEventsMax *int64  `json:"delivered_events_max,omitempty"`
	MergeEvents        *bool   `json:"merge_events,omitempty"`
	MergeChildEvents   *bool   `json:"merge_child_events,omitempty"`
}

func settingsToJSON(s Settings) settingsJSON {
	d := func(x time.Duration) *string { v := x.String(); return &v }
	return settingsJSON{
		TokenLifetime: d(s.TokenLifetime), Retention: d(s.Retention), KeepaliveInterval: d(s.KeepaliveInterval),
		IdleTimeout: d(s.IdleTimeout), BulkDelay: d(s.BulkDelay), QueryLocatorTTL: d(s.QueryLocatorTTL),
		BulkPageSize: &s.BulkPageSize, OverflowThreshold: &s.OverflowThreshold,
		APIRequestsMax: &s.APIRequestsMax, DeliveredEventsMax: &s.DeliveredEventsMax, MergeEvents: &s.MergeEvents,
		MergeChildEvents: &s.MergeChildEvents,
	}
}

func (j settingsJSON) merge(s Settings) (Settings, error) {
	for _, d := range []struct {
		name string
		src  *string
		dst  *time.Duration
	}{
		{"token_lifetime", j.TokenLifetime, &s.TokenLifetime}, {"retention", j.Retention, &s.Retention},
		{"keepalive_interval", j.KeepaliveInterval, &s.KeepaliveInterval}, {"idle_timeout", j.IdleTimeout, &s.IdleTimeout},
		{"bulk_delay", j.BulkDelay, &s.BulkDelay}, {"query_locator_ttl", j.QueryLocatorTTL, &s.QueryLocatorTTL},
	} {
		if d.src == nil {
			continue
		}
		v, err := time.ParseDuration(*d.src)
		if err != nil {
			return s, fmt.Errorf("%s must be a Go duration such as \"90s\": %w", d.name, err)
		}
		*d.dst = v
	}
	if j.BulkPageSize != nil {
		s.BulkPageSize = *j.BulkPageSize
	}
	if j.OverflowThreshold != nil {
		s.OverflowThreshold = *j.OverflowThreshold
	}
	if j.APIRequestsMax != nil {
		s.APIRequestsMax = *j.APIRequestsMax
	}
	if j.DeliveredEventsMax != nil {
		s.DeliveredEventsMax = *j.DeliveredEventsMax
	}
	if j.MergeEvents != nil {
		s.MergeEvents = *j.MergeEvents
	}
	if j.MergeChildEvents != nil {
		s.MergeChildEvents = *j.MergeChildEvents
	}
	return s, nil
}

// decodeAdmin decodes a request body strictly (unknown fields and trailing data are errors), answering
// 400 {"error": ...} itself when it fails.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		adminError(w, fmt.Errorf("decoding the request body: %w", err))
		return false
	}
	if dec.More() {
		adminError(w, errors.New("decoding the request body: unexpected data after the JSON value"))
		return false
	}
	return true
}

func adminResult(w http.ResponseWriter, res TransactionResult, err error, omitIDs bool) {
	if err != nil {
		adminError(w, err)
		return
	}
	if omitIDs {
		n := 0
		for _, ids := range res.IDs {
			n += len(ids)
		}
		adminJSON(w, http.StatusOK, map[string]any{"count": n, "replay_ids": len(res.ReplayIDs)})
		return
	}
	adminJSON(w, http.StatusOK, res)
}

func adminError(w http.ResponseWriter, err error) {
	adminJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
